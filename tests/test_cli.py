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
from tests.test_train import ROOT, TINY, tiny_run  # noqa: F401  (session fixture)

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
    assert result["sample_rate"] == SR
    # one tone, no --voices: one voice, in every part of the JSON
    assert result["n_voices"] == len(result["f0_hz"]) == len(result["amplitudes"]["voices"]) == 1
    # The frame rate is the track's: its frames span the 1 s clip, and the tone's end
    # (0.8 s) is where the voiced frames end.
    rate = result["frame_rate_hz"]
    c = cents(result["f0_hz"][0], 220.0)
    assert abs(len(c) / rate - 1.0) <= 1.0 / rate
    t = np.arange(len(c)) / rate
    assert abs(t[np.isfinite(c)].max() - 0.8) < 0.03
    tone_frames, silent_frames = c[(t > 0.045) & (t < 0.76)], c[t > 0.84]
    assert np.median(np.abs(tone_frames)) < 5 and np.isfinite(tone_frames).mean() > 0.95
    assert np.all(np.isnan(silent_frames))              # null in the JSON
    energy = result["energy"]
    assert len(energy) == 50 and energy[-1] < energy[0]   # --steps 50 reached the inference
    voice = result["amplitudes"]["voices"][0]
    assert 0.7 < voice["voiced_fraction"] < 0.85        # 0.8 s of 1 s
    # The partials are the tone's: harmonics 1-8 at 0.2 / k, nothing above them; the
    # voice's RMS is the tone's over its 0.8 s.
    partials = np.asarray(voice["mean_partial_amplitudes"])
    np.testing.assert_allclose(partials[:3], 0.2 / np.arange(1, 4), rtol=0.2)
    assert np.all(partials[:8] > 0.005) and np.all(partials[9:] < 0.01 * partials[0])
    rms = result["amplitudes"]["audio_rms"]
    assert rms == pytest.approx(np.sqrt(np.mean(np.square(audio.load(tone)[0]))), rel=1e-4)
    assert voice["rms"] == pytest.approx(rms / np.sqrt(0.8), rel=0.1)


@pytest.fixture(scope="module")
def two_tones(tmp_path_factory):
    """0.5 s of two harmonic tones at once, 220 and 330 Hz (6 partials each at 0.12 / k,
    random phases), faded in and out over 10 ms."""
    t = np.arange(int(0.5 * SR)) / SR
    phases = np.random.default_rng(0).uniform(0, 2 * np.pi, (2, 6))
    x = sum(0.12 / k * np.sin(2 * np.pi * f0 * k * t + phases[i, k - 1])
            for i, f0 in enumerate((220.0, 330.0)) for k in range(1, 7))
    x = (x * np.minimum(1, t / 0.01) * np.minimum(1, (t[-1] - t) / 0.01)).astype(np.float32)
    path = tmp_path_factory.mktemp("audio") / "two_tones.wav"
    audio.save(path, x, SR)
    return path


def test_perceive_hears_two_voices_when_asked(capsys, two_tones, tmp_path):
    out = tmp_path / "two.json"
    rc, _, err = run(capsys, "perceive", two_tones, "--voices", 2, "--json", out)
    assert rc == 0, err
    result = json.loads(out.read_text())
    assert result["n_voices"] == len(result["f0_hz"]) == len(result["amplitudes"]["voices"]) == 2
    found = sorted(np.nanmedian([np.nan if v is None else v for v in track]) for track in result["f0_hz"])
    np.testing.assert_array_less(np.abs(1200 * np.log2(np.array(found) / [220.0, 330.0])), 30.0)
    for voice in result["amplitudes"]["voices"]:
        assert voice["voiced_fraction"] > 0.8               # both sound throughout
    assert result["energy"][-1] < result["energy"][0]


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


