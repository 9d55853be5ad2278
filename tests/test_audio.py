"""Audio I/O: round trips, mixdown, resampling, atomic writes, and errors that explain themselves."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

from pcmusic.dsp import audio
from pcmusic.errors import AudioFileError


def tone(freq_hz, sample_rate, seconds=0.5, amplitude=0.5):
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def peak_hz(x, sample_rate):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * sample_rate / len(x)


def raises(fn, *fragments):
    with pytest.raises(AudioFileError) as info:
        fn()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


@pytest.mark.parametrize("ext, tolerance", [("wav", 0.0), ("flac", 1.0 / 32768), ("ogg", None)])
def test_round_trip(tmp_path, ext, tolerance):
    x = tone(440.0, 16000)
    path = audio.save(tmp_path / f"a.{ext}", x, 16000)
    y, sample_rate = audio.load(path)
    assert sample_rate == 16000 and y.dtype == np.float32 and y.ndim == 1
    if tolerance is not None:
        assert len(y) == len(x) and np.max(np.abs(y - x)) <= tolerance
    else:  # lossy Vorbis: same tone, small relative error
        n = min(len(x), len(y))
        assert abs(len(y) - len(x)) < 64
        assert np.sqrt(np.mean((y[:n] - x[:n]) ** 2)) < 0.05 * np.sqrt(np.mean(x ** 2))
        assert abs(peak_hz(y, 16000) - 440.0) <= 2.0


def test_stereo_is_mixed_down_to_the_channel_mean(tmp_path):
    left, right = tone(300.0, 22050), tone(700.0, 22050, amplitude=0.25)
    audio.save(tmp_path / "s.wav", np.stack([left, right], axis=1), 22050)
    y, _ = audio.load(tmp_path / "s.wav")
    assert np.allclose(y, 0.5 * (left + right), atol=1e-7)


def test_resampling_preserves_frequency(tmp_path):
    x = tone(1000.0, 44100, seconds=1.0)
    audio.save(tmp_path / "t.flac", x, 44100)
    y, sample_rate = audio.load(tmp_path / "t.flac", sample_rate=16000)
    assert sample_rate == 16000 and abs(len(y) - 16000) <= 1
    assert abs(peak_hz(y, 16000) - 1000.0) <= 1.0  # within one 1-Hz bin
    up = audio.resample(tone(3000.0, 16000, seconds=1.0), 16000, 48000)
    assert up.dtype == np.float32 and abs(len(up) - 48000) <= 1
    assert abs(peak_hz(up, 48000) - 3000.0) <= 1.0
    # nothing appears above the original Nyquist when going up
    spectrum = np.abs(np.fft.rfft(up * np.hanning(len(up))))
    assert spectrum[8100:].max() < 1e-3 * spectrum.max()


def test_missing_not_audio_and_empty_files(tmp_path):
    raises(lambda: audio.load(tmp_path / "nope.wav"), "nope.wav", "no such file")
    fake = tmp_path / "text.wav"
    fake.write_text("this is not audio")
    raises(lambda: audio.load(fake), "text.wav", "not a readable audio file", "sox")
    raises(lambda: audio.load(tmp_path), "is a directory")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    raises(lambda: audio.load(tmp_path / "empty.wav"), "empty.wav", "no samples")


def test_bad_samples_and_rates_in_files(tmp_path):
    x = tone(440.0, 16000)
    x[100], x[200], x[300] = np.nan, np.inf, np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    raises(lambda: audio.load(tmp_path / "nan.wav"), "nan.wav", "2 NaN and 1 Inf", "sample 100")
    sf.write(tmp_path / "slow.wav", tone(10.0, 500), 500)
    raises(lambda: audio.load(tmp_path / "slow.wav"), "slow.wav", "500 Hz", "outside")
    audio.save(tmp_path / "ok.wav", tone(440.0, 16000), 16000)
    raises(lambda: audio.load(tmp_path / "ok.wav", sample_rate=0), "sample rate 0")


@pytest.mark.parametrize("rate, fragment", [(22050.5, "not an integer"), (999, "outside"),
                                            (400_000, "outside"), ("16k", "not a number"),
                                            (float("nan"), "not a finite"), (True, "not a number")])
def test_absurd_sample_rates(rate, fragment):
    raises(lambda: audio.validate(tone(440.0, 16000), rate, name="mine"), "mine", repr(rate), fragment)
    assert audio.check_sample_rate(16000.0) == 16000


def test_validate_user_arrays():
    raises(lambda: audio.validate(np.zeros(0, np.float32), 16000, name="clip"), "clip", "empty")
    raises(lambda: audio.validate(np.zeros((2, 8), np.float32), 16000), "(2, 8)", "mono")
    raises(lambda: audio.validate(np.zeros(8, np.int16), 16000), "int16", "/ 32768")
    raises(lambda: audio.validate(np.array(["a"]), 16000), "not real audio")
    x = np.zeros(16000, np.float32)
    x[8000] = np.inf
    raises(lambda: audio.validate(x, 16000, name="gen"), "gen", "0 NaN and 1 Inf", "sample 8000 (0.5000 s)")
    assert audio.validate(np.zeros(4, np.float64), 16000).dtype == np.float32


def test_clipping_warns_and_clips_integer_formats(tmp_path):
    x = 3.0 * tone(440.0, 16000)  # peak 1.5
    with pytest.warns(UserWarning, match=r"samples beyond \[-1, 1\] \(peak 1.5\)"):
        audio.save(tmp_path / "c.flac", x, 16000)
    assert np.abs(audio.load(tmp_path / "c.flac")[0]).max() <= 1.0
    with pytest.warns(UserWarning, match="beyond"):
        audio.save(tmp_path / "c.wav", x, 16000)  # float WAV keeps the values
    with pytest.warns(UserWarning, match="beyond"):
        y, _ = audio.load(tmp_path / "c.wav")
    assert np.allclose(y, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        audio.save(tmp_path / "quiet.wav", x / 2.0, 16000)


def test_never_overwrites_unless_asked(tmp_path):
    path = tmp_path / "keep.wav"
    audio.save(path, tone(440.0, 16000), 16000)
    before = path.read_bytes()
    raises(lambda: audio.save(path, tone(880.0, 16000), 16000), "keep.wav", "overwrite=True")
    assert path.read_bytes() == before
    audio.save(path, tone(880.0, 16000), 16000, overwrite=True)
    assert abs(peak_hz(audio.load(path)[0], 16000) - 880.0) <= 2.0


def test_unwritable_outputs(tmp_path):
    x = tone(440.0, 16000)
    raises(lambda: audio.save(tmp_path / "a.mp3", x, 16000), "a.mp3", ".wav, .flac, .ogg")
    raises(lambda: audio.save(tmp_path / "a", x, 16000), "unsupported extension")
    raises(lambda: audio.save(tmp_path / "missing" / "a.wav", x, 16000), "missing", "mkdir -p")
    (tmp_path / "file").write_text("")
    raises(lambda: audio.save(tmp_path / "file" / "a.wav", x, 16000), "is a file, not a directory")
    raises(lambda: audio.save(tmp_path / "a.flac", x, 16000, subtype="FLOAT"), "FLOAT", "PCM_16")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        raises(lambda: audio.save(locked / "a.wav", x, 16000), "not writable")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["file"] + (["locked"] if os.geteuid() else []))


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, error):
    path = tmp_path / "out.wav"
    audio.save(path, tone(440.0, 16000), 16000)
    before = path.read_bytes()

    def broken_write(file, data, *args, **kwargs):
        file.write(b"RIFF\x00\x00 half a header")
        raise error

    monkeypatch.setattr(sf, "write", broken_write)
    expected = AudioFileError if isinstance(error, OSError) else KeyboardInterrupt
    for target, overwrite in ((path, True), (tmp_path / "new.wav", False)):
        with pytest.raises(expected) as info:
            audio.save(target, tone(880.0, 16000), 16000, overwrite=overwrite)
        if expected is AudioFileError:
            assert "No space left" in str(info.value) and "nothing was written" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]
    assert path.read_bytes() == before


def test_core_imports_without_soundfile():
    code = ("import sys; sys.modules['soundfile'] = None; sys.modules['soxr'] = None\n"
            "import pcmusic, pcmusic.dsp.audio, pcmusic.errors\n"
            "pcmusic.audio.validate([0.0, 0.5], 16000)\n"
            "try:\n    pcmusic.dsp.audio.load('x.wav')\nexcept ImportError:\n    print('lazy')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "lazy", out.stderr


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    """Outputs go through a temporary file and a rename; they must still be readable by
    others as any file the user writes (0666 & ~umask), WAV, JSON and PNG alike."""
    import os

    from pcmusic import outputs, plots

    old = os.umask(0o022)
    try:
        written = [audio.save(tmp_path / "a.wav", tone(440.0, 16000), 16000),
                   outputs.write_atomic(tmp_path / "a.json", "{}\n"),
                   plots.save_pitch_track(tmp_path / "a.png", tone(440.0, 16000), 16000,
                                          np.full((1, 10), 440.0), 125.0)]
    finally:
        os.umask(old)
    for path in written:
        assert (os.stat(path).st_mode & 0o777) == 0o644, path
