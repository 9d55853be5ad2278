"""The note level: its prediction of the controls, its gradient, its priors, MIDI, and
notes perceived from rendered melodies."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pcmusic import midi
from pcmusic.errors import PcmusicError
from pcmusic.model import controls as controls_lib
from pcmusic.model import note_prior
from pcmusic.model import notes as notes_lib

CSPEC = controls_lib.ControlSpec(n_harmonics=8)
SPEC = notes_lib.NoteSpec(max_notes=4, n_timbre=3)


def _notes(onsets, durs, f0s, gates, level=-2.0):
    n = notes_lib.empty(1, 1, SPEC, end_s=1.0)
    k = len(onsets)
    put = lambda a, v: a.at[0, 0, :k].set(jnp.asarray(v, jnp.float32))   # noqa: E731
    return dict(n, onset_s=put(n["onset_s"], onsets), log_dur=put(n["log_dur"], np.log(durs)),
                log2_f0=put(n["log2_f0"], np.log2(f0s)), level=put(n["level"], [level] * k),
                gate=put(n["gate"], gates))


def test_a_note_predicts_its_pitch_inside_and_silence_outside():
    notes = _notes([0.2], [0.3], [440.0], [8.0])
    pred = notes_lib.predict_controls(notes, 100, cspec=CSPEC, spec=SPEC)
    t = np.arange(100) / CSPEC.frame_rate_hz
    inside = (t > 0.23) & (t < 0.47)
    outside = (t < 0.12) | (t > 0.58)
    f0 = np.exp2(np.asarray(pred["log2_f0"][0, 0]))
    np.testing.assert_allclose(f0[inside], 440.0, rtol=1e-4)
    amp = np.asarray(pred["log_amp"][0, 0, :, 0])
    np.testing.assert_allclose(amp[inside], -2.0, atol=0.05)          # level, timbre 0, decay 0
    assert np.all(amp[outside] < controls_lib.SILENT_LOG_AMP + 0.1)


def test_pitch_glides_between_notes_and_an_absent_note_predicts_nothing():
    notes = _notes([0.1, 0.5], [0.3, 0.3], [200.0, 400.0], [8.0, 8.0])
    pred = notes_lib.predict_controls(notes, 120, cspec=CSPEC, spec=SPEC)
    t = np.arange(120) / CSPEC.frame_rate_hz
    f0 = np.exp2(np.asarray(pred["log2_f0"][0, 0]))
    # halfway between the first note's end and the end of the second one's attack
    mid = np.argmin(np.abs(t - 0.5 * (0.4 + 0.5 + notes_lib.ATTACK_S)))
    assert 250.0 < f0[mid] < 330.0                     # between the two notes
    assert abs(f0[np.argmin(np.abs(t - 0.42))] - 200.0) < 3.0   # close to a note: its pitch
    off = _notes([0.1, 0.5], [0.3, 0.3], [200.0, 400.0], [8.0, -12.0])
    pred_off = notes_lib.predict_controls(off, 120, cspec=CSPEC, spec=SPEC)
    late = t > 0.55
    np.testing.assert_allclose(np.exp2(np.asarray(pred_off["log2_f0"][0, 0]))[late], 200.0, rtol=1e-3)
    assert np.all(np.asarray(pred_off["log_amp"][0, 0])[late] < controls_lib.SILENT_LOG_AMP + 0.1)


def test_a_note_rises_over_its_attack_and_takes_the_pitch_half_way_through_it():
    notes = _notes([0.1, 0.5], [0.4, 0.3], [200.0, 400.0], [8.0, 8.0])
    notes = dict(notes, log_attack=notes["log_attack"].at[0, 0, 1].set(np.log(0.08)))
    times = np.arange(0, 1.0, 0.001)
    spec = dataclasses.replace(SPEC, edge_s=1e-4)
    log_a = np.asarray(notes_lib.activity(notes, jnp.asarray(times, jnp.float32), spec))[0, 0, 1]
    # a linear rise from the onset: -3 dB after one attack time, full level later
    at = lambda s: log_a[np.argmin(np.abs(times - s))]   # noqa: E731
    np.testing.assert_allclose(at(0.5 + 0.08), -0.5 * np.log(2.0), atol=0.02)
    np.testing.assert_allclose(at(0.52) - at(0.51), np.log(2.0), atol=0.05)     # 10 ms -> 20 ms: x2
    assert at(0.75) > -0.1 and at(0.49) < -8.0
    # the first note ends at 0.5 s, the second holds its pitch from 0.58 s: the switch is between
    pred = notes_lib.predict_controls(notes, 125, cspec=CSPEC, spec=SPEC)
    f0 = np.exp2(np.asarray(pred["log2_f0"][0, 0]))
    t = np.arange(125) / CSPEC.frame_rate_hz
    assert abs(f0[np.argmin(np.abs(t - 0.51))] - 200.0) < 3.0
    assert abs(f0[np.argmin(np.abs(t - 0.57))] - 400.0) < 6.0
    crossing = t[np.argmax(f0 > np.sqrt(200.0 * 400.0))]          # the glide's middle
    assert 0.53 <= crossing <= 0.55


def test_note_energy_gradient_matches_finite_differences():
    truth = _notes([0.1, 0.45], [0.25, 0.3], [220.0, 330.0], [6.0, 6.0])
    controls = controls_lib.zeros(CSPEC, 1, 100)
    target = notes_lib.predict_controls(truth, 100, cspec=CSPEC, spec=SPEC)
    controls = dict(controls, **target)
    guess = _notes([0.11, 0.44], [0.23, 0.31], [222.0, 327.0], [2.0, 1.0], level=-2.5)

    def energy(n):
        return notes_lib.energy(controls, n, cspec=CSPEC, spec=SPEC)[0] + note_prior.energy(n, note_prior.flat())

    grads = jax.grad(energy)(guess)
    for key, eps in [("onset_s", 1e-3), ("log_dur", 1e-3), ("log2_f0", 1e-4), ("level", 1e-3),
                     ("log_attack", 1e-2), ("gate", 1e-2)]:
        for slot in (0, 1):
            up = dict(guess, **{key: guess[key].at[0, 0, slot].add(eps)})
            down = dict(guess, **{key: guess[key].at[0, 0, slot].add(-eps)})
            numeric = (float(energy(up)) - float(energy(down))) / (2 * eps)
            analytic = float(grads[key][0, 0, slot])
            assert analytic == pytest.approx(numeric, rel=0.03, abs=0.05 * (1 + abs(numeric))), (key, slot)


def test_note_energy_is_least_at_the_true_notes():
    truth = _notes([0.1, 0.45], [0.25, 0.3], [220.0, 330.0], [6.0, 6.0])
    controls = dict(controls_lib.zeros(CSPEC, 1, 100), **notes_lib.predict_controls(truth, 100, cspec=CSPEC, spec=SPEC))
    e_true = float(notes_lib.energy(controls, truth, cspec=CSPEC, spec=SPEC)[0])
    for key, delta in [("onset_s", 0.02), ("log2_f0", 20 / 1200), ("log_dur", 0.2)]:
        moved = dict(truth, **{key: truth[key].at[0, 0, 1].add(delta)})
        assert float(notes_lib.energy(controls, moved, cspec=CSPEC, spec=SPEC)[0]) > e_true + 1.0, key


def _phrases(step_cents, rng, n=40, length=8):
    out = []
    for _ in range(n):
        degrees = np.cumsum(rng.integers(-2, 3, size=length))
        f0 = 261.63 * 2.0 ** (degrees * step_cents / 1200.0) * 2.0 ** rng.integers(-1, 1)
        onsets = np.cumsum(rng.choice([0.25, 0.5], size=length)) - 0.25
        out.append(np.stack([onsets, onsets + 0.2, f0, np.full(length, -20.0)], axis=1))
    return out


@pytest.mark.parametrize("step_cents", [240.0, 100.0])
def test_a_fitted_tuning_prior_learns_the_lattice_of_its_data(step_cents):
    prior = note_prior.fit(_phrases(step_cents, np.random.default_rng(0)))
    on = np.log2(261.63) + np.arange(0, 1200, step_cents) / 1200.0
    between = on + 0.5 * step_cents / 1200.0
    d_on = np.asarray(note_prior.tuning_log_density(jnp.asarray(on, jnp.float32), prior))
    d_between = np.asarray(note_prior.tuning_log_density(jnp.asarray(between, jnp.float32), prior))
    assert np.all(d_on > d_between + 3.0)             # e^3 = 20 times as likely on the lattice
    phrase = note_prior.sample_phrase(jax.random.key(1), prior, prior.intent_mean, seconds=4.0)
    assert phrase.shape[0] >= 4
    cents = np.mod(1200 * np.log2(phrase[:, 2] / 261.63), step_cents)
    off = np.minimum(cents, step_cents - cents)
    assert np.median(off) < 15.0
    assert np.all(np.diff(phrase[:, 0]) > 0) and np.all(phrase[:, 1] > phrase[:, 0])


def _scattered_12tet_prior(scatter_cents):
    """A prior fitted to 12-TET phrases whose notes scatter N(0, scatter_cents) about the lattice."""
    rng = np.random.default_rng(3)
    corpus = []
    for p in _phrases(100.0, rng):
        p = p.copy()
        p[:, 2] *= 2.0 ** (scatter_cents * rng.standard_normal(p.shape[0]) / 1200.0)
        corpus.append(p)
    return note_prior.fit(corpus)


def test_the_tuning_prior_is_as_sharp_as_its_data():
    # Precisely intoned notes (0.5 cents) give peaks that have fallen e^3-fold 8 cents off
    # (a fixed 6-cent smoothing: e^0.9); notes sung loosely (12 cents) give one smooth peak
    # per pitch, give or take a rare one or one split by the scatter (a fixed 1-cent
    # smoothing: ~100 peaks).
    precise, loose = _scattered_12tet_prior(0.5), _scattered_12tet_prior(12.0)
    at = jnp.asarray([np.log2(261.63), np.log2(261.63) + 8.0 / 1200.0], jnp.float32)
    d = np.asarray(note_prior.tuning_log_density(at, precise))
    assert d[0] - d[1] > 3.0
    assert len(note_prior.lattice_cents(precise, max_peaks=200)) == 12
    assert 10 <= len(note_prior.lattice_cents(loose, max_peaks=200)) <= 14
    with pytest.raises(PcmusicError, match="smooth_cents"):
        note_prior.fit(_phrases(100.0, np.random.default_rng(0)), smooth_cents=0.0)


def test_the_tuning_width_is_judged_by_whole_phrases_left_out():
    # Each phrase is played out of tune by its own offset (s.d. 8 cents), its repeated
    # pitches heard alike: notes left out one by one would find their twins in their own
    # phrase and choose the narrowest width (peaks split by phrase); left out by phrase,
    # the width follows the spread between phrases.
    rng = np.random.default_rng(4)
    corpus = []
    for p in _phrases(100.0, rng, n=60):
        p = p.copy()
        p[:, 2] *= 2.0 ** (8.0 * rng.standard_normal() / 1200.0)
        corpus.append(p)
    prior = note_prior.fit(corpus)
    on = np.log2(261.63) + np.arange(0, 1200, 100.0) / 1200.0
    d = np.asarray(note_prior.tuning_log_density(jnp.asarray(np.concatenate([on, on + 6 / 1200]), jnp.float32),
                                                 prior))
    assert np.median(d[:12] - d[12:]) < 1.5              # 6 cents off: still on the peak
    assert len(note_prior.lattice_cents(prior, max_peaks=200)) <= 14


@pytest.mark.parametrize("articulation", [0.85, 0.3])
def test_a_fitted_rhythm_prior_learns_rests_and_tempo_and_samples_at_the_corpus_rate(articulation):
    rng = np.random.default_rng(1)
    corpus, seconds = [], 6.0
    for _ in range(40):
        ioi = np.exp(np.log(0.3) + 0.1 * rng.standard_normal(40))
        rest = rng.uniform(size=40) < 0.2
        rest[0] = False
        onsets = np.cumsum(ioi + rest * ioi) - ioi[0]      # a rest: the note one interval later
        keep = onsets < seconds - 0.3
        onsets, ioi = onsets[keep], ioi[keep]
        corpus.append(np.stack([onsets, onsets + articulation * ioi, np.full(onsets.shape, 330.0),
                                np.full(onsets.shape, -20.0)], axis=1))
    prior = note_prior.fit(corpus)
    assert float(prior.rest_prob) == pytest.approx(0.2, abs=0.06)
    assert float(np.exp(prior.log_ioi_mean)) == pytest.approx(0.3, rel=0.1)
    assert float(prior.articulation) == pytest.approx(articulation, abs=0.05)
    rate = np.mean([len(p) / seconds for p in corpus])
    made = [note_prior.sample_phrase(k, prior, prior.intent_mean, seconds=seconds)
            for k in jax.random.split(jax.random.key(2), 20)]
    assert np.mean([len(p) / seconds for p in made]) == pytest.approx(rate, rel=0.15)


def _linked_corpus(rng, n, d_top=6, noise_oct=0.02):
    """Phrases whose register is a linear function of a hierarchy intent (plus noise) and
    whose tempo and level are not: (phrases, tops [n, d_top], registers, tempi)."""
    tops = rng.standard_normal((n, d_top)) * np.linspace(0.5, 2.0, d_top)
    register = 8.0 + 0.3 * tops[:, 0] - 0.1 * tops[:, 2] + noise_oct * rng.standard_normal(n)
    tempo = np.log(0.3) + 0.2 * rng.standard_normal(n)
    level = -20.0 + 3.0 * rng.standard_normal(n)
    corpus = []
    for r, t, lv in zip(register, tempo, level):
        onsets = np.exp(t) * np.arange(5)
        pitch = r + np.asarray([-0.2, -0.1, 0.0, 0.1, 0.2])
        corpus.append(np.stack([onsets, onsets + 0.8 * np.exp(t), 2.0 ** pitch, np.full(5, lv)], axis=1))
    return corpus, tops, register, tempo


def test_hierarchy_intents_predict_the_register_they_carry_and_leave_the_rest_marginal():
    # Linear-Gaussian: register = 8 + 0.3 y0 - 0.1 y2 + N(0, 0.02^2); tempo and level
    # independent of y. The link recovers the weights and the noise, and leaves tempo
    # and level at their marginal spread.
    rng = np.random.default_rng(0)
    corpus, tops, register, tempo = _linked_corpus(rng, 200)
    prior = note_prior.fit(corpus, tops=tops)
    assert note_prior.has_link(prior)
    w = np.asarray(prior.link_weight)
    np.testing.assert_allclose(w[:, 0], [0.3, 0.0, -0.1, 0.0, 0.0, 0.0], atol=0.01)
    assert float(prior.link_sd[0]) == pytest.approx(0.02, rel=0.3)
    assert np.max(np.abs(w[:, 1] * tops.std(axis=0))) < 0.05          # < 1/4 of tempo's spread per s.d.
    assert float(prior.link_sd[1]) == pytest.approx(float(prior.intent_sd[1]), rel=0.1)
    # held out: phrases of new intents are predicted from their tops, better than the marginal
    fresh, fresh_tops, fresh_register, _ = _linked_corpus(np.random.default_rng(1), 50)
    mean, _ = note_prior.intent_given(prior, jnp.asarray(fresh_tops, jnp.float32))
    assert np.sqrt(np.mean(np.square(np.asarray(mean)[:, 0] - fresh_register))) < 0.04
    u = jnp.asarray(np.stack([fresh_register, np.full(50, np.log(0.3)), np.full(50, -20.0)], 1), jnp.float32)
    # held-out negative log-likelihood (energy + the Gaussians' log s.d.): ~2 nats per phrase less
    linked = float(note_prior.intent_energy(u, prior, jnp.asarray(fresh_tops, jnp.float32))
                   + 50 * np.sum(np.log(prior.link_sd)))
    marginal = float(note_prior.intent_energy(u, prior) + 50 * np.sum(np.log(prior.intent_sd)))
    assert linked < marginal - 50 * 1.5
    drawn = note_prior.sample_intent(jax.random.key(0), prior, 50, top=jnp.asarray(fresh_tops, jnp.float32))
    assert np.corrcoef(np.asarray(drawn)[:, 0], fresh_register)[0, 1] > 0.95


def test_tops_that_say_nothing_leave_the_phrase_intent_at_its_marginal():
    rng = np.random.default_rng(2)
    corpus, _, _, _ = _linked_corpus(rng, 60)
    prior = note_prior.fit(corpus, tops=rng.standard_normal((60, 6)))
    assert np.max(np.abs(np.asarray(prior.link_weight))) < 0.02
    np.testing.assert_allclose(prior.link_sd, prior.intent_sd, rtol=0.1)


def test_a_linked_prior_round_trips_and_refuses_tops_of_another_size(tmp_path):
    corpus, tops, _, _ = _linked_corpus(np.random.default_rng(3), 20)
    prior = note_prior.fit(corpus, tops=tops)
    note_prior.save(tmp_path / "p.npz", prior)
    back = note_prior.load(tmp_path / "p.npz")
    for name in note_prior.NotePrior._fields:
        np.testing.assert_array_equal(np.asarray(getattr(back, name)), np.asarray(getattr(prior, name)))
    with pytest.raises(PcmusicError, match="links hierarchy intents of 6 dims"):
        note_prior.sample_intent(jax.random.key(0), back, 2, top=jnp.zeros((2, 5)))
    with pytest.raises(PcmusicError, match=r"tops must be \[n_phrases=20"):
        note_prior.fit(corpus, tops=tops[:5])
    # a prior saved without the link's arrays (fitted without tops) loads unlinked
    unlinked = {k: np.asarray(v) for k, v in note_prior.fit(corpus)._asdict().items()
                if k not in ("top_mean", "link_weight", "link_sd")}
    np.savez(tmp_path / "old.npz", **unlinked)
    old = note_prior.load(tmp_path / "old.npz")
    assert not note_prior.has_link(old)
    np.testing.assert_array_equal(old.link_sd, old.intent_sd)
    with pytest.raises(PcmusicError, match="links hierarchy intents of 0 dims"):
        note_prior.intent_given(old, jnp.zeros((1, 6)))


def test_the_flat_prior_prefers_no_pitch_and_fit_refuses_too_little():
    flat = note_prior.flat()
    d = np.asarray(note_prior.tuning_log_density(jnp.linspace(7.0, 9.0, 97), flat))
    np.testing.assert_allclose(d, d[0], atol=1e-6)
    with pytest.raises(PcmusicError, match="at least 2 notes"):
        note_prior.fit([np.asarray([[0.0, 0.5, 440.0, -20.0]])])
    with pytest.raises(PcmusicError, match="phrase 0"):
        note_prior.fit([np.zeros((3, 2))])


def test_midi_round_trip_keeps_notes_and_cents(tmp_path):
    voices = [np.asarray([[0.0, 0.4, 440.0 * 2 ** (13 / 1200), -12.0, 1.0],
                          [0.5, 0.9, 261.63 * 2 ** (-37 / 1200), -24.0, 1.0],
                          [1.0, 1.25, 2 ** 8.123, -6.0, 1.0]]),
              np.asarray([[0.25, 1.5, 110.0 * 2 ** (49 / 1200), -30.0, 1.0]])]
    path = midi.write(tmp_path / "notes.mid", voices)
    back = midi.read(path)
    assert len(back) == 2
    for want, got in zip(voices, back):
        assert got.shape == (want.shape[0], 5)
        np.testing.assert_allclose(got[:, :2], want[:, :2], atol=1.5 / 960)
        np.testing.assert_allclose(1200 * np.log2(got[:, 2] / want[:, 2]), 0.0, atol=0.1)
        np.testing.assert_allclose(got[:, 3], want[:, 3], atol=0.5)
    import mido
    bends = [m.pitch for m in mido.MidiFile(str(path)) if m.type == "pitchwheel"]
    assert len(bends) == 4 and all(abs(b) <= 8192 * 50 / 200 + 1 for b in bends) and any(bends)
    with pytest.raises(PcmusicError, match="exists"):
        midi.write(path, voices)
    with pytest.raises(PcmusicError, match="voice 0"):
        midi.write(tmp_path / "bad.mid", [np.asarray([[0.5, 0.2, 440.0]])])


def _render_melody(notes, seconds, *, sample_rate=16000, attack_s=0.005):
    """Harmonic tones (6 partials at 1/k, decaying) with linear attack and release ramps."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = np.zeros_like(t)
    for on, off, f0 in notes:
        m = (t >= on) & (t < off)
        tt = t[m] - on
        env = np.minimum(1, tt / attack_s) * np.minimum(1, (off - t[m]) / attack_s) * np.exp(-2.0 * tt)
        for k in range(1, 7):
            x[m] += env * np.sin(2 * np.pi * k * f0 * tt + 0.3 * k) / k
    return (0.2 * x / np.abs(x).max()).astype(np.float32)