def test_generate_writes_sounds_figures_summary_and_never_overwrites(capsys, tiny_run, tmp_path,
                                                                     monkeypatch):
    import jax

    from pcmusic import generation
    from pcmusic.training import config

    calls = []

    def generate(*args, **kwargs):                       # pcmusic.generate, watched
        calls.append((args, kwargs, generation_generate(*args, **kwargs)))
        return calls[-1][2]

    generation_generate = generation.generate
    monkeypatch.setattr(generation, "generate", generate)
    out = tmp_path / "gen"
    args = ["generate", "--ckpt", tiny_run, "--out", out, "--n", demo.N_SOUNDS,
            "--seconds", demo.SOUND_SECONDS, "--refine", demo.REFINE_STEPS, "--listen", demo.LISTEN_STEPS,
            "--seed", "3"]
    rc, _, err = run(capsys, *args)
    assert rc == 0, err
    # What the command line said reaches generate, with the run's own refinement and inference.
    (model, key), kwargs, (sounds, trace) = calls[0]
    cfg = config.load_config(tiny_run / "config.toml")
    assert model.spec == cfg.model
    np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(jax.random.key(3)))
    assert (kwargs["n"], kwargs["seconds"], kwargs["refine_steps"], kwargs["listen"].steps) == (
        demo.N_SOUNDS, demo.SOUND_SECONDS, demo.REFINE_STEPS, demo.LISTEN_STEPS)
    assert kwargs["refine"] == cfg.refine and kwargs["listen"].inference == cfg.inference
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == demo.N_SOUNDS and len(summary["samples"]) == demo.N_SOUNDS
    # whole top-level frames (hop x rate factors samples) covering the seconds asked for
    top_frame = cfg.model.controls.hop * int(np.prod(cfg.model.rate_factors))
    for i, sample in enumerate(summary["samples"]):
        sound, rate = audio.load(out / sample["wav"])
        assert rate == SR and np.max(np.abs(sound)) <= 1.0
        assert demo.SOUND_SECONDS * SR <= len(sound) < demo.SOUND_SECONDS * SR + top_frame
        assert len(sound) % top_frame == 0
        np.testing.assert_array_equal(sound, np.asarray(sounds[i]) * np.float32(sample["gain"]))
        unrefined, _ = audio.load(out / sample["unrefined_wav"])
        np.testing.assert_array_equal(unrefined, trace.unrefined_audio[i] * np.float32(sample["unrefined_gain"]))
        assert (out / sample["png"]).stat().st_size > 0
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
    (["perceive", "{tone}", "--steps", "0"], "below its minimum 1"),
    (["generate", "--ckpt", "{tmp}/nockpt", "--out", "{tmp}/gen"], "does not exist"),
    (["generate", "--ckpt", "{not_audio}", "--out", "{tmp}/gen"], "is a file"),
    (["probe", "{not_audio}", "--ckpt", "{tmp}", "--out", "{tmp}/p.npz"], "not a readable audio file"),
    (["probe", "{tone}", "--ckpt", "{tmp}", "--out", "{tmp}/p.txt"], "must end in .npz"),
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
        f"pcmusic perceive: error: {tmp_path / 'x.wav'}: no such file or folder; check the path "
        f"(cwd is {os.getcwd()})"]
    help_text = subprocess.run([sys.executable, "-m", "pcmusic", "--help"], capture_output=True,
                               text=True, env=env, timeout=60).stdout
    for command in ("demo", "train", "perceive", "generate", "probe", "bench"):
        assert command in help_text


def generate_args(ckpt, out, *extra):
    """The demo's generation (its compiled programs), sound count and seed given in `extra`."""
    return ["generate", "--ckpt", ckpt, "--out", out, "--seconds", demo.SOUND_SECONDS,
            "--refine", demo.REFINE_STEPS, "--listen", demo.LISTEN_STEPS, *extra]


