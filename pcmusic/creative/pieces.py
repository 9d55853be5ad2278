"""Generators of the music coevolution: pieces in Hz, their mutation and rendering.

A `Piece` is a looped melody of 2..max_notes notes, each a pitch in log2 Hz (no note
names, no scale), and a timbre (partial stretch k**stretch, brightness = amplitude ratio
of neighbouring partials), rendered by the oscillator bank. Mutation moves notes by
10-50 cents, inserts or deletes notes, and nudges the timbre. `piece_type` quantises a
piece for the MODES metrics. Fields carry a leading population axis under vmap.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.dsp import synth
from pcmusic.errors import ConfigError


class Piece(NamedTuple):
    """A generator genome (fields may carry leading population axes).

    log2_hz: float32 `[max_notes]` note pitches, log2 of Hz (entries >= n_notes unused);
    n_notes: int32 `[]`; stretch: float32 `[]` (partial k at f0 * k**stretch, 1 =
    harmonic); brightness: float32 `[]` (partial k has amplitude brightness**(k-1)).
    """
    log2_hz: jax.Array
    n_notes: jax.Array
    stretch: jax.Array
    brightness: jax.Array


@dataclasses.dataclass(frozen=True)
class PieceSpace:
    """Bounds, mutation rates and rendering of pieces (static). Notes are isochronous,
    `note_frames` frames each at the listener's frame rate, sounding for the first
    `gate` of the slot; the melody loops to fill `n_frames`."""
    max_notes: int = 8
    min_notes: int = 2
    f_min_hz: float = 150.0
    f_max_hz: float = 900.0
    stretch_range: tuple[float, float] = (0.9, 1.1)
    brightness_range: tuple[float, float] = (0.3, 0.85)
    n_partials: int = 6
    note_frames: int = 12
    gate: float = 0.75
    n_frames: int = 96
    amplitude: float = 0.3
    cents_range: tuple[float, float] = (10.0, 50.0)
    p_extra_pitch: float = 0.15
    p_insert: float = 0.1
    p_delete: float = 0.1
    max_insert_cents: float = 700.0
    p_timbre: float = 0.2
    stretch_sigma: float = 0.01
    brightness_sigma: float = 0.05

    def __post_init__(self):
        if not 1 <= self.min_notes <= self.max_notes:
            raise ConfigError(f"PieceSpace needs 1 <= min_notes <= max_notes, got "
                              f"{self.min_notes}, {self.max_notes}")
        if not (0 < self.f_min_hz < self.f_max_hz and 0 < self.gate < 1 and self.note_frames >= 2):
            raise ConfigError("PieceSpace needs 0 < f_min_hz < f_max_hz, 0 < gate < 1 and "
                              f"note_frames >= 2; got {self.f_min_hz}, {self.f_max_hz}, "
                              f"{self.gate}, {self.note_frames}")
        if not 0 < self.cents_range[0] <= self.cents_range[1]:
            raise ConfigError(f"PieceSpace.cents_range must be 0 < low <= high, got {self.cents_range}")


def _clip(piece: Piece, space: PieceSpace) -> Piece:
    return Piece(jnp.clip(piece.log2_hz, math.log2(space.f_min_hz), math.log2(space.f_max_hz)),
                 jnp.clip(piece.n_notes, space.min_notes, space.max_notes).astype(jnp.int32),
                 jnp.clip(piece.stretch, *space.stretch_range),
                 jnp.clip(piece.brightness, *space.brightness_range))


def random_piece(key: jax.Array, *, space: PieceSpace) -> Piece:
    """A piece with pitches log-uniform in the range and a uniform timbre and length."""
    k_pitch, k_n, k_stretch, k_bright = jax.random.split(key, 4)
    lo, hi = math.log2(space.f_min_hz), math.log2(space.f_max_hz)
    return Piece(jax.random.uniform(k_pitch, (space.max_notes,), minval=lo, maxval=hi),
                 jax.random.randint(k_n, (), space.min_notes, space.max_notes + 1),
                 jax.random.uniform(k_stretch, (), minval=space.stretch_range[0],
                                    maxval=space.stretch_range[1]),
                 jax.random.uniform(k_bright, (), minval=space.brightness_range[0],
                                    maxval=space.brightness_range[1]))


def _signed(key, shape, low, high):
    k_size, k_sign = jax.random.split(key)
    size = jax.random.uniform(k_size, shape, minval=low, maxval=high)
    return jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), size, -size)


def mutate_piece(key: jax.Array, piece: Piece, *, space: PieceSpace) -> Piece:
    """One asexual mutation: one note (plus each other with `p_extra_pitch`) moves by
    +-U(cents_range) cents; with `p_insert` a note is inserted (a neighbour's pitch
    +-U(0, max_insert_cents)); with `p_delete` one is removed; with `p_timbre` stretch
    and brightness take Gaussian steps. Stays inside `space`; deterministic per key."""
    ks = jax.random.split(key, 9)
    n = piece.n_notes
    slots = jnp.arange(space.max_notes)
    pick = jax.random.randint(ks[0], (), 0, n)
    moved = (slots == pick) | jax.random.bernoulli(ks[1], space.p_extra_pitch, slots.shape)
    step = _signed(ks[2], slots.shape, *space.cents_range) / 1200.0
    log2_hz = piece.log2_hz + jnp.where(moved & (slots < n), step, 0.0)

    insert = jax.random.bernoulli(ks[3], space.p_insert) & (n < space.max_notes)
    at = jax.random.randint(ks[4], (), 0, n + 1)
    new_pitch = log2_hz[jnp.maximum(at - 1, 0)] + _signed(ks[5], (), 0.0, space.max_insert_cents) / 1200.0
    shifted = jnp.where(slots > at, jnp.roll(log2_hz, 1), log2_hz)
    log2_hz = jnp.where(insert, jnp.where(slots == at, new_pitch, shifted), log2_hz)
    n = n + insert.astype(jnp.int32)

    delete = jax.random.bernoulli(ks[6], space.p_delete) & ~insert & (n > space.min_notes)
    gone = jax.random.randint(ks[7], (), 0, n)
    log2_hz = jnp.where(delete & (slots >= gone), jnp.roll(log2_hz, -1), log2_hz)
    n = n - delete.astype(jnp.int32)

    k_timbre, k_s, k_b = jax.random.split(ks[8], 3)
    timbre = jax.random.bernoulli(k_timbre, space.p_timbre)
    stretch = piece.stretch + jnp.where(timbre, space.stretch_sigma * jax.random.normal(k_s), 0.0)
    bright = piece.brightness + jnp.where(timbre, space.brightness_sigma * jax.random.normal(k_b), 0.0)
    return _clip(Piece(log2_hz, n, stretch, bright), space)


def note_controls(log2_hz, n_notes, *, space: PieceSpace) -> tuple[jax.Array, jax.Array]:
    """Per frame f0 (Hz) and envelope (0/amplitude), float32 `[n_frames]` each, of the
    melody looped over `space.n_frames`. The pitch changes in a silent frame (no glides)."""
    frame = jnp.arange(space.n_frames)
    slot, within = frame // space.note_frames, frame % space.note_frames
    on_frames = max(1, round(space.gate * space.note_frames))
    index = jnp.where(within > on_frames, slot + 1, slot) % n_notes
    f0 = jnp.exp2(jnp.asarray(log2_hz, jnp.float32)[index])
    envelope = jnp.where(within < on_frames, jnp.float32(space.amplitude), jnp.float32(0.0))
    return f0, envelope


def render_tone(f0_hz, envelope, *, stretch, brightness, n_partials: int, sample_rate: int,
                hop: int) -> jax.Array:
    """Stretched-partial tone: f0_hz, envelope float32 `[..., n_frames]`, stretch and
    brightness float32 `[...]` -> audio float32 `[..., n_frames * hop]`; partial k at
    f0 * k**stretch with amplitude envelope * brightness**(k-1) / sum of those weights."""
    f0_hz, envelope = jnp.asarray(f0_hz, jnp.float32), jnp.asarray(envelope, jnp.float32)
    k = jnp.arange(1, n_partials + 1, dtype=jnp.float32).reshape((1,) * f0_hz.ndim + (n_partials,))
    stretch = jnp.asarray(stretch, jnp.float32)[..., None, None]
    brightness = jnp.asarray(brightness, jnp.float32)[..., None, None]
    weights = brightness ** (k - 1.0)
    freqs = f0_hz[..., None] * k ** stretch
    amps = envelope[..., None] * weights / jnp.sum(weights, axis=-1, keepdims=True)
    return synth.sinusoids(freqs, amps, sample_rate=sample_rate, hop=hop)


def render_piece(piece: Piece, *, space: PieceSpace, sample_rate: int, hop: int) -> jax.Array:
    """Audio float32 `[n_frames * hop]` of one piece (vmap for a population)."""
    f0, env = note_controls(piece.log2_hz, piece.n_notes, space=space)
    return render_tone(f0, env, stretch=piece.stretch, brightness=piece.brightness,
                       n_partials=space.n_partials, sample_rate=sample_rate, hop=hop)


def piece_type(piece: Piece, *, quantum_cents: float = 100.0) -> tuple:
    """A hashable type for MODES: the note pitches rounded to `quantum_cents` (relative
    to 440 Hz), and the stretch rounded to 0.01. `piece` holds numpy scalars/arrays."""
    n = int(piece.n_notes)
    cents = 1200.0 * (np.asarray(piece.log2_hz)[:n] - math.log2(440.0))
    return tuple(np.round(cents / quantum_cents).astype(int).tolist()) + (
        round(float(piece.stretch) * 100),)


def type_interval_entropy(piece_type_: tuple) -> float:
    """Complexity of a type from `piece_type`: Shannon entropy (bits) of the intervals
    between successive notes of the loop (the last note leads back to the first)."""
    notes = np.asarray(piece_type_[:-1])
    intervals = np.diff(np.concatenate([notes, notes[:1]]))
    _, counts = np.unique(intervals, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())
