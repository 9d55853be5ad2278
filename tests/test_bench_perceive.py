"""The perception benchmark's scoring: cents errors after the attack, octave errors per
note, and the share of voiced frames (pcmusic.bench.perceive)."""
import numpy as np
import pytest

from pcmusic.bench import perceive as bp


def test_note_errors_skip_the_attack_and_unvoiced_frames():
    rate = 100.0                                       # 5 frames = the 50 ms skipped
    f0 = np.full(20, 440.0 * 2 ** (10 / 1200))         # +10 cents
    f0[:5] = 1000.0                                    # the attack: ignored
    f0[10] = np.nan                                    # unvoiced: not an error
    cents = bp._note_errors(f0, rate, 440.0)
    assert cents.shape == (14,)
    np.testing.assert_allclose(cents, 10.0, atol=1e-9)


def test_summary_counts_octave_errors_per_note_and_pools_frames():
    good = np.full(10, 5.0)
    octave = np.full(10, 1200.0)
    silent = np.zeros(0)
    s = bp.summarise([good, -good, octave, silent], [10, 10, 10, 10])
    assert s["notes"] == 4 and s["octave_errors"] == 2          # the octave and the silent note
    assert s["median_cents"] == pytest.approx(5.0)
    assert s["within_50"] == pytest.approx(20 / 30)
    assert s["voiced"] == pytest.approx(30 / 40)
    assert np.isnan(bp.summarise([], [])["median_cents"])


@pytest.mark.parametrize("rate", [16000, 44100])
def test_speed_melody_has_its_length_and_notes_at_the_stated_pitches(rate):
    x = bp.melody_signal(2.0, rate, seed=3)
    assert x.shape == (2 * rate,) and x.dtype == np.float32 and np.all(np.isfinite(x))
    assert 0.03 < np.sqrt(np.mean(np.square(x))) < 0.15 and np.max(np.abs(x)) < 1.0
    # Its first note (at least 0.25 s) peaks on the A2-A5 semitone grid.
    head = x[: rate // 4] * np.hanning(rate // 4)
    spectrum = np.abs(np.fft.rfft(head, 8 * head.size))
    freqs = np.fft.rfftfreq(8 * head.size, 1 / rate)
    peak = freqs[np.argmax(spectrum)]
    semitones = 12 * np.log2(peak / 110.0)
    assert abs(semitones - round(semitones)) < 0.15 and 0 <= round(semitones) <= 36
    np.testing.assert_array_equal(x, bp.melody_signal(2.0, rate, seed=3))
    assert not np.array_equal(x, bp.melody_signal(2.0, rate, seed=4))
