"""A corpus of bad inputs: every one is refused up front with one line that names the
value and the fix (exit status 2 on the command line), and no existing file changes.

Cases: audio files, API values, command-line flags, configs, damaged checkpoints and
output paths. Valid but odd requests (a truncated WAV, a signal beyond [-1, 1], audio
that mixes down to silence) give the right result with a one-line warning.
"""
import hashlib
import json
import math
import shutil
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pcmusic
from pcmusic import cli
from pcmusic.dsp import audio
from pcmusic.errors import PcmusicError
from pcmusic.training import checkpoint, loop
from pcmusic.training.config import apply_overrides, load_config

SR = 16000


def tone(seconds: float = 0.3, f0_hz: float = 220.0, sample_rate: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.3 * sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in range(1, 6))).astype(np.float32)


def _snapshot(root: Path) -> dict:
    """path -> (size, sha256) of every file below root, and the set of directories."""
    files = {str(p.relative_to(root)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
             for p in sorted(root.rglob("*")) if p.is_file()}
    dirs = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}
    return {"files": files, "dirs": dirs}


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A workspace: audio files good and bad, a checkpoint and damaged copies of it, a
    finished run, and outputs that already exist."""
    root = tmp_path_factory.mktemp("ws")
    audio.save(root / "good.wav", tone(), SR)
    (root / "text.wav").write_text("this is not audio\n")
    (root / "empty.wav").write_bytes(b"")
    audio.save(root / "short.wav", tone(0.01), SR)
    nan = tone()
    nan[100] = np.nan
    import soundfile
    soundfile.write(root / "nan.wav", nan, SR, subtype="FLOAT")
    (root / "folder.wav").mkdir()
    (root / "existing.json").write_text('{"keep": true}\n')
    (root / "existing.npz").write_bytes(b"keep")
    (root / "outdir").mkdir()
    (root / "a_file").write_text("not a directory\n")

    config = load_config("tiny")
    mesh = loop.make_mesh(jax.devices()[:1])
    state = loop.init_state(config, mesh)
    run = root / "run"
    for step in (4, 8):
        checkpoint.save(run / "checkpoints", step, state=state, config=config, metrics={},
                        data_position={"step": step, "n_diverged": 0})
    (run / "config.toml").write_text("# the run's own config\n")
    (run / "summary.json").write_text('{"step": 8}\n')
    _damage(run / "checkpoints", root)
    return root


def _damage(good: Path, root: Path) -> None:
    """Damaged copies of a checkpoint directory, one way each."""
    def copy(name):
        shutil.copytree(good, root / name)
        return root / name
    meta_gone = copy("ck_no_meta")
    shutil.rmtree(meta_gone / "8" / "meta")
    truncated = copy("ck_truncated")
    arrays = sorted((p for p in (truncated / "8" / "state").rglob("*") if p.is_file()),
                    key=lambda p: p.stat().st_size)
    big = arrays[-1]
    big.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    flipped = copy("ck_flipped")
    target = max((p for p in (flipped / "8" / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    target.write_bytes(bytes(raw))
    other = copy("ck_other_config")
    for meta in (other / "8" / "meta").rglob("*"):
        if meta.is_file():
            text = meta.read_text()
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if "config" in record:
                record["config"]["model"]["no_such_key"] = 1
                meta.write_text(json.dumps(record))
    (root / "ck_empty").mkdir()
    tmp_only = root / "ck_tmp_only"
    tmp_only.mkdir()
    shutil.copytree(good / "8", tmp_only / "8.orbax-checkpoint-tmp-123")


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# ---------------------------------------------------------------- command line

CLI_CASES = [
    # audio files
    (["perceive", "{ws}/missing.wav"], "no such file"),
    (["perceive", "{ws}/text.wav"], "not a readable audio file"),
    (["perceive", "{ws}/empty.wav"], "empty.wav"),
    (["perceive", "{ws}/folder.wav"], "no audio files"),
    (["perceive", "{ws}/nan.wav"], "NaN"),
    (["perceive", "{ws}/short.wav"], "perception needs at least"),
    # flags
    (["perceive", "{ws}/good.wav", "--voices", "0"], "--voices = 0 is below its minimum 1"),
    (["perceive", "{ws}/good.wav", "--voices", "100"], "--voices = 100 is above its maximum"),
    (["perceive", "{ws}/good.wav", "--voices", "2.5"], "invalid int value"),
    (["perceive", "{ws}/good.wav", "--steps", "0"], "--steps = 0 is below its minimum 1"),
    (["perceive", "{ws}/good.wav", "--step", "4"], "--step 4 needs --ckpt"),
    (["perceive", "{ws}/good.wav", "--ckpt", "{ws}/run", "--voices", "2"], "hears 1 voice"),
    (["perceive", "{ws}/good.wav", "--ckpt", "{ws}/run", "--step", "5"], "no checkpoint for step 5"),
    (["generate", "--ckpt", "{ws}/run", "--out", "{ws}/g", "--n", "0"], "--n = 0 is below its minimum 1"),
    (["generate", "--ckpt", "{ws}/run", "--out", "{ws}/g", "--n", "1.5"], "invalid int value"),
    (["generate", "--ckpt", "{ws}/run", "--out", "{ws}/g", "--seconds", "nan"], "finite"),
    (["generate", "--ckpt", "{ws}/run", "--out", "{ws}/g", "--seconds", "inf"], "finite"),
    (["generate", "--ckpt", "{ws}/run", "--out", "{ws}/g", "--seconds", "-1"], "must be > 0"),
    (["generate", "--ckpt", "{ws}/run", "--out", "{ws}/g", "--seconds", "1e6"], "GiB"),
    (["generate", "--ckpt", "{ws}/run", "--out", "{ws}/g", "--n", "100000"], "GiB"),
    (["generate", "--ckpt", "{ws}/run", "--out", "{ws}/g", "--refine", "-1"], "--refine = -1"),
    (["generate", "--ckpt", "{ws}/run", "--out", "{ws}/g", "--listen", "-2"], "--listen = -2"),
    (["generate", "--ckpt", "{ws}/run", "--out", "{ws}/g", "--step", "7"], "no checkpoint for step 7"),
    (["generate", "--out", "{ws}/g"], "generate needs --ckpt"),
    (["generate", "--ckpt", "{ws}/run", "--out", "{ws}/g", "--notes", "p.npz", "--no-notes"], "one or the other"),
    (["probe", "{ws}/good.wav", "--ckpt", "{ws}/run", "--out", "{ws}/p.npz", "--stride", "0"], "--stride"),
    (["probe", "{ws}/good.wav", "--ckpt", "{ws}/run", "--out", "{ws}/p.txt"], "must end in .npz"),
    (["probe", "{ws}/good.wav", "--ckpt", "{ws}/run", "--out", "{ws}/p.npz", "--step", "3"], "step 3"),
    (["train", "--config", "tinny", "--workdir", "{ws}/t"], "neither a file nor a shipped config"),
    (["train", "--config", "{ws}/missing.toml", "--workdir", "{ws}/t"], "does not exist"),
    (["train", "--config", "tiny", "--workdir", "{ws}/t", "--set", "train.n_step=1"], "did you mean"),
    (["train", "--config", "tiny", "--workdir", "{ws}/t", "--set", "train.n_steps=-3"], "must be > 0"),
    (["train", "--config", "tiny", "--workdir", "{ws}/t", "--set", "model.latent_dims=[8]"], "3 items"),
    (["train", "--config", "tiny", "--workdir", "{ws}/t", "--set", "data.sample_rate=8000"], "unknown key"),
    (["train", "--config", "tiny", "--workdir", "{ws}/t", "--set", "nonsense"], "nonsense"),
    (["train", "--config", "tiny", "--workdir", "{ws}/run", "--set", "train.n_steps=2"], "beyond train.n_steps"),
    (["train", "--config", "tiny", "--workdir", "{ws}/run", "--set", "model.hidden=8"], "another config"),
    (["nonsense"], "invalid choice"),
    # output paths, refused before any work
    (["perceive", "{ws}/good.wav", "--json", "/proc/x.json"], "no file can be created in /proc"),
    (["perceive", "{ws}/good.wav", "--json", "{ws}/outdir", "--force"], "is a directory"),
    (["perceive", "{ws}/good.wav", "--json", "{ws}/existing.json"], "exists and was left untouched"),
    (["perceive", "{ws}/good.wav", "--json", "{ws}/nodir/x.json"], "does not exist"),
    (["probe", "{ws}/good.wav", "--ckpt", "{ws}/run", "--out", "/proc/p.npz"], "no file can be created"),
    (["probe", "{ws}/good.wav", "--ckpt", "{ws}/run", "--out", "{ws}/existing.npz"], "exists"),
    (["generate", "--ckpt", "{ws}/run", "--out", "/proc/gen"], "nothing can be created in /proc"),
    (["generate", "--ckpt", "{ws}/run", "--out", "{ws}/a_file"], "is a file"),
    (["train", "--config", "tiny", "--workdir", "/proc/run"], "nothing can be created in /proc"),
    (["train", "--config", "tiny", "--workdir", "{ws}/a_file"], "is a file"),
    # checkpoints, missing or damaged
    (["generate", "--ckpt", "{ws}/nowhere", "--out", "{ws}/g"], "does not exist"),
    (["generate", "--ckpt", "{ws}/ck_empty", "--out", "{ws}/g"], "holds no checkpoint"),
    (["generate", "--ckpt", "{ws}/ck_tmp_only", "--out", "{ws}/g"], "only incomplete checkpoints"),
    (["generate", "--ckpt", "{ws}/ck_no_meta", "--out", "{ws}/g"], "corrupt or truncated"),
    (["generate", "--ckpt", "{ws}/ck_truncated", "--out", "{ws}/g"], "--step 4"),
    (["generate", "--ckpt", "{ws}/ck_flipped", "--out", "{ws}/g"], "corrupt or truncated"),
    (["generate", "--ckpt", "{ws}/ck_other_config", "--out", "{ws}/g"], "no_such_key"),
    (["generate", "--ckpt", "{ws}/a_file", "--out", "{ws}/g"], "is a file"),
]


@pytest.mark.parametrize("argv, fragment", CLI_CASES, ids=[" ".join(a)[:60] for a, _ in CLI_CASES])
def test_command_line_refuses_with_one_line_and_changes_nothing(ws, argv, fragment, capsys):
    before = _snapshot(ws)
    argv = [a.format(ws=ws) for a in argv]
    try:
        rc = cli.main(argv)
    except SystemExit as exit_:   # argparse
        rc = exit_.code
    err = capsys.readouterr().err
    line = _one_line(err)
    assert rc == 2, err
    assert fragment in line, line
    assert "Traceback" not in err
    assert _snapshot(ws) == before


def test_warnings_reach_the_command_line_as_one_line(tmp_path, capsys):
    """A float WAV peaking at 17 and a WAV cut short are read, with one line each."""
    loud = tone(0.1) * 50.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        audio.save(tmp_path / "loud.wav", loud, SR)
    audio.save(tmp_path / "whole.wav", tone(0.2), SR)
    raw = (tmp_path / "whole.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(raw[: len(raw) * 3 // 4])
    for name, fragment in (("loud.wav", "beyond [-1, 1]"), ("cut.wav", "truncated")):
        rc = cli.main(["perceive", str(tmp_path / name), "--steps", "1", "--json", str(tmp_path / f"{name}.json")])
        err = capsys.readouterr().err
        assert rc == 0, err
        assert fragment in _one_line(err) and err.startswith("pcmusic perceive: warning:")


# ---------------------------------------------------------------- Python API

@pytest.fixture(scope="module")
def model():
    return pcmusic.init_model(jax.random.key(0), load_config("tiny").model)


X = tone()
KEY = jax.random.key(0)

API_CASES = [
    ("perceive rate None", lambda m: pcmusic.perceive(X, None), "not a number"),
    ("perceive rate nan", lambda m: pcmusic.perceive(X, float("nan")), "finite"),
    ("perceive rate 16000.7", lambda m: pcmusic.perceive(X, 16000.7), "not an integer"),
    ("perceive rate 10", lambda m: pcmusic.perceive(X, 10), "outside"),
    ("perceive n_voices 2.5", lambda m: pcmusic.perceive(X, SR, n_voices=2.5), "whole number"),
    ("perceive n_voices 0", lambda m: pcmusic.perceive(X, SR, n_voices=0), "below its minimum"),
    ("perceive n_voices 100", lambda m: pcmusic.perceive(X, SR, n_voices=100), "above its maximum"),
    ("perceive n_voices vs model", lambda m: pcmusic.perceive(X, SR, model=m, n_voices=2), "hears 1 voice"),
    ("perceive 10 samples", lambda m: pcmusic.perceive(X[:10], SR), "perception needs at least"),
    ("perceive 0.01 s", lambda m: pcmusic.perceive(tone(0.01), SR), "perception needs at least"),
    ("perceive 1e39", lambda m: pcmusic.perceive(np.full(SR, 1e39), SR), "beyond float32"),
    ("perceive int16", lambda m: pcmusic.perceive((X * 3e4).astype(np.int16), SR), "float samples"),
    ("perceive 2-D", lambda m: pcmusic.perceive(np.stack([X, X]), SR), "1-D"),
    ("perceive empty", lambda m: pcmusic.perceive(np.zeros(0, np.float32), SR), "non-empty"),
    ("perceive NaN", lambda m: pcmusic.perceive(np.where(np.arange(X.size) == 5, np.nan, X), SR), "NaN"),
    ("perceive voicing_db", lambda m: pcmusic.perceive(X, SR, voicing_db=-1.0), "voicing_db"),
    ("perceive batch_size 0", lambda m: pcmusic.perceive(X, SR, batch_size=0), "batch_size"),
    ("perceive model type", lambda m: pcmusic.perceive(X, SR, model="run"), "AudioModel"),
    ("generate n 1.5", lambda m: pcmusic.generate(m, KEY, n=1.5), "whole number"),
    ("generate n 0", lambda m: pcmusic.generate(m, KEY, n=0), "below its minimum"),
    ("generate int key", lambda m: pcmusic.generate(m, 0), "PRNG key"),
    ("generate keys", lambda m: pcmusic.generate(m, jax.random.split(KEY, 2)), "one PRNG key"),
    ("generate seconds nan", lambda m: pcmusic.generate(m, KEY, seconds=math.nan), "finite"),
    ("generate seconds inf", lambda m: pcmusic.generate(m, KEY, seconds=math.inf), "finite"),
    ("generate seconds 0", lambda m: pcmusic.generate(m, KEY, seconds=0.0), "must be > 0"),
    ("generate seconds 1e6", lambda m: pcmusic.generate(m, KEY, n=4, seconds=1e6), "GiB"),
    ("generate n 100000", lambda m: pcmusic.generate(m, KEY, n=100000), "GiB"),
    ("generate temperature -5", lambda m: pcmusic.generate(m, KEY, temperature=-5.0), "temperature"),
    ("generate temperature nan", lambda m: pcmusic.generate(m, KEY, temperature=math.nan), "temperature"),
    ("generate refine_steps -1", lambda m: pcmusic.generate(m, KEY, refine_steps=-1), "refine_steps"),
    ("generate intent shape", lambda m: pcmusic.generate(m, KEY, intent=jnp.zeros((1, 3))), "intent must be"),
    ("generate intent NaN", lambda m: pcmusic.generate(m, KEY, intent=jnp.full((1, 8), jnp.nan)), "NaN"),
    ("generate model type", lambda m: pcmusic.generate(m.params, KEY), "AudioModel"),
    ("probe stride 0", lambda m: pcmusic.probe(X, SR, stride=0), "stride"),
    ("load_model nowhere", lambda m: pcmusic.load_model("/nonexistent/run"), "does not exist"),
    ("config unknown key", lambda m: apply_overrides(load_config("tiny"), ["model.hiden=3"]), "did you mean"),
    ("config bad type", lambda m: apply_overrides(load_config("tiny"), ["train.n_steps=many"]), "n_steps"),
    ("config bad tuning", lambda m: apply_overrides(load_config("tiny"), ["data.tuning=7-FOO"]), "tuning"),
]


@pytest.mark.parametrize("name, call, fragment", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_refuses_with_one_line(model, name, call, fragment):
    with pytest.raises(PcmusicError) as info:
        call(model)
    message = str(info.value)
    assert "\n" not in message and fragment in message, message


def test_save_npz_refuses_before_writing(tmp_path):
    with pytest.raises(PcmusicError, match="must end in .npz"):
        pcmusic.save_npz(None, tmp_path / "p.txt")
    assert not list(tmp_path.iterdir())


def test_silence_and_antiphase_stereo_are_heard_as_silence(tmp_path):
    """Audio that mixes down to (near) silence has no voiced frame, however its rounding
    noise would sound scaled to the reference level."""
    stereo = np.stack([X, -X + np.float32(1e-7) * np.sign(X)], axis=1)
    audio.save(tmp_path / "antiphase.wav", stereo, SR)
    mono, rate = audio.load(tmp_path / "antiphase.wav")
    percept = pcmusic.perceive(mono, rate, inference=pcmusic.InferenceSpec(n_steps=5))
    assert not percept.voiced.any() and np.all(np.isnan(percept.f0_hz))
    percept = pcmusic.perceive(np.zeros(SR // 4, np.float32), SR, inference=pcmusic.InferenceSpec(n_steps=5))
    assert not percept.voiced.any()


def test_memory_limit_override(monkeypatch, model):
    """PCMUSIC_MEMORY_LIMIT_GB sets the limit the estimate is compared with."""
    monkeypatch.setenv("PCMUSIC_MEMORY_LIMIT_GB", "0.001")
    with pytest.raises(PcmusicError, match="PCMUSIC_MEMORY_LIMIT_GB"):
        pcmusic.generate(model, KEY, n=2, seconds=1.0)
    monkeypatch.setenv("PCMUSIC_MEMORY_LIMIT_GB", "lots")
    with pytest.raises(PcmusicError, match="not a number of GiB"):
        pcmusic.generate(model, KEY, n=2, seconds=1.0)


def test_corpus_is_large_enough():
    assert len(CLI_CASES) + len(API_CASES) >= 60
