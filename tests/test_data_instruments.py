"""Real instruments: FluidSynth plays the synthetic events; count, pitch and timing labels hold."""
import jax
import numpy as np
import pytest

from pcmusic.data import fluid
from pcmusic.data import SyntheticSpec
from pcmusic.data.instruments import midi_lattice, render_instrument_batch
from pcmusic.errors import PcmusicError

SR = 16000


def salience(x, f_hz, *, n_harmonics=6):
    """Sum over harmonics k of the spectrum's peak within 1% of k * f_hz."""
    x = np.asarray(x, np.float64)
    mag = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    total = 0.0
    for k in range(1, n_harmonics + 1):
        near = np.abs(freqs - k * f_hz) <= max(0.01 * k * f_hz, freqs[1])
        total += mag[near].max() if near.any() else 0.0
    return total


def assert_pitch(x, f_hz):
    """The labelled pitch is more salient than the pitches one and two semitones away."""
    label = salience(x, f_hz)
    for step in (-2, -1, 1, 2):
        assert label > salience(x, f_hz * 2 ** (step / 12)), (f_hz, step)


@pytest.mark.fluidsynth
def test_notes_corpus_count_and_pitch_labels():
    spec = SyntheticSpec(kind="notes", batch_size=4, sample_rate=SR, hop=160, n_frames=60, f0_min_hz=150.0,
                         f0_max_hz=600.0)
    batch = render_instrument_batch(jax.random.key(0), spec, programs=("piano", "organ", "flute", "strings"))
    assert batch.audio.shape == (4, spec.n_samples) and np.isfinite(batch.audio).all()
    assert np.abs(batch.audio).max() <= spec.peak + 1e-6
    for b in range(4):
        f0, onset, gate = (float(a[b, 0, 0]) for a in (batch.note_hz, batch.onset_s, batch.gate_s))
        assert batch.midi_pitches[b, 0, 0] == round(69 + 12 * np.log2(f0 / 440))
        held = batch.audio[b, int(onset * SR) + 800: int((onset + gate) * SR)]
        assert_pitch(held, f0)
        # Silence before the onset, sound while held.
        before = batch.audio[b, :int(onset * SR)]
        assert (np.abs(before).max() if before.size else 0.0) < 1e-3 < np.abs(held).max()
        labelled = batch.f0_hz[b, 0]
        assert np.nanmax(labelled) == np.nanmin(labelled) == pytest.approx(f0)


@pytest.mark.fluidsynth
def test_melodies_follow_their_labels_in_time():
    spec = SyntheticSpec(kind="melodies", batch_size=2, sample_rate=SR, hop=160, n_frames=200, notes_per_melody=5,
                         max_step=3, rest_probability=0.0, articulation=(0.9, 0.9), f0_min_hz=200.0,
                         f0_max_hz=500.0)
    batch = render_instrument_batch(jax.random.key(1), spec, programs=("organ",), release_s=0.3)
    assert (batch.programs == fluid.GM_PROGRAMS["organ"]).all()
    checked = 0
    for b in range(2):
        for n in range(5):
            onset, gate, f0 = batch.onset_s[b, 0, n], batch.gate_s[b, 0, n], batch.note_hz[b, 0, n]
            if gate < 0.15:
                continue
            assert_pitch(batch.audio[b, int((onset + 0.05) * SR): int((onset + gate) * SR)], f0)
            checked += 1
    assert checked >= 6


def test_off_grid_tunings_are_refused():
    assert midi_lattice(SyntheticSpec(tuning="12-TET"))[0] == 45  # A2 = 110 Hz
    with pytest.raises(PcmusicError, match="12-TET MIDI pitches only"):
        midi_lattice(SyntheticSpec(tuning="5-TET"))
    with pytest.raises(PcmusicError, match="f_ref_hz"):
        midi_lattice(SyntheticSpec(tuning="12-TET", f_ref_hz=256.0))
