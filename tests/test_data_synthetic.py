"""Synthetic corpora: reproducible, labels that match the audio, scales, stretch, entropy control."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pcmusic.data import (SyntheticSpec, batch_at, interval_entropy_bits, melody, parse_tuning, sample_events,
                          scale_error_cents, synthetic_batch, temperature_for_entropy)
from pcmusic.data.melodies import walk_to_melody
from pcmusic.errors import ConfigError

SR, HOP = 16000, 64
# Steady tones (no vibrato) so spectral peaks are sharp; one second gives 1 Hz FFT bins.
STEADY = dict(sample_rate=SR, hop=HOP, n_frames=250, vibrato_cents=(0.0, 0.0), noise_level=(0.0, 0.0),
              batch_size=4)


def spectrum(x):
    x = np.asarray(x, np.float64)
    mag = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return np.fft.rfftfreq(x.size, 1 / SR), mag


def peak_near(freqs, mag, f_hz, *, bins=3):
    """Frequency of the largest bin within +-bins of f_hz, and its magnitude."""
    i = int(round(f_hz / (freqs[1] - freqs[0])))
    window = slice(max(i - bins, 0), i + bins + 1)
    j = window.start + int(np.argmax(mag[window]))
    return freqs[j], mag[j]


@pytest.fixture(scope="module")
def mixed():
    spec = SyntheticSpec(kind="mixed", batch_size=6, n_frames=100, tuning="19-TET", noise_level=(0.0, 0.1))
    return spec, synthetic_batch(jax.random.key(0), spec)


def test_a_batch_per_key_and_a_stream_by_step(mixed):
    spec, batch = mixed
    other = synthetic_batch(jax.random.key(1), spec)
    assert np.abs(np.asarray(other.audio) - np.asarray(batch.audio)).max() > 0.05
    key = jax.random.key(7)
    at_3 = batch_at(key, 3, spec)
    np.testing.assert_array_equal(np.asarray(at_3.audio),
                                  np.asarray(synthetic_batch(jax.random.fold_in(key, 3), spec).audio))
    assert not np.allclose(np.asarray(batch_at(key, 4, spec).audio), np.asarray(at_3.audio))
    # The events alone (what other renderers play) are those of the rendered batch.
    events, kind = sample_events(jax.random.key(0), spec)
    np.testing.assert_array_equal(np.asarray(kind), np.asarray(batch.kind))
    np.testing.assert_array_equal(np.asarray(events.degrees), np.asarray(batch.degrees))
    np.testing.assert_array_equal(np.asarray(events.onset_s), np.asarray(batch.onset_s))
    # Works inside an outer jit with a traced step (a training step computes its own batch).
    inner = jax.jit(lambda k, s: batch_at(k, s, spec).audio)(key, jnp.int32(3))
    np.testing.assert_allclose(np.asarray(inner), np.asarray(at_3.audio), atol=1e-6)


def test_levels_and_label_consistency(mixed):
    spec, batch = mixed
    audio = np.asarray(batch.audio)
    assert audio.shape == (6, 100 * HOP) and audio.dtype == np.float32
    assert np.isfinite(audio).all() and np.abs(audio).max() <= spec.peak + 1e-6
    assert np.abs(audio).max(axis=1).min() > 0.01  # no silent clip
    active, f0 = np.asarray(batch.active), np.asarray(batch.f0_hz)
    np.testing.assert_array_equal(np.isnan(f0), ~active)
    assert active.any(axis=(1, 2)).all()
    # Every kind shows up and labels follow it: chords use several voices, melodies several notes.
    kinds = np.asarray(batch.kind)
    n_notes = np.isfinite(np.asarray(batch.note_hz)).sum(axis=2)     # [B, V]
    for b, kind in enumerate(kinds):
        if kind == 2:
            assert (n_notes[b] > 0).sum() >= spec.min_voices
        else:
            assert (n_notes[b, 1:] == 0).all()
        if kind == 1:
            assert n_notes[b, 0] >= 2
    # One onset flag per sounding note, at the frame where its attack begins.
    onsets = np.asarray(batch.onsets)
    assert onsets.sum() == np.isfinite(np.asarray(batch.note_hz)).sum()
    b, v, f = np.nonzero(onsets)
    assert active[b, v, np.minimum(f + 1, spec.n_frames - 1)].all()


def test_note_spectrum_peaks_at_the_labelled_f0_and_stretched_partials():
    spec = SyntheticSpec(kind="notes", tuning="12-TET", pseudo_octave=(2.0, 2.2), slope_db_per_octave=(-6.0, -3.0),
                         f0_min_hz=150.0, f0_max_hz=400.0, **STEADY)
    batch = synthetic_batch(jax.random.key(3), spec)
    for b in range(spec.batch_size):
        f0 = float(batch.note_hz[b, 0, 0])
        np.testing.assert_allclose(np.nanmax(np.asarray(batch.f0_hz[b, 0])), f0, rtol=1e-5)
        freqs, mag = spectrum(batch.audio[b])
        # The fundamental is the strongest partial (negative spectral slope): the global peak.
        assert abs(freqs[np.argmax(mag)] - f0) <= freqs[1]
        # Partial n sits at f0 * n**log2(pseudo_octave), the labelled stretch.
        pseudo_octave = float(batch.timbre.pseudo_octave[b, 0])
        for n in (2, 3, 4, 5):
            stretched = f0 * n ** np.log2(pseudo_octave)
            where, height = peak_near(freqs, mag, stretched)
            assert abs(where - stretched) <= freqs[1] and height > 0.02 * mag.max()
            if abs(stretched - n * f0) > 5 * freqs[1]:  # the harmonic position is empty: partials moved
                assert peak_near(freqs, mag, n * f0)[1] < 0.01 * height
    stretches = np.asarray(batch.timbre.pseudo_octave)
    assert stretches.max() - stretches.min() > 0.02 and (np.abs(stretches - 2.0) > 0.02).any()


def test_chord_notes_all_present():
    spec = SyntheticSpec(kind="chords", tuning="just", min_voices=2, max_voices=4, **STEADY)
    batch = synthetic_batch(jax.random.key(5), spec)
    for b in range(spec.batch_size):
        notes = np.asarray(batch.note_hz[b, :, 0])
        notes = notes[np.isfinite(notes)]
        assert notes.size >= 2 and np.unique(notes).size == notes.size
        freqs, mag = spectrum(batch.audio[b])
        floor = np.median(mag)
        for f0 in notes:
            where, height = peak_near(freqs, mag, f0)
            assert abs(where - f0) <= freqs[1] and height > 100 * floor
        # Below the lowest note nothing sounds: the chord has no unlabelled bass.
        assert mag[freqs < 0.9 * notes.min()].max() < 0.01 * mag.max()


def check_on_lattice(batch, spec):
    tuning = spec.tuning
    notes = np.asarray(batch.note_hz)
    notes = notes[np.isfinite(notes)]
    np.testing.assert_allclose(scale_error_cents(notes, tuning, f_ref_hz=spec.f_ref_hz), 0.0, atol=0.02)
    # The pitch-class histogram (cents mod the period) has only the scale's classes, several of them.
    period = tuning.period_cents
    cents = 1200 * np.log2(notes.astype(np.float64) / spec.f_ref_hz)
    to_class = np.abs((cents[:, None] - tuning.cents()[None, :] + period / 2) % period - period / 2)
    assert to_class.min(axis=1).max() < 0.02
    assert np.unique(to_class.argmin(axis=1)).size >= 3
    # Vibrato moves f0 around its note by at most its depth.
    f0 = np.asarray(batch.f0_hz)
    error = scale_error_cents(f0[np.isfinite(f0)], tuning, f_ref_hz=spec.f_ref_hz)
    assert np.abs(error).max() <= spec.vibrato_cents[1] + 0.02
    return notes


def test_melody_notes_stay_on_the_lattice_of_any_tuning(mixed):
    spec = SyntheticSpec(kind="melodies", tuning="bohlen-pierce-just", batch_size=8, n_frames=64,
                         notes_per_melody=12, max_step=3, noise_level=(0.0, 0.0))
    batch = synthetic_batch(jax.random.key(2), spec)
    assert check_on_lattice(batch, spec).size > 60
    check_on_lattice(mixed[1], mixed[0])  # 19-TET, every kind


def test_melody_entropy_rises_with_temperature():
    lattice = jnp.asarray(110.0 * 2 ** (np.arange(48) / 12), jnp.float32)  # four octaves: edges rarely bind

    @jax.jit
    def intervals(key, temperature):
        lines = jax.vmap(lambda k: walk_to_melody(k, lattice, n_notes=24, temperature=temperature, max_step=4,
                                                  seconds=4.0, rest_probability=0.0))(jax.random.split(key, 128))
        return jnp.diff(lines.degrees, axis=1)

    temperatures = (0.1, 0.4, 1.0, 2.5, 10.0)
    measured = []
    for t in temperatures:
        steps = np.asarray(intervals(jax.random.key(0), jnp.float32(t))).ravel()
        _, counts = np.unique(steps, return_counts=True)
        p = counts / counts.sum()
        measured.append(-(p * np.log2(p)).sum())
    assert np.all(np.diff(measured) > 0.1), measured
    predicted = [float(interval_entropy_bits(t, max_step=4)) for t in temperatures]
    np.testing.assert_allclose(measured, predicted, atol=0.15)
    t = temperature_for_entropy(2.0, max_step=4)
    assert float(interval_entropy_bits(t, max_step=4)) == pytest.approx(2.0, abs=1e-4)


def test_melody_function_durations_and_rests():
    line = melody(jax.random.key(4), tuning=parse_tuning("19-TET"), n_notes=16, seconds=3.0,
                  rest_probability=0.3)
    assert float(jnp.sum(line.durations_s)) == pytest.approx(3.0, rel=1e-5)
    rests = np.asarray(line.rests)
    assert not rests[0] and rests.any() and np.isnan(np.asarray(line.note_hz)[rests]).all()


def test_bad_specs_are_config_errors():
    with pytest.raises(ConfigError, match="accepted kinds"):
        SyntheticSpec(kind="drums")
    with pytest.raises(ConfigError, match="accepted names"):
        SyntheticSpec(tuning="24-tone")
    with pytest.raises(ConfigError, match="widen the range"):
        SyntheticSpec(tuning="5-TET", f0_min_hz=200.0, f0_max_hz=210.0)
    assert SyntheticSpec(seconds=0.5, hop=80).n_frames == 100
