"""Timbre of a synthetic voice: partial spectrum, stretch, envelope and vibrato.

Pure jax functions, jit/vmap safe, float32. A voice is a set of partials
`f_n = f0 * n**log2(pseudo_octave)` (Sethares 2005, ch. 6: pseudo-octave 2 is
harmonic, 2.1 a stretched piano-like spectrum) whose amplitudes fall by a
spectral slope in dB per octave of partial number (-6 dB/oct is a sawtooth's
1/n), shaped in time by a linear ADSR envelope, with sinusoidal vibrato in cents.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

_DB_PER_OCTAVE_TO_EXPONENT = 1.0 / (20.0 * 0.30102999566)  # n**(slope_db * this) falls slope_db per octave


class Timbre(NamedTuple):
    """Per-voice timbre parameters (float32 scalars, or arrays under vmap).

    slope_db_per_octave: spectral slope (negative: darker with more negative);
    pseudo_octave: frequency ratio of partial 2 to 1 (2 = harmonic);
    attack_s, decay_s, release_s: envelope segment durations (s); sustain: level in [0, 1];
    vibrato_hz, vibrato_cents: vibrato rate (Hz) and depth (cents, peak);
    vibrato_phase: radians; velocity: linear peak amplitude in (0, 1];
    noise_level: breath-noise magnitude relative to the voice's amplitude.
    """
    slope_db_per_octave: jax.Array
    pseudo_octave: jax.Array
    attack_s: jax.Array
    decay_s: jax.Array
    sustain: jax.Array
    release_s: jax.Array
    vibrato_hz: jax.Array
    vibrato_cents: jax.Array
    vibrato_phase: jax.Array
    velocity: jax.Array
    noise_level: jax.Array


def sample_timbre(key: jax.Array, ranges: dict[str, tuple[float, float]]) -> Timbre:
    """One voice's Timbre, each field uniform in `ranges[field]` = (low, high) (equal bounds: fixed).

    `vibrato_phase` is uniform in [0, 2 pi) and needs no range.
    """
    bounds = [ranges.get(name, (0.0, 2.0 * float(jnp.pi))) for name in Timbre._fields]
    low = jnp.asarray([b[0] for b in bounds], jnp.float32)
    high = jnp.asarray([b[1] for b in bounds], jnp.float32)
    # One draw for all fields keeps the compiled graph small (one threefry call, not eleven).
    values = low + (high - low) * jax.random.uniform(key, low.shape, jnp.float32)
    return Timbre(*values)


def _log2_index(n_partials: int, ndim: int) -> jax.Array:
    """log2(n) for n = 1..n_partials, shaped `[1, ..., 1, n_partials]` (rank `ndim`)."""
    n = jnp.arange(1, n_partials + 1, dtype=jnp.float32)
    return jnp.log2(n).reshape((1,) * (ndim - 1) + (n_partials,))


def partial_ratios(n_partials: int, pseudo_octave) -> jax.Array:
    """float32 `[..., n_partials]`: f_n / f_0 = n**log2(pseudo_octave) for n = 1..n_partials."""
    stretch = jnp.log2(jnp.asarray(pseudo_octave, jnp.float32))[..., None]
    return jnp.exp2(_log2_index(n_partials, stretch.ndim) * stretch)


def partial_weights(n_partials: int, slope_db_per_octave) -> jax.Array:
    """float32 `[..., n_partials]`: amplitudes n**(slope/6.02), normalised to sum to 1.

    Summing to 1 bounds the voice's peak by its envelope, whatever the slope.
    """
    exponent = jnp.asarray(slope_db_per_octave, jnp.float32)[..., None] * _DB_PER_OCTAVE_TO_EXPONENT
    weights = jnp.exp2(_log2_index(n_partials, exponent.ndim) * exponent)
    return weights / jnp.sum(weights, axis=-1, keepdims=True)


def adsr(t_s, gate_s, *, attack_s, decay_s, sustain, release_s) -> jax.Array:
    """Linear ADSR envelope in [0, 1] at times `t_s` (s since note-on) for a note held `gate_s`.

    Rises to 1 over `attack_s`, falls to `sustain` over `decay_s`, holds, and
    after note-off falls linearly from wherever it was to 0 over `release_s`.
    Zero before note-on. Shapes broadcast.
    """
    def held(t):
        rise = t / attack_s
        fall = 1.0 - (1.0 - sustain) * (t - attack_s) / decay_s
        level = jnp.where(t < attack_s, rise, jnp.maximum(fall, sustain))
        return jnp.where(t < 0.0, 0.0, level)

    after = held(gate_s) * jnp.clip(1.0 - (t_s - gate_s) / release_s, 0.0, 1.0)
    return jnp.where(t_s < gate_s, held(t_s), after)


def vibrato_ratio(t_s, timbre: Timbre) -> jax.Array:
    """Frequency ratio 2**(depth_cents/1200 * sin(2 pi rate t + phase)) at absolute times `t_s`."""
    phase = 2.0 * jnp.pi * timbre.vibrato_hz * t_s + timbre.vibrato_phase
    return jnp.exp2(timbre.vibrato_cents / 1200.0 * jnp.sin(phase))
