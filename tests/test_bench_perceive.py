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


def test_reference_track_holds_each_note_and_the_later_onset_wins():
    notes = np.array([[0.1, 0.3, 220.0], [0.25, 0.5, 330.0], [0.7, 0.8, 440.0]])
    t = np.arange(0.0, 1.0, 0.01)
    f0 = bp.reference_track(notes, t)
    assert np.all(f0[(t < 0.1 - 1e-9)] == 0) and np.all(f0[(t > 0.5 + 1e-9) & (t < 0.7 - 1e-9)] == 0)
    assert f0[15] == 220.0 and f0[27] == 330.0 and f0[75] == 440.0     # 0.25-0.3: the later note


def test_melody_scores_separate_pitch_from_voicing():
    pytest.importorskip("mir_eval")
    notes = np.array([[0.1, 0.5, 220.0], [0.6, 0.9, 330.0]])
    t = np.arange(0.0, 1.0, 0.008)                                 # another grid than the reference
    truth = bp.reference_track(notes, t)
    perfect = bp.score_melody(notes, t, truth)
    assert perfect["raw pitch"] > 0.95 and perfect["voicing recall"] > 0.95
    assert perfect["voicing false alarm"] < 0.1                  # grid edges only
    # Every frame unvoiced but with the right pitch guess: pitch right, voicing wrong.
    guessed = bp.score_melody(notes, t, -np.where(truth > 0, truth, 200.0))
    assert guessed["raw pitch"] > 0.95 and guessed["voicing recall"] == 0.0
    # An octave too high: chroma right, pitch wrong.
    octave = bp.score_melody(notes, t, 2 * truth)
    assert octave["raw pitch"] < 0.05 and octave["raw chroma"] > 0.95


@pytest.mark.parametrize("n_notes", [2, 3])
def test_chord_sets_have_every_shape_in_range_and_repeat_per_seed(n_notes):
    chords = bp.chord_sets(n_notes, n_per_shape=3, seed=5)
    shapes = [tuple(np.diff(c)) for c in chords]
    expected = [(i,) for i in bp.INTERVALS] if n_notes == 2 else list(bp.TRIADS)
    assert sorted(set(shapes)) == sorted(expected) and len(chords) == 3 * len(expected)
    assert all(len(c) == n_notes and 45 <= c[0] and c[-1] <= 84 for c in chords)
    assert chords == bp.chord_sets(n_notes, n_per_shape=3, seed=5) != bp.chord_sets(n_notes, n_per_shape=3, seed=6)


def test_multipitch_scores_count_spurious_and_missing_pitches():
    pytest.importorskip("mir_eval")
    t = np.arange(50) / 100.0
    ref = np.array([220.0, 330.0])
    right = np.tile(ref[:, None], (1, t.size))
    assert bp._multipitch([(t, ref, right)]) == {"multipitch_precision": 1.0, "multipitch_recall": 1.0}
    one_missing = right.copy()
    one_missing[1] = np.nan
    spurious = np.concatenate([right, np.full((1, t.size), 500.0)])
    s = bp._multipitch([(t, ref, one_missing), (t, ref, spurious)])     # pooled over both clips:
    assert s["multipitch_recall"] == pytest.approx((50 + 100) / 200)    # hits / reference pitches
    assert s["multipitch_precision"] == pytest.approx((50 + 100) / (50 + 150))   # hits / estimates
    assert bp._multipitch([(t, ref, spurious)])["multipitch_precision"] == pytest.approx(2 / 3)
