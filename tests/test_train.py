"""Training: exact resumption after SIGKILL, 1 vs 8 devices, logs, configs, checkpoints.

Every run here uses configs/tiny.toml's model (the demo's), so one compiled step
serves them all; the suite's persistent compilation cache (conftest) carries it into the
subprocesses.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pcmusic import demo, outputs
from pcmusic.model import intents
from pcmusic.training import checkpoint, config
from pcmusic.perception import perceive_intents
from pcmusic.training import loop as train
from pcmusic.errors import CheckpointError, ConfigError

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "tiny.toml"


def tiny_config(*overrides):
    return config.load_config(TINY, overrides=overrides)


def energies(workdir, split="train"):
    """{step: energy} of a run's metrics.jsonl."""
    return {r["step"]: r["energy"] for r in outputs.read_metrics(Path(workdir) / "metrics.jsonl")
            if r["split"] == split}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """configs/tiny.toml trained for its 8 steps on all (8 fake) devices; shared by the
    CLI tests (they import this fixture). Idempotent: a finished run is reused."""
    workdir = tmp_path_factory.getbasetemp() / "tiny_run"
    if not (workdir / "summary.json").exists():
        train.train(tiny_config(), workdir, progress=False)
    return workdir


def test_tiny_config_is_the_demo_model_and_configs_load():
    assert set(config.config_diff(tiny_config(), demo.demo_config())) <= set(config.SCHEDULE_KEYS)
    assert config.load_config(ROOT / "configs" / "default.toml").model.latent_dims == (32, 32, 16)
    assert train.clip_frames(tiny_config()) == 64   # 0.5 s rounded up to 4 top-level frames
    for name in ("melodies", "melodies-gpu"):         # the note-level models' configs
        cfg = config.load_config(name)
        assert cfg.data.synthetic == "melodies" and cfg.train.note_prior_clips > 0


def test_run_logs_evaluates_checkpoints_and_learns(tiny_run):
    records = outputs.read_metrics(tiny_run / "metrics.jsonl")
    steps = [r["step"] for r in records if r["split"] == "train"]
    assert steps == list(range(1, 9))
    assert all(not r["diverged"] and r["n_diverged"] == 0 for r in records if r["split"] == "train")
    evals = energies(tiny_run, "eval")
    assert sorted(evals) == [4, 8]
    # the held-out batch is fixed, so its energy is comparable across steps: learning lowers it
    assert evals[8] < evals[4]
    assert checkpoint.list_steps(tiny_run / "checkpoints") == [4, 8]
    assert list((tiny_run / "tb").glob("events.out.tfevents.*"))
    assert (tiny_run / "training.png").stat().st_size > 0
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["step"] == 8 and summary["devices"] == len(jax.devices())
    assert config.load_config(tiny_run / "config.toml") == tiny_config()


def test_one_device_gives_the_same_losses_as_eight(tiny_run, tmp_path):
    assert len(jax.devices()) == 8
    train.train(tiny_config("train.n_steps=4"), tmp_path, devices=jax.devices()[:1], progress=False)
    one, eight = energies(tmp_path), energies(tiny_run)
    assert sorted(one) == [1, 2, 3, 4]
    np.testing.assert_allclose([one[s] for s in one], [eight[s] for s in one], rtol=1e-4)
    assert json.loads((tmp_path / "summary.json").read_text())["devices"] == 1


KILL_IN_SAVE = """
import os, signal, sys
from pcmusic import cli
from pcmusic.training import checkpoint
save = checkpoint.Checkpointer.save
def save_then_die(self, step, **kwargs):
    save(self, step, **kwargs)      # orbax writes asynchronously: the save is still running
    if step == 4:
        os.kill(os.getpid(), signal.SIGKILL)
checkpoint.Checkpointer.save = save_then_die
sys.exit(cli.main(sys.argv[1:]))
"""


