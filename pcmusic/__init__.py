"""pcmusic: one predictive-coding hierarchy that perceives and generates audio.

The public API (DESIGN.md's contract) is re-exported here and imported lazily, so that
`import pcmusic` is cheap and the core never imports soundfile:

    pcmusic.perceive(audio, sample_rate, *, model=None, n_voices=1, ...) -> Percept
    pcmusic.perceive_batch(audios, sample_rate, ...) -> list of Percept
    pcmusic.generate(model, key, *, n, seconds, refine_steps, intent=None, listen=None) -> (audio, Trace)
    pcmusic.probe(audio, sample_rate, *, model=None, stride=10, ...) -> Probe
    pcmusic.load_model(ckpt_dir) -> (AudioModel, Config)
    pcmusic.init_model(key, ModelSpec()) -> AudioModel

Modules: `synth`, `spectral`, `controls`, `sensory`, `encoder`, `priors`, `perception`,
`model`, `learn`, `generation` (+ `listening`, `hearing`, `topdown`, `fidelity`), `probing`, `train`, `checkpoint`, `config` (+ `configio`), `audio`, `data`,
`pc` (the generic engine) and `creative` (roughness, oddball, curiosity, coevolution).
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "perceive": "perception", "perceive_batch": "perception", "Percept": "perception",
    "InferenceSpec": "perception",
    "generate": "generation", "Trace": "generation", "Hearing": "generation",
    "RefineSpec": "generation", "Listening": "listening",
    "probe": "probing", "Probe": "probing", "save_npz": "probing",
    "AudioModel": "model", "ModelSpec": "model", "init_model": "model",
    "ControlSpec": "controls", "SensorySpec": "sensory", "ControlPrior": "priors",
    "load_model": "train",
    "Config": "config", "load_config": "config", "default_config": "config",
}
_MODULES = ("synth", "spectral", "controls", "sensory", "encoder", "priors", "perception",
            "model", "learn", "generation", "listening", "hearing", "topdown", "fidelity", "probing", "freqfit", "checkpoint", "config", "audio", "data",
            "pc", "creative", "plots", "outputs", "fluid", "errors", "bench", "train", "demo", "cli",
            "configio", "ckpt_leaves")

__all__ = ["__version__", *_EXPORTS, *_MODULES]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"pcmusic.{_EXPORTS[name]}"), name)
    elif name in _MODULES:
        value = importlib.import_module(f"pcmusic.{name}")
    else:
        raise AttributeError(f"module 'pcmusic' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