def test_a_melody_with_rests_in_5_tet_is_heard_as_its_notes():
    """Onsets within one control frame of each attack's midpoint, pitches within 5 cents,
    no note missing or added: a 5-TET line (no 12-TET pitch in it) with rests."""
    from pcmusic import perceive

    step = 2 ** (240 / 1200)
    truth = np.asarray([(0.12, 0.42, 180 * step ** 0), (0.5, 0.8, 180 * step ** 2),
                        (0.88, 1.1, 180 * step ** 1), (1.3, 1.75, 180 * step ** 3)])
    percept = perceive(_render_melody(truth, 2.0), 16000)
    heard = percept.notes[0]
    assert heard.shape == (4, 5), heard
    frame_s = 1.0 / percept.frame_rate_hz
    np.testing.assert_allclose(heard[:, 0], truth[:, 0] + 0.0025, atol=frame_s)
    np.testing.assert_allclose(1200 * np.log2(heard[:, 2] / truth[:, 2]), 0.0, atol=5.0)
    np.testing.assert_allclose(heard[:, 1], truth[:, 1], atol=4 * frame_s)
    assert np.all((heard[:, 4] > 0.5) & (heard[:, 4] <= 1.0))
    loud = 20 * np.log10(0.2)                            # peak 0.2: the notes are near -20 dB
    assert np.all(np.abs(heard[:, 3] - loud) < 10.0)


