"""Synthetic corpora rendered on device from a key: endless, reproducible, labelled.

`synthetic_batch(key, spec)` is jit-compiled (the spec is static) and vmapped
over the batch: each clip draws its events (which scale pitches sound when) and
per-voice timbres, builds frame-rate oscillator controls, and renders them with
`pcmusic.dsp.synth.sinusoids` (one bank for all partials of all voices, stretched
or not) plus `pcmusic.dsp.synth.filtered_noise`. `batch_at(key, step, spec)` folds the
step into the key, so a training run's data position is its step and resuming
is exact.

Events live in `n_slots` note slots per voice: slot j starts at `onset_s[j]`
(NaN: never) and is held `gate_s[j]`, then released; the next slot's onset cuts
the release. A rest slot is silence from its onset. Labels are frame-aligned
with the synth's controls (frame n at sample n*hop).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from pcmusic.dsp import synth
from pcmusic.data import timbre as tb
from pcmusic.data.melodies import walk_to_melody
from pcmusic.data.spec import SyntheticSpec

ACTIVE_THRESHOLD = 0.01  # a voice is active (f0 labelled) while its envelope is above -40 dB of its peak
KIND_IDS = {"notes": 0, "melodies": 1, "chords": 2}


class SyntheticBatch(NamedTuple):
    """A batch of clips and their labels (B: batch, V: voices, F: frames, N: note slots).

    audio: float32 `[B, n_samples]`, peak <= spec.peak.
    f0_hz: float32 `[B, V, F]` instantaneous f0 (with vibrato), NaN where the voice is silent.
    active: bool `[B, V, F]`, envelope >= ACTIVE_THRESHOLD.
    onsets: bool `[B, V, F]`, True at the frame where a sounding note starts.
    amplitude: float32 `[B, V, F]` the voice's linear amplitude (sum of its partial
      amplitudes, after `gain`); partial p has `amplitude * partial_weights[..., p]`.
    partial_weights: float32 `[B, V, n_harmonics]`, sums to 1 per voice.
    note_hz: float32 `[B, V, N]` nominal note pitches on the scale, NaN for rests and unused slots.
    degrees: int32 `[B, V, N]` index of each slot's pitch in `spec.lattice_hz()`.
    onset_s, gate_s: float32 `[B, V, N]` slot start (NaN if unused) and held duration, seconds.
    timbre: `timbre.Timbre` with fields `[B, V]`.
    kind: int32 `[B]` (KIND_IDS); gain: float32 `[B]` scale applied to keep the peak.
    """
    audio: jax.Array
    f0_hz: jax.Array
    active: jax.Array
    onsets: jax.Array
    amplitude: jax.Array
    partial_weights: jax.Array
    note_hz: jax.Array
    degrees: jax.Array
    onset_s: jax.Array
    gate_s: jax.Array
    timbre: tb.Timbre
    kind: jax.Array
    gain: jax.Array


class NoteEvents(NamedTuple):
    """Which scale pitches sound when, per voice and note slot (shapes `[..., V, N]`).

    degrees: int32 index into `spec.lattice_hz()`; rests: bool (silent slot);
    onset_s: float32 slot start, NaN for unused slots; gate_s: float32 held duration.
    """
    degrees: jax.Array
    rests: jax.Array
    onset_s: jax.Array
    gate_s: jax.Array


def _place(values: NoteEvents, spec: SyntheticSpec) -> NoteEvents:
    """Pad events `[v, n]` into the spec's `[V, N]` slots (padding: unused rests)."""
    shape = (spec.n_voices, spec.n_slots)
    fills = (0, True, jnp.nan, 0.0)
    return NoteEvents(*(jnp.full(shape, fill, x.dtype).at[:x.shape[0], :x.shape[1]].set(x)
                     for x, fill in zip(values, fills)))


def _sustained_timing(key, spec: SyntheticSpec):
    """Onset in the first tenth of the clip; held a fraction `articulation` of the rest."""
    k_onset, k_art = jax.random.split(key)
    clip = spec.clip_seconds
    onset = jax.random.uniform(k_onset, (), jnp.float32, 0.0, 0.1 * clip)
    art = jax.random.uniform(k_art, (), jnp.float32, *spec.articulation)
    return onset, art * (clip - onset)


