"""The public contract of DESIGN.md: `pcmusic.perceive/generate/probe` are functions,
imported lazily, and the core imports neither soundfile nor the training stack."""
import inspect
import subprocess
import sys

import pytest

import pcmusic


@pytest.mark.parametrize("name, module", [("perceive", "perception"), ("perceive_batch", "perception"),
                                          ("generate", "generation"), ("probe", "probing"),
                                          ("load_model", "train"), ("init_model", "model")])
def test_contract_functions_are_exported(name, module):
    fn = getattr(pcmusic, name)
    assert inspect.isfunction(fn) and fn.__module__ == f"pcmusic.{module}"
    assert name in dir(pcmusic)


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


def test_core_runs_without_soundfile():
    code = ("import sys; sys.modules['soundfile'] = None\n"
            "import pcmusic; pcmusic.perceive; pcmusic.generate; pcmusic.probe; pcmusic.init_model\n"
            "import pcmusic.synth, pcmusic.spectral, pcmusic.model, pcmusic.pc\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