def test_a_slurred_note_with_a_slow_attack_begins_where_its_own_partials_rise():
    """Slurred notes that fade in over 100 ms (from -40 dB, rising evenly in dB) under the
    last one's release (time constant 50 ms): each onset within 25 ms of its true onset, where
    the crossfade's power (lowest after the new note has begun) put them 50-65 ms late; the
    first note's swell from silence stays one note."""
    from pcmusic import perceive

    rate = 16000
    truth = np.asarray([(0.1, 0.55, 196.0), (0.55, 1.0, 261.6), (1.0, 1.4, 233.1), (1.4, 1.9, 311.1)])
    t = np.arange(int(2.4 * rate)) / rate
    x = np.zeros_like(t)
    for on, off, f0 in truth:
        tt = t - on
        rise = 10 ** (-2.0 * (1.0 - np.clip(tt / 0.1, 0.0, 1.0)))
        env = np.where(tt < 0, 0.0, rise * np.exp(-np.clip(t - off, 0.0, None) / 0.05))
        x += sum(env * np.sin(2 * np.pi * k * f0 * tt + 0.3 * k) / k for k in range(1, 9))
    heard = perceive((0.2 * x / np.abs(x).max()).astype(np.float32), rate).notes[0]
    assert heard.shape[0] == 4, heard
    np.testing.assert_allclose(1200 * np.log2(heard[:, 2] / truth[:, 2]), 0.0, atol=10.0)
    np.testing.assert_allclose(heard[1:, 0], truth[1:, 0], atol=0.025)
    assert abs(heard[0, 0] - truth[0, 0]) < 0.05       # from silence: a 40 dB swell, one note


