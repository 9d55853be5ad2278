"""pcmusic: one predictive-coding hierarchy that perceives and generates audio.

    pcmusic.perceive(audio, sample_rate, *, model=None, n_voices=1, ...) -> Percept
    pcmusic.perceive_batch(audios, sample_rate, ...) -> list of Percept
    pcmusic.generate(model, key, *, n, seconds, refine_steps, intent=None, listen=None) -> (audio, Trace)
    pcmusic.probe(audio, sample_rate, *, model=None, stride=10, ...) -> Probe
    pcmusic.load_model(ckpt_dir) -> (AudioModel, Config)
    pcmusic.init_model(key, ModelSpec(), maps=UserMaps(...)) -> AudioModel

Subpackages by stage, each importing only those before it:
`pc` (the generic predictive-coding engine), `dsp` (oscillator bank, spectra, pitch
proposal, audio files), `model` (controls, sensory level, priors, maps, the model type,
intents), `perception`, `generation`, `training`, `evaluation`; beside them `data`
(corpora) and `creative` (the open-ended experiments' library, never imported by the
others). `pcmusic.synth`, `pcmusic.spectral` and `pcmusic.audio` name the modules of
`pcmusic.dsp`.

Importing pcmusic imports jax but neither soundfile, matplotlib nor orbax, and not the
training stack: `load_model` and the run config come from `pcmusic.training` on first use,
so `import pcmusic.generation` or `pcmusic.perception` loads nothing of training.
"""
import importlib

from pcmusic.errors import AudioFileError, CheckpointError, ConfigError, InferenceDivergence, PcmusicError
from pcmusic.evaluation import Probe, probe, save_npz
from pcmusic.generation import Hearing, Listening, RefineSpec, Trace, generate
from pcmusic.model import (AudioModel, ControlPrior, ControlSpec, ModelSpec, SensorySpec, UserMaps,
                           init_model)
from pcmusic.perception import InferenceSpec, Percept, perceive, perceive_batch

__version__ = "0.1.0"

__all__ = [
    "AudioFileError", "AudioModel", "CheckpointError", "Config", "ConfigError", "ControlPrior",
    "ControlSpec", "Hearing", "InferenceDivergence", "InferenceSpec", "Listening", "ModelSpec",
    "Percept", "PcmusicError", "Probe", "RefineSpec", "SensorySpec", "Trace", "UserMaps",
    "__version__", "default_config", "generate", "init_model", "load_config", "load_model",
    "perceive", "perceive_batch", "probe", "save_npz",
]

# Resolved on first use: the training stack's public names, and short names for the
# fixed audio path's modules.
_LAZY = {"Config": "pcmusic.training.config", "default_config": "pcmusic.training.config",
         "load_config": "pcmusic.training.config", "load_model": "pcmusic.training.checkpoint"}
_MODULES = {"synth": "pcmusic.dsp.synth", "spectral": "pcmusic.dsp.spectral", "audio": "pcmusic.dsp.audio"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    else:
        raise AttributeError(f"module 'pcmusic' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_MODULES))
