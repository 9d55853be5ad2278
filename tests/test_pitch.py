"""The fixed spectral encoder: salience peaks, exact tracking, explaining away, read-off."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pcmusic.dsp import pitch, synth

SR, HOP = 16000, 128


def _tone(f0_hz, n_frames, *, n_harmonics=12, slope=1.0, sample_rate=SR):
    f0 = jnp.broadcast_to(jnp.asarray(f0_hz, jnp.float32), (n_frames,))
    k = jnp.arange(1, n_harmonics + 1, dtype=jnp.float32)
    amps = jnp.broadcast_to(0.3 * k ** -slope, (n_frames, n_harmonics))
    return synth.harmonic(f0, amps, sample_rate=sample_rate, hop=HOP)


@pytest.mark.parametrize("f0_hz", [82.4, 196.0, 440.0, 1046.5])
def test_salience_peaks_at_the_fundamental_not_an_octave(f0_hz):
    n_frames = 40
    spec = pitch.compressed_spectrum(_tone(f0_hz, n_frames), sample_rate=SR, hop=HOP, n_frames=n_frames)
    grid = pitch.f0_grid(40.0, 2000.0)
    sal = pitch.salience(spec, grid, sample_rate=SR)
    best = grid[np.asarray(jnp.argmax(sal[20]))]
    assert abs(1200 * np.log2(best / f0_hz)) <= pitch.CENTS_STEP


def test_l1_min_filter_matches_brute_force():
    rng = np.random.default_rng(0)
    cost = jnp.asarray(rng.normal(size=50).astype(np.float32))
    best, arg = pitch._l1_min_filter(cost, jnp.float32(0.3))
    g = np.arange(50)
    brute = np.asarray(cost)[None, :] + 0.3 * np.abs(g[:, None] - g[None, :])
    np.testing.assert_allclose(best, brute.min(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(cost)[np.asarray(arg)] + 0.3 * np.abs(g - np.asarray(arg)),
                               brute.min(1), rtol=1e-5, atol=1e-5)


def test_track_is_the_exact_dynamic_programming_optimum():
    rng = np.random.default_rng(1)
    sal = jnp.asarray(rng.uniform(0.1, 1.0, size=(6, 7)).astype(np.float32))
    path = np.asarray(pitch.track(sal, jump_cost_per_semitone=0.2, cents_step=100.0))
    local = -np.log(np.asarray(sal) / np.asarray(sal).max(1, keepdims=True) + pitch.SALIENCE_FLOOR)

    def cost(p):
        return local[np.arange(6), p].sum() + 0.2 * np.abs(np.diff(p)).sum()

    best = min(itertools.product(range(7), repeat=6), key=lambda p: cost(np.array(p)))
    assert cost(path) == pytest.approx(cost(np.array(best)), rel=1e-5)


def test_track_follows_a_two_note_melody():
    a = _tone(220.0, 30)
    b = _tone(330.0, 30)
    f0 = pitch.propose(jnp.concatenate([a, b]), sample_rate=SR, hop=HOP, n_frames=60, n_voices=1,
                         f0_min_hz=40.0, f0_max_hz=2000.0)
    cents = 1200 * np.log2(np.asarray(f0[0]) / np.r_[np.full(30, 220.0), np.full(30, 330.0)])
    inside = np.r_[np.arange(5, 25), np.arange(37, 55)]  # away from the change and the edges
    assert np.all(np.abs(cents[inside]) < 15)


def _assert_every_note_has_a_voice(audio, refs_hz, *, n_frames, f0_min_hz, f0_max_hz):
    """Each reference within 30 cents of some voice's median f0 over frames 10-30 of the
    proposal with one voice per reference."""
    f0 = np.asarray(pitch.propose(audio, sample_rate=SR, hop=HOP, n_frames=n_frames, n_voices=len(refs_hz),
                                  f0_min_hz=f0_min_hz, f0_max_hz=f0_max_hz))
    found = np.median(f0[:, 10:30], axis=1)
    for ref in refs_hz:
        assert np.min(np.abs(1200 * np.log2(found / ref))) < 30, found


def _noise(n_frames):
    return 1e-3 * np.random.default_rng(0).normal(size=n_frames * HOP).astype(np.float32)


def _midi_hz(midi):
    return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


@pytest.mark.parametrize("exact", [True, False])
def test_untangling_keeps_each_note_of_a_held_chord_in_one_voice(monkeypatch, exact):
    if not exact:   # the greedy path for many voices
        monkeypatch.setattr(pitch, "MAX_PERMUTED_VOICES", 2)
    # Bb2-Eb3-G3 found as voices that swap notes (any order, changing every 10 frames)
    rng = np.random.default_rng(0)
    orders = np.array(list(itertools.permutations(range(3))))[rng.integers(0, 6, size=13)]
    orders[0] = (0, 1, 2)
    tangled = np.array([55, 51, 46])[np.repeat(orders, 10, axis=0)[:125].T]
    out = np.asarray(jax.jit(pitch.untangle)(jnp.asarray(_midi_hz(tangled), jnp.float32)))
    midi = 69 + 12 * np.log2(out / 440.0)
    np.testing.assert_allclose(midi, np.array([[55.0], [51.0], [46.0]]) * np.ones((1, 125)), atol=1e-3)
    np.testing.assert_allclose(np.sort(out, axis=0), np.sort(_midi_hz(tangled), axis=0), rtol=1e-6)


def test_untangling_keeps_a_held_note_where_another_voice_leaps():
    # Bb2-G3-Eb3, then Eb3 found as Eb4: the voice on Eb3 (not the one on G3) makes the leap
    n = 60
    tracks = np.stack([np.full(n, 46.0), np.r_[np.full(30, 55.0), np.full(30, 63.0)],
                       np.r_[np.full(30, 51.0), np.full(30, 55.0)]])
    out = np.asarray(pitch.untangle(jnp.asarray(_midi_hz(tracks), jnp.float32)))
    midi = 69 + 12 * np.log2(out / 440.0)
    want = np.stack([tracks[0], np.full(n, 55.0), np.r_[np.full(30, 51.0), np.full(30, 63.0)]])
    np.testing.assert_allclose(midi, want, atol=1e-3)


def test_untangling_keeps_a_held_note_in_one_voice_under_a_melody():
    rng = np.random.default_rng(3)
    melody = np.repeat(rng.integers(45, 56, size=8), 16).astype(np.float64)   # 8 notes below A4
    held = np.full(melody.size, 69.0)
    tracks = np.stack([melody, held])
    swapped = rng.random(melody.size) < 0.3                                    # labels shuffled
    tangled = np.where(swapped[None], tracks[::-1], tracks)
    tangled[:, 0] = tracks[:, 0]
    out = np.asarray(pitch.untangle(jnp.asarray(_midi_hz(tangled), jnp.float32)))
    np.testing.assert_allclose(69 + 12 * np.log2(out / 440.0), tracks, atol=1e-3)


def test_second_voice_is_found_after_explaining_away():
    n = 40
    audio = _tone(196.0, n) + _tone(293.7, n)  # a fifth: the sub-octave would explain both
    _assert_every_note_has_a_voice(audio, (196.0, 293.7), n_frames=n, f0_min_hz=40.0, f0_max_hz=2000.0)


@pytest.mark.parametrize("low_hz, ratio", [(196.0, 2.0), (110.0, 2.0), (130.8, 3.0), (220.0, 1.5)])
def test_a_note_whose_partials_all_lie_on_the_lower_notes_is_still_found(low_hz, ratio):
    # An octave or a twelfth above: every partial of the upper note is one of the
    # lower's, so zeroing the lower's partials would leave it nothing.
    n = 40
    audio = _tone(low_hz, n) + 0.7 * _tone(low_hz * ratio, n) + _noise(n)
    _assert_every_note_has_a_voice(audio, (low_hz, low_hz * ratio), n_frames=n, f0_min_hz=40.0, f0_max_hz=2000.0)


@pytest.mark.parametrize("chord_hz", [(116.5, 138.6, 174.6), (110.0, 165.0, 220.0)])
def test_a_voice_taken_for_several_notes_gives_way_to_them(chord_hz):
    # Picked greedily, the first voice is a sub-harmonic that explains two notes at once
    # (58 Hz under Bb2 and F3; 55 Hz under A2, E3, A3); picked again with the others
    # explained away, every note has its voice.
    n = 40
    audio = sum(_tone(f, n) for f in chord_hz) + _noise(n)
    _assert_every_note_has_a_voice(audio, chord_hz, n_frames=n, f0_min_hz=30.0, f0_max_hz=2500.0)


@pytest.mark.parametrize("f0_hz", [110.0, 523.3])
def test_a_smooth_comb_fits_a_tone_at_its_pitch_not_at_its_octaves_or_subharmonics(f0_hz):
    n = 40
    spec = pitch.compressed_spectrum(_tone(f0_hz, n) + _noise(n), sample_rate=SR, hop=HOP, n_frames=n)
    band = jnp.full((n,), pitch.FIT_HARMONICS * f0_hz / 4)

    def fit(ratio):
        return float(pitch.joint_fit_residual(spec, jnp.full((1, n), f0_hz * ratio), band, sample_rate=SR))
    assert fit(1.0) < 0.15
    # f0 / 2 must leave its odd partials (where the tone has none) as smooth as its even
    # ones; 2 f0 leaves the tone's odd partials unexplained.
    for ratio in pitch.RATIOS:
        assert fit(ratio) > 0.3, ratio


@pytest.mark.parametrize("off_cents", [-25.0, 0.0, 20.0])
def test_refine_puts_a_comb_on_the_partials_of_its_tone(off_cents):
    n = 20
    spec = pitch.compressed_spectrum(_tone(550.0, n) + _noise(n), sample_rate=SR, hop=HOP, n_frames=n)
    given = jnp.full((2, n), 550.0 * 2 ** (off_cents / 1200))
    refined = np.asarray(pitch.refine_f0(spec, given, sample_rate=SR))
    assert refined.shape == (2, n)
    assert np.all(np.abs(1200 * np.log2(refined[:, 5:15] / 550.0)) <= 5.0)


@pytest.mark.parametrize("voice, wrong_hz", [(2, 98.0), (2, 588.0), (2, 392.0), (0, 65.4), (1, 494.4)])
def test_a_voice_on_a_subharmonic_or_a_partial_of_a_note_moves_to_the_note(voice, wrong_hz):
    # C3-E3-G3 with one voice at G3 / 2, 3 G3, 2 G3, C3 / 2 or 3 E3.
    n = 40
    chord = np.asarray([130.8, 164.8, 196.0], np.float32)
    spec = pitch.compressed_spectrum(sum(_tone(f, n) for f in chord) + _noise(n), sample_rate=SR,
                                     hop=HOP, n_frames=n)

    def choose(f0):
        tracks = jnp.asarray(np.repeat(np.asarray(f0, np.float32)[:, None], n, 1))
        return np.median(np.asarray(pitch.choose_ratios(spec, tracks, sample_rate=SR, f0_min_hz=30.0,
                                                         f0_max_hz=2500.0)), axis=1)
    given = chord.copy()
    given[voice] = wrong_hz
    np.testing.assert_allclose(choose(given), chord, rtol=1e-4)
    np.testing.assert_allclose(choose(chord), chord, rtol=1e-4)     # a right chord stays


def test_cancelling_a_voice_keeps_only_what_stands_out_of_its_smooth_envelope():
    n_fft, f0 = 1024, 250.0
    bins = n_fft // 2 + 1
    spectrum = np.zeros((1, bins), np.float32)
    at = [int(round(k * f0 * n_fft / SR)) for k in range(1, 9)]        # exact bins: 250 Hz = 16 bins
    spectrum[0, at] = 1.0
    spectrum[0, at[3]] = 2.5                                            # partial 4 shared with another note
    spectrum[0, 100] = 0.7                                              # between partials 6 and 7: not the voice's
    out = np.asarray(pitch.cancel_partials(jnp.asarray(spectrum), jnp.full((1,), f0), sample_rate=SR))
    own = [0, 1, 2, 4, 6]                                               # partials whose neighbours are 1, 1
    np.testing.assert_allclose(out[0, [at[i] for i in own]], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[0, at[3]], 2.5 - 1.5, rtol=1e-5)     # mean(1, 2.5, 1) = 1.5 is the voice's
    assert out[0, 100] == pytest.approx(0.7)
    # The last partial's upper neighbour (partial 9) is silent: its share is mean(1, 1, 0).
    assert out[0, at[7]] == pytest.approx(1.0 - 2.0 / 3.0, rel=1e-5)


def test_read_amplitudes_recovers_partial_amplitudes():
    n = 40
    audio = _tone(300.0, n, n_harmonics=6, slope=1.0)
    amps = pitch.read_amplitudes(audio, jnp.full((1, n), 300.0), sample_rate=SR, hop=HOP, n_harmonics=8)
    got = np.median(np.asarray(amps[0, 8:32]), axis=0)
    want = np.r_[0.3 / np.arange(1, 7), 0.0, 0.0]
    np.testing.assert_allclose(got[:6], want[:6], rtol=0.15)
    assert np.all(got[6:] < 0.02)


def test_odd_partials_of_the_octave_below_stand_out_only_where_they_sound():
    n = 60
    rng = np.random.default_rng(0)
    noise = 1e-3 * rng.normal(size=n * HOP).astype(np.float32)
    upper = _tone(400.0, n, n_harmonics=10) + noise                  # partials at 400 k only
    both = upper + 0.3 * _tone(200.0, n, n_harmonics=19)             # and at 200 (2j + 1)
    f0 = jnp.full((1, n), 400.0)
    alone = np.median(np.asarray(pitch.odd_partial_prominence_db(upper, f0, sample_rate=SR, hop=HOP))[0, 10:50])
    with_odd = np.median(np.asarray(pitch.odd_partial_prominence_db(both, f0, sample_rate=SR, hop=HOP))[0, 10:50])
    assert alone < 6.0 and with_odd > 20.0