def test_generate_writes_intents_and_controls_that_reproduce_it(capsys, tiny_run, tmp_path, monkeypatch):
    """Each sample's intent and controls are written beside its WAV; the intents fed back
    through --intent with the same --seed give the same sounds, bit for bit."""
    from pcmusic import generation, outputs

    traces = []
    generation_generate = generation.generate
    monkeypatch.setattr(generation, "generate", lambda *a, **kw: _watch(generation_generate, traces, a, kw))
    first = tmp_path / "first"
    rc, _, err = run(capsys, *generate_args(tiny_run, first, "--n", demo.N_SOUNDS, "--seed", 3))
    assert rc == 0, err
    trace = traces[-1]
    summary = json.loads((first / "summary.json").read_text())
    assert summary["intent_file"] is None
    d_top = trace.intent.shape[-1]
    for i, sample in enumerate(summary["samples"]):
        intent = outputs.read_intent(first / sample["intent"], d_top=d_top)
        np.testing.assert_array_equal(intent, trace.intent[i:i + 1])     # exact, float32
        with np.load(first / sample["controls"]) as f:
            assert sorted(f.files) == sorted(trace.controls)
            for name, value in trace.controls.items():
                np.testing.assert_array_equal(f[name], value[i:i + 1])
    both = tmp_path / "intents.npz"
    outputs.write_intent(both, np.concatenate([outputs.read_intent(first / s["intent"], d_top=d_top)
                                               for s in summary["samples"]]))
    again = tmp_path / "again"
    rc, _, err = run(capsys, *generate_args(tiny_run, again, "--intent", both, "--seed", 3))
    assert rc == 0, err
    np.testing.assert_array_equal(traces[-1].intent, trace.intent)
    replayed = json.loads((again / "summary.json").read_text())
    assert replayed["intent_file"] == str(both) and replayed["n"] == demo.N_SOUNDS
    for a, b in zip(summary["samples"], replayed["samples"]):
        np.testing.assert_array_equal(audio.load(again / b["wav"])[0], audio.load(first / a["wav"])[0])
        assert a["energy"] == b["energy"]


def _watch(generate, traces, args, kwargs):
    sounds, trace = generate(*args, **kwargs)
    traces.append(trace)
    return sounds, trace


def test_perceived_intent_generates_the_same_sound_twice(capsys, tone, tiny_run, tmp_path):
    """perceive --intent-out -> generate --intent: the perceived intent is clamped exactly,
    and two runs with the same intent and seed give the same sound."""
    from pcmusic import outputs, perception
    from pcmusic.training import load_model

    intent_file = tmp_path / "tone_intent.npz"
    rc, out, err = run(capsys, "perceive", tone, "--ckpt", tiny_run, "--intent-out", intent_file)
    assert rc == 0, err
    assert out.strip() == f"wrote {intent_file}"                 # no percept unless asked
    model, cfg = load_model(tiny_run)
    intent = outputs.read_intent(intent_file, d_top=model.spec.latent_dims[-1])
    # the intents training banks: the clip padded with silence to whole top-level frames
    x = audio.load(tone)[0]
    top_frame = model.spec.controls.hop * model.spec.frames_per_top
    padded = np.pad(x, (0, -len(x) % top_frame))[None]
    expected = perception.perceive_intents(model, padded, inference=cfg.inference,
                                           intent_shoot_steps=cfg.train.intent_shoot_steps)
    np.testing.assert_array_equal(intent, np.asarray(expected)[:, None])
    sounds = []
    for name in ("a", "b"):                  # short, without listening: compiles in seconds
        rc, _, err = run(capsys, "generate", "--ckpt", tiny_run, "--out", tmp_path / name, "--intent",
                         intent_file, "--seed", 7, "--seconds", 0.5, "--refine", 4, "--listen", 0)
        assert rc == 0, err
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["n"] == 1
        np.testing.assert_array_equal(
            outputs.read_intent(tmp_path / name / summary["samples"][0]["intent"], d_top=intent.shape[-1]),
            intent)
        sounds.append(audio.load(tmp_path / name / "sample_0.wav")[0])
    np.testing.assert_array_equal(sounds[0], sounds[1])