def test_resume_after_sigkill_gives_the_losses_of_an_uninterrupted_run(tiny_run, tmp_path):
    workdir = tmp_path / "run"
    args = ["train", "--config", str(TINY), "--workdir", str(workdir), "--quiet",
            "--set", "train.ckpt_every=2"]   # a schedule key: same trajectory as tiny_run
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Killed in the middle of the run, while orbax is still writing step 4: the last
    # complete checkpoint is step 2, and steps 3-4 were already logged.
    killed = subprocess.run([sys.executable, "-c", KILL_IN_SAVE, *args], env=env, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert checkpoint.latest_step(workdir / "checkpoints") in (2, 4)
    assert max(energies(workdir)) == 4
    resumed = subprocess.run([sys.executable, "-m", "pcmusic", *args], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after, reference = energies(workdir), energies(tiny_run)
    assert sorted(after) == list(range(1, 9))    # each step logged once (the killed run logged 3-4)
    np.testing.assert_allclose([after[s] for s in range(1, 9)], [reference[s] for s in range(1, 9)],
                               rtol=1e-5)
    np.testing.assert_allclose(energies(workdir, "eval")[8], energies(tiny_run, "eval")[8], rtol=1e-5)
    assert not [p for p in (workdir / "checkpoints").iterdir() if "tmp" in p.name]


def test_resume_refuses_another_config_but_allows_a_longer_schedule(tiny_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run, workdir)
    with pytest.raises(CheckpointError, match=r"model.hidden: checkpoint 32, now 16.*train.learning_rate"):
        train.train(tiny_config("model.hidden=16", "train.learning_rate=0.1"), workdir, progress=False)
    summary = train.train(tiny_config("train.eval_every=0"), workdir, progress=False)
    assert summary["steps_run"] == 0 and summary["step"] == 8
    assert checkpoint.list_steps(workdir / "checkpoints") == [4, 8]


def test_load_model_restores_the_trained_params_on_one_device(tiny_run):
    model, cfg = checkpoint.load_model(tiny_run)
    assert cfg == tiny_config()
    state, meta = checkpoint.restore(tiny_run / "checkpoints")   # as stored, no target
    assert meta["step"] == 8
    saved, restored = jax.tree.leaves(state["params"]), jax.tree.leaves(model.params)
    assert len(saved) == len(restored)
    for a, b in zip(saved, restored):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert b.sharding.device_set == {jax.local_devices()[0]}
    # tiny.toml keeps the ring buffer: the tops of its 8 steps x 8 clips
    bank = np.asarray(intents.bank_of(model.params))
    assert int(model.params["intent"]["bank_count"]) == 64 and bank.shape == (64, 8)
    assert np.all(np.isfinite(bank)) and np.all(np.std(bank, axis=0) > 0)
    # re-banking (train.bank_refresh_clips) replaces it with held-out clips' intents under
    # the final params
    cfg = tiny_config("train.bank_refresh_clips=16")
    batches = [jnp.asarray(b) for b in train.TrainingData(cfg).eval_batches(16, salt=1)]
    params = train.rebank(model.params, batches, spec=cfg.model, inference=cfg.inference,
                          intent_shoot_steps=cfg.train.intent_shoot_steps, n_clips=16)
    fresh_bank = np.asarray(intents.bank_of(params))
    fresh = np.concatenate([np.asarray(perceive_intents(
        model, b, inference=cfg.inference,
        intent_shoot_steps=cfg.train.intent_shoot_steps)) for b in batches])
    assert fresh_bank.shape == (16, 8)
    np.testing.assert_allclose(fresh_bank, fresh, atol=1e-6)


def test_topdown_f0_diagnostic_measures_each_level_and_checks_its_input(tiny_run, capsys):
    from pcmusic import data
    from pcmusic.evaluation import diagnose
    from pcmusic.errors import PcmusicError
    model, cfg = checkpoint.load_model(tiny_run)
    spec = train.synthetic_spec(cfg, batch_size=8, n_frames=train.clip_frames(cfg))
    batch = data.synthetic_batch(jax.random.key(3), spec)
    f0 = np.asarray(batch.f0_hz)[:, :1]
    errors = diagnose.f0_errors_cents(model, batch.audio, f0, inference=cfg.inference)
    assert set(errors) == set(diagnose.LEVELS)
    assert all(e.shape == (int(np.sum(np.isfinite(f0))),) and np.all(np.isfinite(e)) for e in errors.values())
    assert np.median(errors["settled"]) < 20.0          # perception hears the notes
    with pytest.raises(PcmusicError, match="f0_hz"):
        diagnose.f0_errors_cents(model, batch.audio, f0[:, :, :10], inference=cfg.inference)
    sys.path.insert(0, str(ROOT / "experiments"))
    import topdown_f0
    assert topdown_f0.main(["--ckpt", str(tiny_run), "--n", "8"]) == 0
    out = capsys.readouterr().out
    assert "from_top" in out and "from_intent" in out


def test_refinement_experiment_compares_the_intents_heard_in_refined_and_unrefined_sounds(
        tiny_run, tmp_path, capsys):
    from pcmusic.evaluation import fidelity
    from pcmusic.errors import PcmusicError
    sys.path.insert(0, str(ROOT / "experiments"))
    import refinement
    out = tmp_path / "fidelity.json"
    assert refinement.main(["--ckpt", str(tiny_run), "--n", "8", "--refine", "6", "--listen", "2",
                            "--json", str(out)]) == 0
    s = json.loads(out.read_text())
    assert s["n"] == 8 and s["energy_nonincreasing"] and s["energy_ratio"] < 1.0
    heard_first, heard_last = s["listen_energy_first_last"]
    assert s["listen_steps"] == 2 and heard_last <= heard_first
    assert 0.0 <= s["fraction_closer"] <= 1.0 and s["mean_distance_refined"] > 0.0
    assert "refined perceived closer" in capsys.readouterr().out
    model, cfg = checkpoint.load_model(tiny_run)
    # what the model hears in a sound is what it would bank for it: the same function as rebank's
    heard = fidelity.perceived_intents(model, np.asarray(train.TrainingData(cfg).eval_batches(8)[0]),
                                       inference=cfg.inference, intent_shoot_steps=0)
    assert heard.shape == (8, cfg.model.latent_dims[-1]) and np.all(np.isfinite(heard))
    with pytest.raises(PcmusicError, match="n >= 2"):
        fidelity.refinement_fidelity(model, jax.random.key(0), n=1)
    assert refinement.main(["--ckpt", str(tmp_path / "nowhere")]) == 2


def test_a_diverged_batch_is_counted_and_skipped(tmp_path, monkeypatch):
    batch = train.TrainingData.batch

    def poisoned(self, step):
        audio = batch(self, step)
        return np.full_like(audio, np.nan) if step == 1 else audio

    monkeypatch.setattr(train.TrainingData, "batch", poisoned)
    summary = train.train(tiny_config("train.n_steps=3", "train.eval_every=0"), tmp_path, progress=False)
    records = {r["step"]: r for r in outputs.read_metrics(tmp_path / "metrics.jsonl")}
    assert records[2]["diverged"] and records[2]["n_diverged"] == 1 and records[2]["energy"] is None
    assert not records[3]["diverged"] and np.isfinite(records[3]["energy"])
    assert summary["n_diverged"] == 1
    assert "NaN" not in (tmp_path / "metrics.jsonl").read_text()


@pytest.mark.parametrize("overrides, fragment", [
    (["data.sample_rate=8000"], "unknown key"),
    (["data.tuning=7-FOO"], "unknown tuning"),
    (["model.latent_dims=[8, 8]"], "a list of 3 items"),
    (["inference.n_steps=1.5"], "expected int"),
    (["train.n_step=1"], "did you mean 'train.n_steps'"),
    (["data.synthetic=chords"], "voices >= 2"),
    (["train.topdown_weight=-1.0"], "topdown_weight"),
])
def test_config_errors_name_the_key(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        tiny_config(*overrides)


def test_batch_size_must_divide_over_the_devices(tmp_path):
    with pytest.raises(ConfigError, match="multiple of the 8 devices"):
        train.train(tiny_config("train.batch_size=4"), tmp_path, progress=False)


def test_folder_data_resumes_at_its_position(tmp_path):
    from pcmusic.dsp import audio

    for i in range(3):
        audio.save(tmp_path / f"clip{i}.wav", np.full(16000, 0.1 * (i + 1), np.float32), 16000)
    cfg = tiny_config("data.kind=folder", f"data.folder={tmp_path}", "train.batch_size=2")
    data = train.TrainingData(cfg)
    straight = [data.batch(s) for s in range(5)]
    again = train.TrainingData(cfg)
    [again.batch(s) for s in range(2)]
    position = json.loads(json.dumps(again.position(2)))   # as a checkpoint stores it
    resumed = train.TrainingData(cfg)
    resumed.seek(position)
    for s in range(2, 5):
        np.testing.assert_array_equal(resumed.batch(s), straight[s])
    assert len(data.eval_batches()) == 4 and data.eval_batches()[0].shape == (2, 8192)


def test_a_run_learns_the_tuning_it_hears_and_generates_phrases_through_it(tmp_path):
    # tiny's model trained on 5-TET melodies; at the end the model hears held-out clips as
    # notes and the run's note prior is fitted to them: its lattice is 5-TET's, and
    # `generate --ckpt` then draws phrases of notes from it, in the model's timbre.
    from pcmusic import cli, data
    from pcmusic.model import note_prior

    run = tmp_path / "melodies"
    cfg = tiny_config("data.synthetic=melodies", "data.tuning=5-TET", "data.notes_per_melody=3",
                      "train.n_steps=2", "train.eval_every=0", "train.note_prior_clips=16")
    train.train(cfg, run, progress=False)
    prior = note_prior.load(run / checkpoint.NOTE_PRIOR_FILE)
    assert checkpoint.note_prior_path(run / "checkpoints") == run / checkpoint.NOTE_PRIOR_FILE
    # ~30 notes heard by a barely trained model: the four strongest pitch classes lie on
    # the lattice (the fifth may split in two where its few notes scatter)
    peaks = note_prior.lattice_cents(prior, max_peaks=4)
    five_tet = data.parse_tuning("5-TET")
    err = np.abs(data.scale_error_cents(2.0 ** (peaks / 1200.0), five_tet, f_ref_hz=cfg.data.f_ref_hz))
    assert len(peaks) == 4 and np.all(err < 5.0), peaks
    # the clips' hierarchy intents are linked to their phrase intents
    d_top = cfg.model.latent_dims[-1]
    assert note_prior.has_link(prior) and prior.link_weight.shape == (d_top, 3)
    assert np.all(np.asarray(prior.link_sd) <= 1.2 * np.asarray(prior.intent_sd))

    out = tmp_path / "gen"
    argv = ["generate", "--ckpt", str(run), "--out", str(out), "--n", "1", "--seconds", "1.5", "--listen", "1"]
    assert cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["note_prior"] == str(run / checkpoint.NOTE_PRIOR_FILE)
    assert len(summary["samples"][0]["hierarchy_intent"]) == d_top    # drawn under one of the model's intents
    assert (out / "sample_0.mid").is_file() and (out / "sample_0.wav").is_file()
    f0_hz = np.loadtxt(out / "sample_0.notes.csv", delimiter=",", ndmin=2)[:, 2]
    assert f0_hz.size >= 2
    assert np.median(np.abs(data.scale_error_cents(f0_hz, five_tet, f_ref_hz=cfg.data.f_ref_hz))) < 15.0
