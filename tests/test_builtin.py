"""The model shipped inside the package (`builtin:tiny`): restorable by name from the API and
wherever the CLI takes `--ckpt`, with its note prior; an unknown name fails in one line.
(That a wheel carries its files: tests/test_packaging.py.)"""
import json

import jax
import numpy as np
import pytest

import pcmusic
from pcmusic import builtin, cli, demo
from pcmusic.dsp import audio
from pcmusic.model import note_prior
from pcmusic.training import checkpoint, load_config
from pcmusic.training.config import SCHEDULE_KEYS, config_diff


def test_tiny_is_the_demo_model_trained_to_its_config():
    model, config = pcmusic.load_model("builtin:tiny")
    leaves = jax.tree.leaves(model.params)
    assert leaves and all(np.all(np.isfinite(np.asarray(x))) for x in leaves)
    assert config == load_config("builtin-tiny")
    assert set(config_diff(config, demo.demo_config())) <= set(SCHEDULE_KEYS)
    # only the final step ships, and it is the end of the run
    assert checkpoint.list_steps(builtin.checkpoint_path("builtin:tiny")) == [config.train.n_steps]
    assert "tiny" in builtin.names()


def test_tiny_note_prior_learned_twelve_equal_steps():
    prior = note_prior.load(builtin.note_prior_path("builtin:tiny"))
    peaks = note_prior.lattice_cents(prior)
    assert len(peaks) == 12
    steps = np.diff(np.concatenate([peaks, peaks[:1] + 1200.0]))
    np.testing.assert_allclose(steps, 100.0, atol=2.0)


def test_other_values_pass_through():
    assert builtin.checkpoint_path("runs/demo/train") == "runs/demo/train"
    assert builtin.note_prior_path("prior.npz") == "prior.npz"


def test_unknown_name_fails_in_one_line(capsys, tmp_path):
    with pytest.raises(pcmusic.PcmusicError, match="available: builtin:tiny"):
        pcmusic.load_model("builtin:huge")
    assert cli.main(["generate", "--ckpt", "builtin:huge", "--out", str(tmp_path / "gen")]) == 2
    err = capsys.readouterr().err.strip()
    assert "builtin:huge" in err and "builtin:tiny" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "gen").exists()


def test_generate_from_the_builtin_model(capsys, tmp_path):
    out = tmp_path / "gen"
    argv = ["generate", "--ckpt", "builtin:tiny", "--out", out, "--n", 1, "--seconds", 0.5,
            "--refine", 2, "--listen", 0, "--no-notes"]
    assert cli.main([str(a) for a in argv]) == 0
    sound, rate = audio.load(out / "sample_0.wav")
    assert rate == 16000 and abs(sound.size / rate - 0.5) < 0.02
    assert np.all(np.isfinite(sound)) and np.max(np.abs(sound)) > 1e-3
    assert json.loads((out / "summary.json").read_text())["checkpoint"] == "builtin:tiny"



def test_generate_phrases_from_the_builtin_model_and_its_note_prior(capsys, tmp_path):
    # --ckpt builtin:tiny goes through its note prior (--no-notes: the hierarchy, above)
    out = tmp_path / "phrases"
    argv = ["generate", "--ckpt", "builtin:tiny", "--out", out, "--n", 1, "--seconds", 1.0, "--listen", 0]
    assert cli.main([str(a) for a in argv]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checkpoint"] == "builtin:tiny" and summary["note_prior"].endswith("notes.npz")
    f0_hz = np.loadtxt(out / "sample_0.notes.csv", delimiter=",", ndmin=2)[:, 2]
    # every pitch on the 12-TET grid the prior learned (re C4 = 261.6256 Hz), within 10 cents
    steps = 1200 * np.log2(f0_hz / 261.6256) / 100
    np.testing.assert_allclose(steps, np.round(steps), atol=0.1)
