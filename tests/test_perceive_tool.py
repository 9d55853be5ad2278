"""Perception as a tool: any length through fixed-shape chunks (one compiled program),
standard outputs that read back, and folder runs that resume."""
import json

import chex
import jax
import numpy as np
import pytest

import pcmusic
from pcmusic import cli, outputs
from pcmusic.dsp import audio
from pcmusic.evaluation import probe
from pcmusic.perception import chunks
from pcmusic.perception import percept as perceive_lib

SR = 16000


def melody(seconds: float, notes_hz=(220.0, 247.5, 196.0), sample_rate: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """A harmonic melody with one note per equal part: (audio, f0 per sample)."""
    n = int(seconds * sample_rate)
    f0 = np.asarray(notes_hz)[np.minimum(np.arange(n) * len(notes_hz) // n, len(notes_hz) - 1)]
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    return (0.3 * sum(np.sin(k * phase) / k for k in range(1, 7))).astype(np.float32), f0


def test_chunk_plan_covers_every_frame_once_with_context():
    for n in (1, 31, 32, 33, 256, 257, 1000, 4481):
        p = chunks.plan(n, multiple=16)
        covered = np.concatenate([np.arange(s + a, s + b) for s, (a, b) in zip(p.starts, p.keep)])
        np.testing.assert_array_equal(covered, np.arange(n))
        assert p.chunk_frames % 16 == 0 and p.chunk_frames <= chunks.CHUNK_FRAMES
        if len(p.starts) > 1:   # every kept frame has OVERLAP_FRAMES of context on both sides
            assert all(a >= chunks.OVERLAP_FRAMES and b <= p.chunk_frames - chunks.OVERLAP_FRAMES
                       for a, b in p.keep)


def test_stitch_keeps_voices_apart_across_seams():
    """Two voices swapped in the second chunk come back in the first chunk's order."""
    p = chunks.plan(400)
    f = p.chunk_frames

    def chunk(order):
        f0 = np.stack([np.full(f, np.log2(220.0)), np.full(f, np.log2(330.0))])[list(order)]
        return {"log2_f0": f0, "log_amp": np.zeros((2, f, 3)), "log_noise": np.zeros((f, 2))}
    stitched = chunks.stitch([chunk((0, 1)), chunk((1, 0))], p)
    assert stitched["log2_f0"].shape == (1, 2, 400)
    np.testing.assert_allclose(np.exp2(stitched["log2_f0"][0, :, -1]), [220.0, 330.0])


def test_a_file_longer_than_a_chunk_gives_the_track_of_perceiving_it_whole():
    """Chunked and whole settle the same energy: their tracks agree within cents, the
    chunked one is accurate everywhere, at the seam between its chunks too."""
    inference = pcmusic.InferenceSpec(n_steps=100)
    x, f0 = melody(3.3)
    chunked = pcmusic.perceive(x, SR, inference=inference)
    whole = probe(x, SR, stride=inference.n_steps, inference=inference).percept
    assert len(chunked.latents["chunk_starts"]) == 2 and chunked.f0_hz.shape == whole.f0_hz.shape
    frames = np.arange(chunked.f0_hz.shape[1])
    truth = f0[np.minimum(frames * 128, f0.size - 1)]
    steady = np.abs(np.diff(truth, prepend=truth[0])) == 0
    steady &= np.convolve(steady, np.ones(9), "same") == 9        # 4 frames from any note change
    error = 1200 * np.abs(np.log2(chunked.f0_hz[0] / truth))
    seam = chunks.CHUNK_FRAMES - 2 * chunks.OVERLAP_FRAMES
    near_seam = steady & (np.abs(frames - seam) <= chunks.OVERLAP_FRAMES)
    assert near_seam.sum() >= 20
    assert np.nanmedian(error[steady]) < 3.0 and np.nanmedian(error[near_seam]) < 5.0
    between = 1200 * np.abs(np.log2(chunked.f0_hz[0] / whole.f0_hz[0]))[steady]
    assert np.nanmedian(between) < 10.0 and np.nanpercentile(between, 95) < 20.0
    assert chunked.voiced[0][steady].mean() > 0.95 and chunked.confidence[0][steady].min() > 0.5


def test_files_of_any_length_share_one_compiled_program(monkeypatch):
    """Long files of three lengths, one chunk at a time: settle_batch is traced once."""
    raw = perceive_lib.settle_batch.__wrapped__
    counted = jax.jit(chex.assert_max_traces(raw, n=1),
                      static_argnames=("cspec", "sspec", "prior", "inference", "record_stride"))
    monkeypatch.setattr(perceive_lib, "settle_batch", counted)
    quick = pcmusic.InferenceSpec(n_steps=3)
    lengths = []
    for seconds in (2.3, 3.1, 4.7):
        p = pcmusic.perceive(melody(seconds)[0], SR, inference=quick, batch_size=1)
        lengths.append(p.f0_hz.shape[1])
    assert len(set(lengths)) == 3      # three lengths, one trace (chex raises on a second)


def _fake_percept(n_voices: int = 2, n_frames: int = 50) -> perceive_lib.Percept:
    rng = np.random.default_rng(0)
    f0 = rng.uniform(100, 800, (n_voices, n_frames)).astype(np.float32)
    voiced = rng.uniform(size=(n_voices, n_frames)) > 0.3
    return perceive_lib.Percept(
        f0_hz=np.where(voiced, f0, np.nan), amplitudes=rng.uniform(0, 0.1, (n_voices, n_frames, 4)).astype(np.float32),
        voiced=voiced, confidence=np.where(voiced, rng.uniform(size=(n_voices, n_frames)), 0).astype(np.float32),
        inharmonicity=np.zeros(n_voices, np.float32), frame_rate_hz=125.0, sample_rate=SR,
        energy=np.linspace(10, 1, 5).astype(np.float32), latents={}, start_energies=np.ones(1, np.float32))


@pytest.mark.parametrize("n_voices", [1, 2])
def test_csv_npz_json_round_trip(tmp_path, n_voices):
    p = _fake_percept(n_voices)
    written = outputs.write_percept(tmp_path / "clip", p, np.zeros(100, np.float32), outputs.PERCEPT_FORMATS,
                                    source="clip.wav")
    assert written == outputs.percept_paths(tmp_path / "clip", outputs.PERCEPT_FORMATS, n_voices)
    for v in range(n_voices):
        name = "clip.csv" if n_voices == 1 else f"clip.voice{v}.csv"
        rows = np.loadtxt(tmp_path / name, delimiter=",")
        np.testing.assert_allclose(rows[:, 0], np.arange(50) / 125.0, atol=1e-6)   # times in seconds
        np.testing.assert_allclose(rows[:, 1], np.nan_to_num(p.f0_hz[v]), atol=1e-3)  # 0: unvoiced
        np.testing.assert_allclose(rows[:, 2], p.confidence[v], atol=1e-4)
    stored = np.load(tmp_path / "clip.npz")
    for name in ("f0_hz", "amplitudes", "voiced", "confidence", "energy"):
        np.testing.assert_array_equal(stored[name], getattr(p, name))
    np.testing.assert_allclose(stored["times_s"], p.times_s)
    doc = json.loads((tmp_path / "clip.json").read_text())
    assert doc["audio"] == "clip.wav" and len(doc["times_s"]) == 50
    assert [f is None for f in doc["f0_hz"][0]] == list(~p.voiced[0])


def test_folder_runs_resume_and_skip_what_exists(tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    audio.save(src / "a.wav", melody(0.3)[0], SR)
    audio.save(src / "sub" / "b.wav", melody(0.3, (330.0,), 44100)[0], 44100)
    out = tmp_path / "out"
    # --batch 2: files go in batches of 2 and 1 (two compiled programs; the default 4
    # would make a third, for 3 files, that tests nothing more)
    argv = ["perceive", str(src), "--out", str(out), "--format", "csv,npz", "--steps", "5", "--quiet",
            "--batch", "2"]
    assert cli.main(argv) == 0
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert made == ["a.csv", "a.npz", "sub/b.csv", "sub/b.npz"]
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    audio.save(src / "c.wav", melody(0.3)[0], SR)
    assert cli.main(argv) == 0
    assert "perceived 1 file(s)" in capsys.readouterr().out and (out / "c.csv").exists()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())            # nothing redone
    assert cli.main(argv + ["--force"]) == 0
    assert "perceived 3 file(s)" in capsys.readouterr().out
    rows = np.loadtxt(out / "sub" / "b.csv", delimiter=",")
    f0 = rows[rows[:, 1] > 0, 1]
    assert abs(1200 * np.log2(np.median(f0) / 330.0)) < 30    # a 44.1 kHz file, heard at its pitch
