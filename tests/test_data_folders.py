"""Audio folders: discovery, skipping bad files, segmenting, deterministic shuffles, exact resume."""
import warnings

import jax
import numpy as np
import pytest
import soundfile as sf

from pcmusic.data import AudioFolder, DataPosition
from pcmusic.errors import PcmusicError

SR = 8000
SEGMENT = 0.25  # seconds: 2000 samples


def tone(seconds, f_hz, sr=SR):
    t = np.arange(round(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * f_hz * t)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a").mkdir()
    good = {
        "a/one.wav": tone(1.0, 220),               # 4 full segments
        "b/two.flac": tone(0.6, 330),               # 2 full + 0.1 s tail (< half a segment: dropped)
        "b/deep/three.WAV": tone(0.65, 440),       # 2 full + 0.15 s tail (>= half: padded)
    }
    for name, x in good.items():
        sf.write(root / name, x, SR, subtype="FLOAT" if name.lower().endswith(".wav") else "PCM_16")
    sf.write(root / "b" / "resampled.wav", tone(0.5, 110, sr=16000), 16000, subtype="FLOAT")  # 4000 -> 2 segments at 8 kHz
    (root / "a" / "notes.wav").write_text("this is not audio\n")
    sf.write(root / "a" / "empty.wav", np.zeros(0, np.float32), SR, subtype="FLOAT")
    nan = tone(0.5, 220)
    nan[100:110] = np.nan
    sf.write(root / "b" / "nan.wav", nan, SR, subtype="FLOAT")
    sf.write(root / "b" / "deep" / "short.ogg", tone(0.05, 220), SR)
    (root / "README.txt").write_text("ignored: not an audio extension")
    return root, good


def make(root, *, seed=0, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = AudioFolder(root, sample_rate=SR, segment_seconds=SEGMENT, key=jax.random.key(seed),
                             batch_size=kwargs.pop("batch_size", 3), **kwargs)
    return folder, [str(w.message) for w in caught]


def test_bad_files_are_skipped_with_a_summary(corpus):
    root, _ = corpus
    folder, messages = make(root)
    assert [p.relative_to(root).as_posix() for p in folder.files] == [
        "a/one.wav", "b/deep/three.WAV", "b/resampled.wav", "b/two.flac"]
    reasons = {s.path.relative_to(root).as_posix(): s.reason for s in folder.skipped}
    assert reasons == {"a/empty.wav": "empty", "a/notes.wav": "unreadable", "b/nan.wav": "non-finite samples",
                       "b/deep/short.ogg": "too short"}
    summary = [m for m in messages if "skipped 4 of 8" in m]
    assert len(summary) == 1
    for name in reasons:
        assert name in summary[0]


def test_segments_have_the_right_length_and_content(corpus):
    root, good = corpus
    folder, _ = make(root)
    assert folder.segment_samples == 2000
    assert folder.n_segments == 4 + 3 + 2 + 2  # one.wav, three.WAV (padded tail), resampled, two.flac
    first, n_valid = folder.segment(0)          # one.wav, samples 0..1999, stored as float: exact
    np.testing.assert_array_equal(first, good["a/one.wav"][:2000])
    assert n_valid == 2000
    tail, n_valid = folder.segment(6)           # three.WAV's padded tail: 0.15 s real, then zeros
    assert n_valid == 1200 and tail.shape == (2000,)
    np.testing.assert_array_equal(tail[:1200], good["b/deep/three.WAV"][4000:5200])
    assert not tail[1200:].any()
    resampled, _ = folder.segment(7)            # 110 Hz survives resampling 16 kHz -> 8 kHz
    spectrum = np.abs(np.fft.rfft(resampled * np.hanning(2000)))
    assert np.argmax(spectrum) * SR / 2000 == pytest.approx(110, abs=4)
    dropped, _ = make(root, tail="drop")
    assert dropped.n_segments == 4 + 2 + 2 + 2


def test_shuffle_is_deterministic_per_key_and_covers_each_epoch(corpus):
    root, _ = corpus
    folder, _ = make(root, seed=1)
    twin, _ = make(root, seed=1)
    other, _ = make(root, seed=2)
    orders = [folder.epoch_order(e) for e in range(3)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(folder.n_segments))
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[0], other.epoch_order(0))
    for _ in range(5):  # 15 segments: crosses into epoch 1
        a, b = folder.next_batch(), twin.next_batch()
        np.testing.assert_array_equal(a.audio, b.audio)
        assert a.audio.shape == (3, 2000) and a.audio.dtype == np.float32
    assert folder.position.epoch == 1 and folder.position.index == 15 - folder.n_segments


def test_position_restore_yields_the_same_next_batch(corpus):
    root, _ = corpus
    folder, _ = make(root, seed=3, batch_size=4)
    for _ in range(2):
        folder.next_batch()
    saved = folder.position.to_dict()
    expected = [folder.next_batch() for _ in range(3)]  # crosses the epoch boundary at 11 segments
    resumed, _ = make(root, seed=3, batch_size=4)
    resumed.seek(saved)
    for want in expected:
        got = resumed.next_batch()
        np.testing.assert_array_equal(got.audio, want.audio)
        np.testing.assert_array_equal(got.file_ids, want.file_ids)
        np.testing.assert_array_equal(got.starts, want.starts)
    with pytest.warns(UserWarning, match="changed"):
        resumed.seek(DataPosition(0, 1, fingerprint="another corpus"))


def test_a_folder_without_usable_audio_explains_itself(tmp_path):
    (tmp_path / "fake.wav").write_text("no")
    (tmp_path / "notes.mid").write_bytes(b"MThd")
    with pytest.raises(PcmusicError, match=r"no usable audio in .*1 file\(s\) with audio extensions "
                                           r"\(1 unreadable\), 1 other file\(s\) \(\.mid\)"):
        make(tmp_path)
    with pytest.raises(PcmusicError, match="not a directory"):
        make(tmp_path / "missing")