@pytest.fixture
def intent_files(tmp_path):
    def save(name, **arrays):
        path = tmp_path / name
        np.savez(path, **arrays)
        return path
    return save


@pytest.mark.parametrize("arrays, fragment", [
    ({"top": np.zeros((2, 8), np.float32)}, "holds no array 'intent' (it holds: top)"),
    ({"intent": np.zeros((2, 3, 8), np.float32)}, "has shape [2, 3, 8]; expected [n, 1, 8]"),
    ({"intent": np.zeros((2, 5), np.float32)}, "has d_top 5 (shape [2, 5]) but the model's top has 8"),
    ({"intent": np.array([[np.nan] * 8, [0.0] * 8], np.float32)}, "rows [0] hold NaN/Inf"),
    ({"intent": np.array(["a", "b"])}, "has dtype <U1"),
])
def test_bad_intent_files_are_refused_naming_file_value_and_fix(intent_files, arrays, fragment):
    from pcmusic import outputs
    from pcmusic.errors import PcmusicError

    path = intent_files("bad.npz", **arrays)
    with pytest.raises(PcmusicError) as err:
        outputs.read_intent(path, d_top=8)
    assert str(err.value).startswith(str(path)) and fragment in str(err.value)


def test_intent_files_in_every_documented_shape_read_as_n_1_d_top(intent_files):
    from pcmusic import outputs

    rows = np.arange(16, dtype=np.float32).reshape(2, 8)
    for stored, n in ((rows[0], 1), (rows, 2), (rows[:, None], 2), (rows.astype(np.float64), 2)):
        intent = outputs.read_intent(intent_files("ok.npz", intent=stored), d_top=8)
        assert intent.shape == (n, 1, 8) and intent.dtype == np.float32
        np.testing.assert_array_equal(intent[:, 0], rows[:n])


@pytest.mark.parametrize("argv, fragment", [
    (["perceive", "{tone}", "--intent-out", "{tmp}/i.npz"], "--intent-out {tmp}/i.npz needs --ckpt"),
    (["perceive", "{tone}", "{two_tones}", "--ckpt", "{run}", "--intent-out", "{tmp}/i.npz"],
     "--intent-out writes the intent of one clip; 2 files were given"),
    (["perceive", "{tone}", "--ckpt", "{run}", "--intent-out", "{tmp}/i.txt"], "must end in .npz"),
    (["generate", "--ckpt", "{run}", "--out", "{tmp}/g", "--intent", "{tmp}/none.npz"], "no such file"),
    (["generate", "--ckpt", "{run}", "--out", "{tmp}/g", "--intent", "{tone}"], "not a readable .npz"),
    (["generate", "--ckpt", "{run}", "--out", "{tmp}/g", "--intent", "{wide}"], "but the model's top has"),
    (["generate", "--ckpt", "{run}", "--out", "{tmp}/g", "--intent", "{pair}", "--n", "3"],
     "--n 3 but --intent"),
])
def test_bad_intent_options_are_one_line_and_exit_2(capsys, tmp_path, tone, two_tones, tiny_run,
                                                     intent_files, argv, fragment):
    from pcmusic.training import load_model

    d_top = load_model(tiny_run)[0].spec.latent_dims[-1]
    names = {"tmp": tmp_path, "tone": tone, "two_tones": two_tones, "run": tiny_run,
             "wide": intent_files("wide.npz", intent=np.zeros((1, d_top + 1), np.float32)),
             "pair": intent_files("pair.npz", intent=np.zeros((2, d_top), np.float32))}
    rc, out, err = run(capsys, *[a.format(**names) for a in argv])
    assert rc == 2 and err.count("\n") == 1 and err.startswith(f"pcmusic {argv[0]}: error: ")
    assert fragment.format(**names) in err and "Traceback" not in err
    assert not (tmp_path / "g").exists() and not (tmp_path / "i.npz").exists()
