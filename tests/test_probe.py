"""Probing: recorded trajectories are consistent and complete."""
import jax
import numpy as np
import pytest

from pcmusic import model as model_lib
from pcmusic.model.notes import NoteSpec
from pcmusic.perception import InferenceSpec
from pcmusic.perception.notes import NoteInference
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
    np.testing.assert_allclose(p.recompute_energy(), arrays["energy"], rtol=1e-4)

    # Exactly the keys and shapes the module docstring of pcmusic.evaluation.probing lists.
    # R records: steps 0, 10, 20, 30 of 40. 0.3 s at hop 128 is 38 control frames, padded
    # to whole top-level frames (rate factors 4 x 4: 16 frames): F = 48; z2 runs at F / 4,
    # z3 at F / 16, the top is one frame. One voice, the default 40 harmonics and 24 noise
    # bands. The sensory errors are centred STFTs of the padded clip (F * 128 samples)
    # with hop n / 4: 1 + F * 128 // (n / 4) frames of n / 2 + 1 bins.
    r, f, (d2, d3, d_top) = 4, 48, spec.latent_dims
    control_shapes = {"log2_f0": (r, 1, 1, f), "log_amp": (r, 1, 1, f, 40), "log_noise": (r, 1, f, 24)}
    upper_shapes = {"z2": (r, 1, f // 4, d2), "z3": (r, 1, f // 16, d3), "top": (r, 1, 1, d_top)}
    expected = {"step": (r,), "energy": (r,), "energies": (r, 5), "level_names": (5,)}
    for k, shape in control_shapes.items():
        expected[f"latents/controls/{k}"] = expected[f"errors/controls/{k}"] = shape
    for level, shape in upper_shapes.items():
        expected[f"latents/{level}"] = expected[f"errors/{level}"] = shape
    for n in spec.sensory.resolutions:         # the model's FFT sizes
        expected[f"errors/sensory/{n}"] = (r, 1, 1 + f * 128 // (n // 4), n // 2 + 1)
    # The note level's settling (NoteInference().n_steps), recorded every stride // 2 = 5 steps;
    # its energies add "notes" and "note_prior" to the five levels.
    r2, n_slots = NoteInference().n_steps // 5, NoteSpec().max_notes
    expected.update({"notes/step": (r2,), "notes/energy": (r2,), "notes/energies": (r2, 7),
                     "notes/level_names": (7,)})
    for k in ("onset_s", "log_dur", "log2_f0", "level", "decay", "log_attack", "gate"):
        expected[f"latents/notes/{k}"] = (r2, 1, 1, n_slots)
    expected["latents/notes/timbre"] = (r2, 1, 1, n_slots, NoteSpec().n_timbre)
    for k, shape in control_shapes.items():
        expected[f"notes/latents/controls/{k}"] = (r2, *shape[1:])
    expected["errors/notes/log2_f0"] = (r2, 1, 1, f)
    expected["errors/notes/log_amp"] = (r2, 1, 1, f, 40)
    assert set(arrays) == set(expected)
    assert {k: arrays[k].shape for k in arrays} == expected
    assert list(arrays["step"]) == [0, 10, 20, 30] and arrays["step"].dtype == np.int32
    assert list(arrays["notes/level_names"]) == ["sensory", "controls", "z2", "z3", "top", "notes", "note_prior"]
    for k, a in arrays.items():
        if k not in ("step", "level_names", "notes/step", "notes/level_names"):
            assert a.dtype == np.float32 and np.all(np.isfinite(a)), k
    np.testing.assert_allclose(arrays["energies"].sum(1), arrays["energy"], rtol=1e-5)
