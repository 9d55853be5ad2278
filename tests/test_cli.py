"""The command line: every sub-command on tiny inputs, and bad input as one line, exit 2.

Sub-commands run in-process through `cli.main` (compiled programs are shared with the
demo test: the same model, a 1 s clip, 4 sounds of 1 s with 50 refinement steps);
one run goes through the real entry point in a subprocess.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pcmusic import cli, demo
from pcmusic.dsp import audio
from tests.test_train import ROOT, TINY, tiny_run  # noqa: F401  (session fixture, compile cache)

SR = 16000


@pytest.fixture(scope="module")
def tone(tmp_path_factory):
    """0.8 s of a 220 Hz harmonic tone, then 0.2 s of silence (1 s in all)."""
    t = np.arange(int(0.8 * SR)) / SR
    x = sum(0.2 / k * np.sin(2 * np.pi * 220.0 * k * t) for k in range(1, 9))
    x = np.concatenate([x * np.minimum(1, t / 0.01)[::1], np.zeros(int(0.2 * SR))]).astype(np.float32)
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    audio.save(path, x, SR)
    return path


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def cents(f0_hz, ref_hz):
    f = np.array([np.nan if v is None else v for v in f0_hz], float)
    return 1200 * np.log2(f / ref_hz)


def test_perceive_prints_json_with_nulls_where_unvoiced(capsys, tone):
    rc, out, _ = run(capsys, "perceive", tone, "--steps", 50)   # tuning_copy --quick's listener
    assert rc == 0
    result = json.loads(out)
    assert result["sample_rate"] == SR and result["frame_rate_hz"] == 125.0 and result["n_voices"] == 1
    c = cents(result["f0_hz"][0], 220.0)
    tone_frames, silent_frames = c[6:95], c[105:]
    assert np.median(np.abs(tone_frames)) < 5 and np.isfinite(tone_frames).mean() > 0.95
    assert np.all(np.isnan(silent_frames))              # null in the JSON
    energy = result["energy"]
    assert len(energy) == 50 and energy[-1] < energy[0]
    voice = result["amplitudes"]["voices"][0]
    assert 0.7 < voice["voiced_fraction"] < 0.85        # 0.8 s of 1 s
    assert len(voice["mean_partial_amplitudes"]) == 40
    rms = result["amplitudes"]["audio_rms"]
    assert rms == pytest.approx(np.sqrt(np.mean(np.square(audio.load(tone)[0]))), rel=1e-4)


def test_perceive_with_a_checkpoint_writes_json_and_checks_voices(capsys, tone, tiny_run, tmp_path):
    out = tmp_path / "p.json"
    rc, text, _ = run(capsys, "perceive", tone, "--ckpt", tiny_run, "--json", out,
                      "--steps", demo.PERCEIVE_STEPS)    # the demo's perception: one compile for both
    assert rc == 0 and str(out) in text
    result = json.loads(out.read_text())
    assert result["checkpoint"] == str(tiny_run) and len(result["energy"]) == demo.PERCEIVE_STEPS
    assert result["energy"][-1] < result["energy"][0]
    assert np.nanmedian(np.abs(cents(result["f0_hz"][0], 220.0)[6:95])) < 50
    rc, _, err = run(capsys, "perceive", tone, "--ckpt", tiny_run, "--json", out)
    assert rc == 2 and "exists" in err                   # nothing overwritten without --force
    rc, _, err = run(capsys, "perceive", tone, "--ckpt", tiny_run, "--voices", "2")
    assert rc == 2 and "hears 1 voice" in err


def test_generate_writes_sounds_figures_summary_and_never_overwrites(capsys, tiny_run, tmp_path):
    out = tmp_path / "gen"
    args = ["generate", "--ckpt", tiny_run, "--out", out, "--n", demo.N_SOUNDS,
            "--seconds", demo.SOUND_SECONDS, "--refine", demo.REFINE_STEPS, "--listen", demo.LISTEN_STEPS,
            "--seed", "3"]
    rc, _, err = run(capsys, *args)
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == demo.N_SOUNDS and len(summary["samples"]) == demo.N_SOUNDS
    for i, sample in enumerate(summary["samples"]):
        sound, rate = audio.load(out / sample["wav"])
        assert rate == SR and sound.shape == (16384,) and np.max(np.abs(sound)) <= 1.0
        assert (out / sample["png"]).stat().st_size > 0 and (out / sample["unrefined_wav"]).exists()
        assert len(sample["energy"]) == demo.REFINE_STEPS + 1
        heard = sample["listen_energy"]                  # listening never raises what it hears
        assert len(heard) == demo.LISTEN_STEPS + 1 and np.all(np.diff(heard) <= 0)
    mean = np.mean([s["energy"] for s in summary["samples"]], axis=0)
    assert mean[-1] < mean[0]                            # refinement lowers the energy
    assert summary["listen_steps"] == demo.LISTEN_STEPS
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    rc, _, err = run(capsys, *args)
    assert rc == 2 and "already holds" in err and "--force" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]   # no temporary files left


def test_probe_writes_a_consistent_npz(capsys, tone, tiny_run, tmp_path):
    out = tmp_path / "probe.npz"
    rc, _, err = run(capsys, "probe", tone, "--ckpt", tiny_run, "--out", out, "--stride", 5, "--steps", 20)
    assert rc == 0, err
    with np.load(out) as f:
        assert list(f["step"]) == list(range(0, 20, 5))
        assert list(f["level_names"]) == ["sensory", "controls", "z2", "z3", "top"]
        np.testing.assert_allclose(f["energies"].sum(axis=1), f["energy"], rtol=1e-5)
    rc, _, err = run(capsys, "probe", tone, "--ckpt", tiny_run, "--out", out)
    assert rc == 2 and "exists" in err


def test_train_command_resumes_a_finished_run(capsys, tiny_run, tmp_path):
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir)
    rc, out, err = run(capsys, "train", "--config", TINY, "--workdir", workdir, "--quiet")
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["step"] == 8 and summary["steps_run"] == 0


@pytest.fixture
def not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio")
    return path


@pytest.mark.parametrize("argv, fragment", [
    (["perceive", "{tmp}/missing.wav"], "no such file"),
    (["perceive", "{not_audio}"], "not a readable audio file"),
    (["perceive", "{tone}", "--ckpt", "{tmp}/nockpt"], "does not exist"),
    (["perceive", "{tone}", "--ckpt", "{tmp}"], "holds no checkpoint"),
    (["perceive", "{tone}", "--json", "{tmp}/no/dir/out.json"], "does not exist"),
    (["perceive", "{tone}", "--steps", "0"], "at least 1"),
    (["generate", "--ckpt", "{tmp}/nockpt", "--out", "{tmp}/gen"], "does not exist"),
    (["generate", "--ckpt", "{not_audio}", "--out", "{tmp}/gen"], "is a file"),
    (["probe", "{not_audio}", "--ckpt", "{tmp}", "--out", "{tmp}/p.npz"], "not a readable audio file"),
    (["probe", "{tone}", "--ckpt", "{tmp}", "--out", "{tmp}/p.txt"], "holds no checkpoint"),
    (["train", "--config", "{tmp}/none.toml", "--workdir", "{tmp}/w"], "does not exist"),
    (["train", "--config", "{tiny}", "--workdir", "{tmp}/w", "--set", "train.n_step=3"], "did you mean"),
    (["train", "--config", "{tiny}", "--workdir", "{not_audio}"], "is a file"),
    (["demo", "--workdir", "{tone_dir}"], "not empty and holds no previous demo"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, tone, not_audio, argv, fragment):
    names = {"tmp": tmp_path, "tone": tone, "not_audio": not_audio, "tiny": TINY, "tone_dir": tone.parent}
    rc, _, err = run(capsys, *[a.format(**names) for a in argv])
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith(f"pcmusic {argv[0]}: error: ") and fragment in err
    assert "Traceback" not in err


def test_entry_point_reports_errors_without_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "pcmusic", "perceive", str(tmp_path / "x.wav")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"pcmusic perceive: error: {tmp_path / 'x.wav'}: no such file; check the path (cwd is {os.getcwd()})"]
    help_text = subprocess.run([sys.executable, "-m", "pcmusic", "--help"], capture_output=True,
                               text=True, env=env, timeout=60).stdout
    for command in ("demo", "train", "perceive", "generate", "probe", "bench"):
        assert command in help_text