def _note_events(key, spec: SyntheticSpec, n_pitches: int) -> NoteEvents:
    k_time, k_pitch = jax.random.split(key)
    onset, gate = _sustained_timing(k_time, spec)
    degree = jax.random.randint(k_pitch, (1, 1), 0, n_pitches)
    return _place(NoteEvents(degree, jnp.zeros((1, 1), bool), onset.reshape(1, 1), gate.reshape(1, 1)), spec)


def _chord_events(key, spec: SyntheticSpec, n_pitches: int) -> NoteEvents:
    """`min_voices..max_voices` distinct pitches within 1.5 periods of a random root."""
    k_time, k_count, k_root, k_offsets = jax.random.split(key, 4)
    onset, gate = _sustained_timing(k_time, spec)
    span = min(max(round(1.5 * spec.tuning.n_steps), spec.max_voices - 1), n_pitches - 1)
    root = jax.random.randint(k_root, (), 0, n_pitches - span)
    offsets = jnp.sort(jax.random.permutation(k_offsets, span)[:spec.max_voices - 1] + 1)
    degrees = root + jnp.concatenate([jnp.zeros((1,), jnp.int32), offsets.astype(jnp.int32)])
    count = jax.random.randint(k_count, (), spec.min_voices, spec.max_voices + 1)
    rests = jnp.arange(spec.max_voices) >= count
    times = jnp.ones((spec.max_voices, 1), jnp.float32)
    return _place(NoteEvents(degrees[:, None], rests[:, None], onset * times, gate * times), spec)


def _melody_events(key, spec: SyntheticSpec, lattice_hz: jax.Array) -> NoteEvents:
    k_walk, k_art = jax.random.split(key)
    line = walk_to_melody(k_walk, lattice_hz, n_notes=spec.notes_per_melody,
                          temperature=spec.melody_temperature, max_step=spec.max_step,
                          seconds=spec.clip_seconds, rest_probability=spec.rest_probability)
    onset = jnp.cumsum(line.durations_s) - line.durations_s
    art = jax.random.uniform(k_art, line.durations_s.shape, jnp.float32, *spec.articulation)
    return _place(NoteEvents(line.degrees[None], line.rests[None], onset[None],
                          (art * line.durations_s)[None]), spec)


def _events(key, spec: SyntheticSpec, lattice_hz: jax.Array):
    """Events of one clip and its kind id (for "mixed", one of the three at random)."""
    if spec.kind != "mixed":
        n = lattice_hz.shape[0]
        make = {"notes": lambda k: _note_events(k, spec, n), "chords": lambda k: _chord_events(k, spec, n),
                "melodies": lambda k: _melody_events(k, spec, lattice_hz)}[spec.kind]
        return make(key), jnp.int32(KIND_IDS[spec.kind])
    k_kind, k_notes, k_melody, k_chord = jax.random.split(key, 4)
    options = (_note_events(k_notes, spec, lattice_hz.shape[0]), _melody_events(k_melody, spec, lattice_hz),
               _chord_events(k_chord, spec, lattice_hz.shape[0]))
    kind = jax.random.randint(k_kind, (), 0, 3)
    chosen = jax.tree.map(lambda *xs: jnp.stack(xs)[kind], *options)
    return chosen, kind


def _voice_frames(events: NoteEvents, timbre: tb.Timbre, lattice_hz, spec: SyntheticSpec):
    """One voice's frame controls: f0 `[F]` (always finite), envelope `[F]`, onset flags `[F]`.

    `events` fields are `[N]` (one voice's slots), `timbre` fields scalars.
    """
    t_s = jnp.arange(spec.n_frames, dtype=jnp.float32) * jnp.float32(spec.hop / spec.sample_rate)
    started = events.onset_s[None, :] <= t_s[:, None]                     # [F, N]; NaN never starts
    slot = jnp.sum(started, axis=1, dtype=jnp.int32) - 1                  # current slot, -1 before the first
    current = jnp.maximum(slot, 0)
    since_s = t_s - jnp.nan_to_num(events.onset_s[current])
    envelope = tb.adsr(since_s, events.gate_s[current], attack_s=timbre.attack_s, decay_s=timbre.decay_s,
                       sustain=timbre.sustain, release_s=timbre.release_s)
    sounding = (slot >= 0) & ~events.rests[current]
    envelope = jnp.where(sounding, envelope, 0.0)
    f0_hz = lattice_hz[events.degrees[current]] * tb.vibrato_ratio(t_s, timbre)
    previous = jnp.concatenate([jnp.full((1,), -1, jnp.int32), slot[:-1]])
    onsets = sounding & (slot != previous)
    return f0_hz, envelope, onsets