def test_vibrato_and_tremolo_do_not_split_a_held_note():
    """A held tone with 5.5 Hz vibrato (+-30 cents) and tremolo (+-3 dB) is one note."""
    from pcmusic import perceive

    rate = 16000
    t = np.arange(int(1.6 * rate)) / rate
    phase = 2 * np.pi * np.cumsum(330.0 * 2 ** (30 / 1200 * np.sin(2 * np.pi * 5.5 * t))) / rate
    env = np.minimum(1, t / 0.05) * np.minimum(1, (1.5 - t).clip(0) / 0.05) * 10 ** (3 / 20 * np.sin(2 * np.pi * 5.5 * t))
    x = sum(env * np.sin(k * phase) / k for k in range(1, 13))
    heard = perceive((0.2 * x / np.abs(x).max()).astype(np.float32), rate).notes[0]
    assert heard.shape[0] == 1, heard


def _struck(onsets_s, f0_hz, seconds, *, decay_per_s, rate=16000, click_at_s=None):
    """A tone struck at each onset as a sampler plays a repeated key (5 ms attack,
    partials decaying by decay_per_s nepers a second, a 10 ms noise burst at -26 dB; the
    last strike released over 300 ms as the next begins, its partials in quadrature with
    the new ones so that their powers add), optionally a one-sample click at click_at_s."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    x = np.zeros_like(t)
    phase = rng.uniform(0, 2 * np.pi, 9)
    for j, (on, end) in enumerate(zip(onsets_s, [*onsets_s[1:], np.inf])):
        tt = t - on
        env = np.where(tt < 0, 0.0, np.minimum(1.0, tt / 0.005) * np.exp(-decay_per_s * np.clip(tt, 0, None)))
        env *= np.exp(-np.clip(t - end, 0, None) / 0.3)
        x += sum(env * np.sin(2 * np.pi * k * f0_hz * t + phase[k] + 0.5 * np.pi * j) / k for k in range(1, 9))
        burst = (tt >= 0) & (tt < 0.01)
        x[burst] += 0.05 * rng.standard_normal(burst.sum())
    x *= np.minimum(1.0, (seconds - 0.05 - t).clip(0) / 0.05)
    if click_at_s is not None:
        x[int(click_at_s * rate)] += 0.5
    return (0.2 * x / np.abs(x).max()).astype(np.float32)


def test_a_note_struck_again_at_its_pitch_is_heard_again():
    """Four strikes of one pitch 0.35 s apart, each before the last has fallen 1.5 dB: the
    power rises by about 4 dB at each, less than the 6 dB that cuts a note, and one of
    the four has no dip to cut at. Four notes, each onset within 20 ms."""
    from pcmusic import perceive

    onsets = np.asarray([0.1, 0.45, 0.8, 1.15])
    heard = perceive(_struck(onsets, 262.0, 1.6, decay_per_s=0.5), 16000).notes[0]
    assert heard.shape[0] == 4, heard
    np.testing.assert_allclose(heard[:, 0], onsets, atol=0.02)
    np.testing.assert_allclose(1200 * np.log2(heard[:, 2] / 262.0), 0.0, atol=10.0)


def test_a_click_in_a_held_note_does_not_strike_it_again(monkeypatch):
    """A one-sample click inside a held tone (a sample's loop point) makes the spectrum
    rise as a strike does but brings no new power: one note."""
    from pcmusic import perceive
    from pcmusic.perception import notes

    x = _struck([0.1], 330.0, 1.4, decay_per_s=0.3, click_at_s=0.7)
    n_frames, near_click = x.shape[0] // 128, slice(84, 92)      # 0.67-0.74 s at 125 frames/s

    def strikes():
        return notes._strikes(x, np.full((1, n_frames), 330.0), np.ones((1, n_frames), bool),
                              hop=128, sample_rate=16000)[0][0]

    assert not strikes()[near_click].any()
    heard = perceive(x, 16000).notes[0]
    assert heard.shape[0] == 1, heard
    monkeypatch.setattr(notes, "STRIKE_RISE_DB", -np.inf)          # the flux alone would strike it
    assert strikes()[near_click].any()


def test_a_strike_in_one_voice_does_not_cut_the_note_another_voice_holds():
    """Two voices: G3 held for 1.5 s while E4 is struck three times at its pitch. The
    strikes are E4's (its own partials are renewed), not G3's: G3 one note, E4 three."""
    from pcmusic import perceive
    from pcmusic.model.controls import ControlSpec

    onsets = np.asarray([0.1, 0.55, 1.0])
    held = _struck([0.1], 196.0, 1.6, decay_per_s=0.2)
    x = held + _struck(onsets, 329.6, 1.6, decay_per_s=0.5)
    voices = perceive(x, 16000, cspec=ControlSpec(n_voices=2)).notes
    by_pitch = sorted(voices, key=lambda v: np.median(v[:, 2]) if len(v) else 0.0)
    assert [len(v) for v in by_pitch] == [1, 3], [v[:, :3] for v in voices]
    np.testing.assert_allclose(by_pitch[1][:, 0], onsets, atol=0.03)


@pytest.mark.fluidsynth
def test_a_choir_s_beating_does_not_split_its_notes(tmp_path):
    """A melody sung by a sampled choir (GM Choir Aahs), whose held notes beat: each note
    is heard once (the beats dip and recover the power by more than 6 dB without a jump
    of the spectrum), onsets within 50 ms and pitches within 50 cents."""
    from pcmusic import perceive
    from pcmusic.data import fluid

    truth = np.asarray([(0.1, 0.597, 261.63), (0.597, 0.966, 329.63), (1.001, 1.193, 277.18),
                        (1.193, 1.775, 293.66), (1.986, 2.506, 261.63), (2.549, 2.828, 293.66),
                        (3.006, 3.421, 277.18), (3.68, 3.942, 311.13), (4.053, 4.242, 261.63)])
    rows = np.concatenate([truth, np.tile([[-8.0, 1.0]], (len(truth), 1))], axis=1)
    path = midi.write(tmp_path / "choir.mid", [rows], program=52)
    heard = perceive(fluid.render_midi(path, sample_rate=16000), 16000).notes[0]
    assert heard.shape[0] == len(truth), heard[:, :3]
    np.testing.assert_allclose(heard[:, 0], truth[:, 0], atol=0.05)
    np.testing.assert_allclose(1200 * np.log2(heard[:, 2] / truth[:, 2]), 0.0, atol=50.0)


def test_the_probe_records_the_note_level_and_its_energy_falls():
    from pcmusic import probe
    from pcmusic.perception import InferenceSpec

    truth = np.asarray([(0.05, 0.3, 220.0), (0.35, 0.6, 330.0)])
    result = probe(_render_melody(truth, 0.7), 16000, stride=10, inference=InferenceSpec(n_steps=30))
    a = result.arrays()
    assert list(a["notes/level_names"][-2:]) == ["notes", "note_prior"]
    assert a["notes/energies"].shape == (a["notes/step"].shape[0], len(a["notes/level_names"]))
    assert a["latents/notes/onset_s"].shape[1:] == (1, 1, notes_lib.NoteSpec().max_notes)
    assert a["errors/notes/log2_f0"].shape[1:] == a["notes/latents/controls/log2_f0"].shape[1:]
    assert a["notes/energy"][-1] < a["notes/energy"][0]
    np.testing.assert_allclose(result.recompute_energy(), a["energy"], rtol=1e-4)
    heard = result.percept.notes[0]
    assert heard.shape[0] == 2
    np.testing.assert_allclose(1200 * np.log2(heard[:, 2] / truth[:, 2]), 0.0, atol=10.0)
