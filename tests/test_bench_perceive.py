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
