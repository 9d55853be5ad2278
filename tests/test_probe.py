"""Probing: recorded trajectories are consistent and complete."""
import jax
import numpy as np
import pytest

from pcmusic import model as model_lib
from pcmusic.perception import InferenceSpec
from pcmusic.evaluation.probing import probe, save_npz
from pcmusic.errors import PcmusicError
from tests.test_perceive import _tone

INF = InferenceSpec(n_steps=40)


def test_recorded_energy_equals_recomputed_default_prior(tmp_path):
    p = probe(_tone(220.0, seconds=0.3), 16000, stride=4, inference=INF)
    arrays = p.arrays()
    assert list(arrays["step"]) == list(range(0, 40, 4))
    assert arrays["energies"].shape == (10, 2) and list(arrays["level_names"]) == ["sensory", "controls"]
    np.testing.assert_allclose(arrays["energies"].sum(1), arrays["energy"], rtol=1e-5)
    np.testing.assert_allclose(p.recompute_energy(), arrays["energy"], rtol=1e-4)
    assert arrays["energy"][-1] < arrays["energy"][0]
    out = save_npz(p, tmp_path / "probe.npz")
    with np.load(out) as f:
        assert set(f.files) == set(arrays)
    with pytest.raises(PcmusicError, match="exists"):
        save_npz(p, out)


def test_probe_with_a_model_records_every_level():
    spec = model_lib.ModelSpec(latent_dims=(8, 8, 4), hidden=16)
    m = model_lib.init_model(jax.random.key(0), spec)
    p = probe(_tone(330.0, seconds=0.3), 16000, model=m, stride=10, inference=INF)
    arrays = p.arrays()
    assert list(arrays["level_names"]) == ["sensory", "controls", "z2", "z3", "top"]
    for name in ("latents/z2", "latents/z3", "latents/top", "errors/z2", "errors/top",
                 "errors/controls/log2_f0"):
        assert arrays[name].shape[0] == 4
    np.testing.assert_allclose(p.recompute_energy(), arrays["energy"], rtol=1e-4)