def _clip_keys(key, spec: SyntheticSpec):
    """Per clip: keys for (events, timbre, noise). Shared with `sample_events` so that
    other renderers of a key (e.g. `instruments`) play the same notes."""
    return jax.vmap(lambda k: jax.random.split(k, 3))(jax.random.split(key, spec.batch_size))


def _render_clip(keys, spec: SyntheticSpec, lattice_hz: jax.Array) -> SyntheticBatch:
    k_events, k_timbre, k_noise = keys
    events, kind = _events(k_events, spec, lattice_hz)
    timbres = jax.vmap(lambda k: tb.sample_timbre(k, spec.timbre_ranges()))(
        jax.random.split(k_timbre, spec.n_voices))
    f0_hz, envelope, onsets = jax.vmap(
        lambda e, t: _voice_frames(e, t, lattice_hz, spec))(events, timbres)  # each [V, F]
    amplitude = envelope * timbres.velocity[:, None]
    weights = tb.partial_weights(spec.n_harmonics, timbres.slope_db_per_octave)        # [V, P]
    freqs = f0_hz[:, :, None] * tb.partial_ratios(spec.n_harmonics, timbres.pseudo_octave)[:, None, :]
    amps = amplitude[:, :, None] * weights[:, None, :]                                  # [V, F, P]
    # All voices' partials in one bank: [F, V*P].
    to_bank = lambda x: jnp.moveaxis(x, 0, 1).reshape(spec.n_frames, -1)
    audio = synth.sinusoids(to_bank(freqs), to_bank(amps), sample_rate=spec.sample_rate, hop=spec.hop)
    # Breath noise follows each voice's amplitude, tilted like its partials (bands up to Nyquist).
    tilt = tb.partial_weights(spec.n_noise_bands, timbres.slope_db_per_octave)          # [V, bands]
    tilt = tilt / jnp.sqrt(jnp.mean(tilt * tilt, axis=-1, keepdims=True))  # RMS 1: noise RMS ~ level * amplitude
    noise_mag = jnp.sum((amplitude * timbres.noise_level[:, None])[:, :, None] * tilt[:, None, :], axis=0)
    if spec.noise_level[1] > 0:  # static: noiseless specs skip the noise bank
        audio = audio + synth.filtered_noise(noise_mag, hop=spec.hop, key=k_noise)
    peak = jnp.max(jnp.abs(audio))
    gain = jnp.where(peak > spec.peak, spec.peak / jnp.maximum(peak, 1e-12), 1.0)
    active = envelope >= ACTIVE_THRESHOLD
    note_hz = jnp.where(events.rests | jnp.isnan(events.onset_s), jnp.nan, lattice_hz[events.degrees])
    return SyntheticBatch(
        audio=audio * gain, f0_hz=jnp.where(active, f0_hz, jnp.nan), active=active, onsets=onsets,
        amplitude=amplitude * gain, partial_weights=weights, note_hz=note_hz, degrees=events.degrees,
        onset_s=events.onset_s, gate_s=events.gate_s, timbre=timbres, kind=kind, gain=gain)


@functools.partial(jax.jit, static_argnames="spec")
def synthetic_batch(key: jax.Array, spec: SyntheticSpec) -> SyntheticBatch:
    """Render `spec.batch_size` labelled clips from `key` (see `SyntheticBatch`).

    Deterministic for (key, spec); jit-compiled once per spec. Audio float32
    `[B, spec.n_samples]` at `spec.sample_rate`, peak <= `spec.peak`.
    """
    lattice_hz = jnp.asarray(spec.lattice_hz(), jnp.float32)
    return jax.vmap(lambda k: _render_clip(k, spec, lattice_hz))(_clip_keys(key, spec))


@functools.partial(jax.jit, static_argnames="spec")
def sample_events(key: jax.Array, spec: SyntheticSpec) -> tuple[NoteEvents, jax.Array]:
    """The notes of `synthetic_batch(key, spec)` without rendering: NoteEvents `[B, V, N]`, kind int32 `[B]`."""
    lattice_hz = jnp.asarray(spec.lattice_hz(), jnp.float32)
    return jax.vmap(lambda k: _events(k[0], spec, lattice_hz))(_clip_keys(key, spec))


def batch_at(key: jax.Array, step, spec: SyntheticSpec) -> SyntheticBatch:
    """The batch at data position `step` of the endless stream `key`: `synthetic_batch(fold_in(key, step))`."""
    return synthetic_batch(jax.random.fold_in(key, step), spec)
