"""`pcmusic demo` end to end, with a shortened training (the hidden --steps flag);
everything else is the demo's own code path: its config, note, perception, generation."""
import json

import numpy as np
import pytest

from pcmusic import cli, demo
from pcmusic.data import fluid
from pcmusic.dsp import audio
from pcmusic.training import checkpoint
from pcmusic.errors import PcmusicError
from tests.test_train import energies


def test_demo_trains_perceives_generates_and_reuses_only_its_own_workdir(tmp_path, capsys):
    workdir = tmp_path / "demo"
    assert cli.main(["demo", "--workdir", str(workdir), "--steps", "4"]) == 0
    printed = capsys.readouterr().out
    for name in ("train", "perceive", "generate", "summary.json"):
        assert str(workdir / name) in printed
    summary = json.loads((workdir / "summary.json").read_text())

    assert checkpoint.latest_step(workdir / "train" / "checkpoints") == 4
    assert sorted(energies(workdir / "train")) == [4]        # logged every 5 steps and at the end

    p = summary["perceive"]
    assert ("FluidSynth" in p["note"]) == fluid.available()
    note, rate = audio.load(workdir / "perceive" / "note.wav")
    assert rate == 16000 and note.shape == (16000,)
    percept = json.loads((workdir / "perceive" / "percept.json").read_text())
    assert len(percept["energy"]) == demo.PERCEIVE_STEPS and percept["energy"][-1] < percept["energy"][0]
    assert p["median_error_cents"] < 50           # E4 heard as E4, not another note or octave
    assert (workdir / "perceive" / "pitch_track.png").stat().st_size > 0

    g = summary["generate"]
    assert len(g["samples"]) == demo.N_SOUNDS
    for sample in g["samples"]:
        assert (workdir / "generate" / sample["wav"]).exists()
        assert (workdir / "generate" / sample["png"]).stat().st_size > 0
    first, last = g["mean_energy_first_last"]
    assert np.isfinite(first) and last < first     # refinement lowers the energy
    first, last = g["mean_heard_energy_first_last"]
    assert np.isfinite(first) and last <= first    # listening never raises the heard energy

    # A previous demo is reused only with --force (which resumes its finished training,
    # tested in test_train, and rewrites its outputs); anything else is never touched.
    assert cli.main(["demo", "--workdir", str(workdir)]) == 2
    assert "--force" in capsys.readouterr().err
    demo._claim(workdir, force=True)
    (tmp_path / "other" / "data").mkdir(parents=True)
    with pytest.raises(PcmusicError, match="holds no previous demo"):
        demo._claim(tmp_path / "other", force=True)
    assert list((tmp_path / "other").iterdir()) == [tmp_path / "other" / "data"]
