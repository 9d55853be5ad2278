"""Real sampled instruments: the notes of a synthetic spec played by FluidSynth.

`render_instrument_batch(key, spec)` draws exactly the events of
`synthetic_batch(key, spec)` (`sample_events`: same notes, chords, melodies,
onsets and durations) and plays them with General MIDI instruments through
`pcmusic.data.fluid` instead of the oscillator bank, so perception can be tested on
real instruments with the same labels. The spec's timbre ranges do not apply;
its velocity range sets MIDI velocities. Each note is rendered with its release
tail and overlap-added at its onset.

FluidSynth plays MIDI pitches, so only tunings whose pitches (at `f_ref_hz`) lie
on the 12-TET grid can be rendered ("12-TET", "6-TET", "4-TET", "3-TET", ...);
others raise PcmusicError. Needs the fluidsynth binary and a GM soundfont
(`pcmusic.data.fluid.available()`); `require_fluidsynth()` explains what is missing.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np

from pcmusic.data import fluid
from pcmusic.data.spec import SyntheticSpec
from pcmusic.data.synthetic import sample_events
from pcmusic.errors import PcmusicError

MAX_MIDI_ERROR_CENTS = 1.0
DEFAULT_PROGRAMS = ("piano", "organ", "guitar", "strings", "flute", "clarinet", "trumpet")


class InstrumentBatch(NamedTuple):
    """Clips played by GM instruments (numpy; B: batch, V: voices, N: note slots, F: frames).

    audio: float32 `[B, n_samples]`, peak <= spec.peak.
    f0_hz: float32 `[B, V, F]` nominal pitch while a note is held (onset to note-off), NaN
      elsewhere (release tails ring on but are not labelled).
    note_hz, onset_s, gate_s: float32 `[B, V, N]` as in `SyntheticBatch` (NaN: rest or unused).
    midi_pitches: int32 `[B, V, N]`, -1 for rests and unused slots.
    programs: int32 `[B]` 0-based GM programs; kind: int32 `[B]`; gain: float32 `[B]`.
    """
    audio: np.ndarray
    f0_hz: np.ndarray
    note_hz: np.ndarray
    onset_s: np.ndarray
    gate_s: np.ndarray
    midi_pitches: np.ndarray
    programs: np.ndarray
    kind: np.ndarray
    gain: np.ndarray


def require_fluidsynth(soundfont: str | None = None) -> None:
    """Raise PcmusicError saying what to install unless fluidsynth and a soundfont are present."""
    if not fluid.available(soundfont):
        raise PcmusicError(f"real-instrument corpora need the fluidsynth binary and a GM soundfont "
                           f"({soundfont or 'any of ' + ', '.join(fluid.DEFAULT_SOUNDFONTS)}); install them "
                           "(Debian: apt-get install fluidsynth timgm6mb-soundfont) or use synthetic data")


def midi_lattice(spec: SyntheticSpec) -> np.ndarray:
    """int `[n_pitches]`: the MIDI pitch of each pitch of `spec.lattice_hz()`; PcmusicError if off-grid."""
    lattice = spec.lattice_hz()
    midi = 69.0 + 12.0 * np.log2(lattice / 440.0)
    error_cents = 100.0 * np.abs(midi - np.round(midi))
    if error_cents.max() > MAX_MIDI_ERROR_CENTS or midi.min() < 0 or midi.max() > 127:
        worst = int(np.argmax(error_cents))
        raise PcmusicError(
            f"FluidSynth plays 12-TET MIDI pitches only: tuning {spec.tuning.name!r} at f_ref_hz={spec.f_ref_hz} "
            f"has {lattice[worst]:.2f} Hz, {error_cents[worst]:.1f} cents from MIDI pitch "
            f"{int(np.round(midi[worst]))}; use a tuning on the 12-TET grid (12-TET, 6-TET, 4-TET, 3-TET) "
            "with f_ref_hz a MIDI pitch (261.6256 is C4), or synthetic data for other tunings")
    return np.round(midi).astype(np.int32)


def render_instrument_batch(key: jax.Array, spec: SyntheticSpec, *, programs: Sequence[str | int] = DEFAULT_PROGRAMS,
                            soundfont: str | None = None, release_s: float = 1.0) -> InstrumentBatch:
    """Play the events of `synthetic_batch(key, spec)` with GM instruments (one per clip).

    programs: GM names from `pcmusic.data.fluid.GM_PROGRAMS` or 0-based program numbers; each
    clip draws one from `key`. release_s: how long each note's release is rendered.
    """
    require_fluidsynth(soundfont)
    numbers = [fluid.GM_PROGRAMS[p] if isinstance(p, str) and p in fluid.GM_PROGRAMS else p for p in programs]
    if not numbers or any(not isinstance(p, (int, np.integer)) or not 0 <= p <= 127 for p in numbers):
        raise PcmusicError(f"programs {tuple(programs)!r}: give GM names ({', '.join(fluid.GM_PROGRAMS)}) "
                           "or program numbers 0..127")
    midi = midi_lattice(spec)
    events, kind = jax.device_get(sample_events(key, spec))
    k_program, k_velocity = jax.random.split(jax.random.fold_in(key, 1))
    choice = np.asarray(jax.random.randint(k_program, (spec.batch_size,), 0, len(numbers)))
    clip_programs = np.asarray(numbers, np.int32)[choice]
    velocity = np.asarray(jax.random.uniform(k_velocity, events.degrees.shape, minval=spec.velocity[0],
                                             maxval=spec.velocity[1]))
    sounding = ~events.rests & np.isfinite(events.onset_s)
    notes, places = [], []
    for b, v, n in zip(*np.nonzero(sounding)):
        notes.append(fluid.Note(program=int(clip_programs[b]), pitches=(int(midi[events.degrees[b, v, n]]),),
                                duration_s=float(events.gate_s[b, v, n]),
                                velocity=int(np.clip(round(127 * velocity[b, v, n]), 1, 127))))
        places.append((b, round(float(events.onset_s[b, v, n]) * spec.sample_rate)))
    audio = np.zeros((spec.batch_size, spec.n_samples), np.float32)
    rendered = fluid.render_notes(notes, sample_rate=spec.sample_rate, soundfont=soundfont,
                                  release_s=release_s) if notes else []
    for (b, start), clip in zip(places, rendered):
        piece = clip[:max(0, spec.n_samples - start)]
        audio[b, start:start + piece.shape[0]] += piece
    peak = np.abs(audio).max(axis=1)
    gain = np.where(peak > spec.peak, spec.peak / np.maximum(peak, 1e-12), 1.0).astype(np.float32)
    lattice = spec.lattice_hz().astype(np.float32)
    note_hz = np.where(sounding, lattice[events.degrees], np.nan).astype(np.float32)
    t_s = np.arange(spec.n_frames, dtype=np.float64) * spec.hop / spec.sample_rate
    held = ((t_s >= events.onset_s[..., None]) & (t_s < (events.onset_s + events.gate_s)[..., None])
            & sounding[..., None])                                                   # [B, V, N, F]
    f0_hz = np.where(held.any(axis=2), np.nansum(np.where(held, note_hz[..., None], 0.0), axis=2), np.nan)
    return InstrumentBatch(audio=audio * gain[:, None], f0_hz=f0_hz.astype(np.float32), note_hz=note_hz,
                           onset_s=events.onset_s, gate_s=events.gate_s,
                           midi_pitches=np.where(sounding, midi[events.degrees], -1).astype(np.int32),
                           programs=clip_programs, kind=np.asarray(kind, np.int32), gain=gain)
