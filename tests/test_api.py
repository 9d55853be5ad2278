"""The public API: `pcmusic.perceive/generate/probe/load_model/init_model` are functions of
the stage that owns them, and the import graph points one way: the core imports neither
soundfile, matplotlib nor orbax, and generation, perception and evaluation load nothing
of training."""
import inspect
import subprocess
import sys

import pytest

import pcmusic


@pytest.mark.parametrize("name, module", [
    ("perceive", "perception.percept"), ("perceive_batch", "perception.percept"),
    ("generate", "generation.generator"), ("probe", "evaluation.probing"),
    ("load_model", "training.checkpoint"), ("init_model", "model.audio_model")])
def test_contract_functions_are_exported(name, module):
    fn = getattr(pcmusic, name)
    assert inspect.isfunction(fn) and fn.__module__ == f"pcmusic.{module}"
    assert name in dir(pcmusic) and name in pcmusic.__all__


def test_every_public_name_resolves():
    for name in pcmusic.__all__:
        assert getattr(pcmusic, name) is not None, name
    assert pcmusic.synth.harmonic is pcmusic.dsp.synth.harmonic


def test_contract_signatures():
    params = inspect.signature(pcmusic.perceive).parameters
    assert list(params)[:2] == ["audio", "sample_rate"] and params["model"].default is None
    assert params["n_voices"].kind is inspect.Parameter.KEYWORD_ONLY
    params = inspect.signature(pcmusic.generate).parameters
    assert list(params)[:2] == ["model", "key"]
    assert {"n", "seconds", "refine_steps", "intent"} <= set(params)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        pcmusic.nonsense


def _loaded_after(statement: str) -> set:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


@pytest.mark.parametrize("statement", ["import pcmusic", "import pcmusic.generation",
                                       "import pcmusic.perception", "import pcmusic.evaluation"])
def test_stages_import_nothing_above_them(statement):
    loaded = _loaded_after(statement)
    assert not {m for m in loaded if m.startswith(("pcmusic.training", "pcmusic.creative", "pcmusic.cli"))}
    assert not loaded & {"soundfile", "matplotlib", "orbax", "tqdm"}


def test_the_core_never_imports_creative():
    loaded = _loaded_after("import pcmusic, pcmusic.training, pcmusic.training.loop, pcmusic.dsp")
    assert not {m for m in loaded if m.startswith("pcmusic.creative")}


def test_core_runs_without_soundfile():
    code = ("import sys; sys.modules['soundfile'] = None\n"
            "import pcmusic; pcmusic.perceive; pcmusic.generate; pcmusic.probe; pcmusic.init_model\n"
            "import pcmusic.dsp.synth, pcmusic.dsp.spectral, pcmusic.model, pcmusic.pc\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
