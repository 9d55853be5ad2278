"""Perception: settled f0 tracks on synthetic tones and real sampled instruments."""
import jax.numpy as jnp
import numpy as np
import pytest

from pcmusic.data import fluid
from pcmusic.dsp import synth
from pcmusic.model.controls import ControlSpec
from pcmusic.errors import PcmusicError
from pcmusic.perception import perceive

SR = 16000


def _tone(f0_hz, seconds=0.5, *, sample_rate=SR, n_harmonics=20, seed=0):
    rng = np.random.default_rng(seed)
    hop = 128
    n_frames = int(seconds * sample_rate) // hop
    k = np.arange(1, n_harmonics + 1)
    amps = 0.3 * k ** -rng.uniform(0.6, 1.5) * np.exp(rng.normal(0, 0.3, n_harmonics))
    audio = synth.harmonic(jnp.full((n_frames,), f0_hz, jnp.float32),
                           jnp.broadcast_to(jnp.asarray(amps, jnp.float32), (n_frames, n_harmonics)),
                           sample_rate=sample_rate, hop=hop)
    return np.asarray(audio) + 1e-3 * rng.normal(size=n_frames * hop).astype(np.float32)


def _cents(percept, ref_hz, *, skip_s=0.05):
    start = int(skip_s * percept.frame_rate_hz)
    c = 1200 * np.log2(percept.f0_hz[0, start:] / ref_hz)
    return c[np.isfinite(c)]


@pytest.mark.parametrize("f0_hz,seed", [(87.3, 0), (233.1, 1), (659.3, 2)])
def test_synthetic_tone_f0_within_a_few_cents_and_energy_falls(f0_hz, seed):
    p = perceive(_tone(f0_hz, seed=seed), SR)
    cents = _cents(p, f0_hz)
    assert cents.size > 0.9 * (p.f0_hz.shape[1] - 3)
    assert np.median(np.abs(cents)) < 2.0
    assert p.energy[-1] < 0.2 * p.energy[0]
    assert p.energy[-20:].max() <= p.energy[-20] + 1e-3 * abs(p.energy[-20])


def _spectrum_tone(f0_hz, levels_db, seconds=0.8, seed=1):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    audio = sum(0.2 * 10 ** (db / 20) * np.sin(2 * np.pi * k * f0_hz * t + rng.uniform(0, 6.3))
                for k, db in enumerate(levels_db, start=1))
    return (audio + 1e-3 * rng.normal(size=t.shape)).astype(np.float32)


@pytest.mark.parametrize("f0_hz, levels_db", [
    (196.0, [-19, 0, -10, -21, -14, -28, -24, -27]),   # second partial loudest (a bowed low string)
    (220.0, [-25, 0, -6, -12, -9, -20, -15, -22]),
    (392.0, [0, -6, -10, -14, -18, -22, -26, -30]),    # an ordinary tone: no octave down
    (196.0, [0, -40, -8, -40, -12, -40, -16, -40]),    # odd partials only (a clarinet)
])
def test_a_tone_is_heard_at_its_fundamental_whichever_partial_is_loudest(f0_hz, levels_db):
    p = perceive(_spectrum_tone(f0_hz, levels_db), SR, notes=False)
    assert abs(np.median(_cents(p, f0_hz))) < 10.0


def test_level_invariance_and_other_sample_rates():
    quiet = perceive(0.01 * _tone(311.1, seed=3), SR)
    loud = perceive(_tone(311.1, seed=3), SR)
    np.testing.assert_allclose(_cents(quiet, 311.1), _cents(loud, 311.1), atol=0.5)
    np.testing.assert_allclose(quiet.amplitudes * 100, loud.amplitudes, rtol=1e-2, atol=1e-6)
    hi = perceive(_tone(311.1, sample_rate=44100, seed=3), 44100)
    assert hi.sample_rate == SR and np.median(np.abs(_cents(hi, 311.1))) < 3.0


def test_silence_is_unvoiced_and_bad_input_is_explained():
    p = perceive(np.zeros(8000, np.float32), SR)
    assert not p.voiced.any() and np.isnan(p.f0_hz).all()
    bad = _tone(200.0)
    bad[100] = np.nan
    with pytest.raises(PcmusicError, match="NaN"):
        perceive(bad, SR)
    with pytest.raises(PcmusicError, match="1-D"):
        perceive(np.zeros((2, 800), np.float32), SR)


# Two notes per family across MIDI 40-84 (TimGM6mb; organ = reed organ: the GM church and
# drawbar organs of this soundfont sound a 16' rank, an octave below the key).
REAL_NOTES = [("piano", 43), ("piano", 79), ("organ", 50), ("organ", 72), ("guitar", 47),
              ("guitar", 76), ("strings", 55), ("strings", 84), ("brass", 60), ("brass", 69),
              ("flute", 64), ("flute", 81)]
PROGRAMS = {"piano": 0, "organ": 20, "guitar": 24, "strings": 48, "brass": 61, "flute": 73}


@pytest.mark.fluidsynth
def test_real_instruments_meet_the_accuracy_criteria():
    notes = [fluid.Note(PROGRAMS[name], (pitch,)) for name, pitch in REAL_NOTES]
    clips = fluid.render_notes(notes, sample_rate=SR)
    errors, octave_errors = [], 0
    for note, clip in zip(notes, clips):
        cents = _cents(perceive(clip[:SR], SR), fluid.midi_to_hz(note.pitches[0]))
        assert cents.size > 40, f"{note}: only {cents.size} voiced frames"
        octave_errors += abs(np.median(cents)) > 600
        errors.append(cents)
    errors = np.abs(np.concatenate(errors))
    assert np.median(errors) < 10.0
    assert np.mean(errors < 50.0) >= 0.95
    assert octave_errors == 0


@pytest.mark.fluidsynth
def test_two_voice_dyads():
    dyads = [(0, 57, 60), (24, 51, 58), (48, 56, 64), (56, 62, 71), (73, 59, 65), (20, 67, 73)]
    notes = [fluid.Note(p, (lo, hi)) for p, lo, hi in dyads]
    clips = fluid.render_notes(notes, sample_rate=SR)
    spec = ControlSpec(n_voices=2, inharmonic=False)
    ok = 0
    for note, clip in zip(notes, clips):
        p = perceive(clip[:SR], SR, cspec=spec)
        found = np.nanmedian(p.f0_hz[:, 10:], axis=1)
        ok += all(np.nanmin(np.abs(1200 * np.log2(found / fluid.midi_to_hz(m)))) < 50 for m in note.pitches)
    assert ok >= 5


def test_white_noise_is_mostly_unvoiced():
    noise = 0.1 * np.random.default_rng(0).normal(size=8000).astype(np.float32)
    assert perceive(noise, SR).voiced.mean() < 0.2
