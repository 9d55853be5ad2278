"""Melodies: a random walk over a tuning's scale with an entropy control.

Successive notes move by `k` scale steps, `k` in `[-max_step, max_step]`, with

    p(k) ∝ exp(-|k| / temperature)          (a Gibbs distribution over |k|)

so small steps are likelier than leaps, as in most melodies (Huron, "Sweet
Anticipation", 2006, ch. 5: pitch proximity). The entropy of p rises strictly
with the temperature (dH/dT = Var|k| / T^3 > 0): T -> 0 repeats one note
(0 bits), T -> inf draws every step uniformly (log2(2*max_step+1) bits). Steps
that would leave the frequency range are masked out and the rest renormalised,
so a walk never clips against the range. `temperature_for_entropy` inverts the
map for experiments that sweep entropy in bits.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.data.tunings import Tuning, TuningError, scale_frequencies

_MIN_TEMPERATURE = 1e-3  # keeps exp(-|k|/T) finite; at this T a step of 1 has probability ~e^-1000


def interval_probabilities(temperature, *, max_step: int) -> jax.Array:
    """float32 `[2*max_step+1]`: p(k) for steps k = -max_step..max_step (scale steps)."""
    steps = jnp.arange(-max_step, max_step + 1, dtype=jnp.float32)
    t = jnp.maximum(jnp.asarray(temperature, jnp.float32), _MIN_TEMPERATURE)
    return jax.nn.softmax(-jnp.abs(steps) / t)


def interval_entropy_bits(temperature, *, max_step: int) -> jax.Array:
    """Shannon entropy in bits of the step distribution at `temperature` (ignores range masking)."""
    p = interval_probabilities(temperature, max_step=max_step)
    return -jnp.sum(jnp.where(p > 0, p * jnp.log2(jnp.maximum(p, 1e-30)), 0.0))


def temperature_for_entropy(bits: float, *, max_step: int) -> float:
    """The temperature whose step distribution has `bits` of entropy (bisection on log T)."""
    h_max = float(np.log2(2 * max_step + 1))
    if not 0.0 <= bits < h_max:
        raise TuningError(f"melody entropy must lie in [0, {h_max:.3f}) bits for max_step={max_step}, "
                          f"got {bits}")
    lo, hi = np.log(_MIN_TEMPERATURE), np.log(1e4)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if float(interval_entropy_bits(np.exp(mid), max_step=max_step)) < bits:
            lo = mid
        else:
            hi = mid
    return float(np.exp(0.5 * (lo + hi)))


def random_walk(key: jax.Array, *, n_notes: int, n_degrees: int, temperature, max_step: int,
                start=None) -> jax.Array:
    """int32 `[n_notes]`: scale-degree indices in `[0, n_degrees)` of a walk with steps ~ p(k).

    `start` (int, may be traced) is the first degree; None draws it uniformly.
    jit/vmap safe; `temperature` may be traced.
    """
    k_start, k_steps = jax.random.split(key)
    if start is None:
        start = jax.random.randint(k_start, (), 0, n_degrees)
    steps = jnp.arange(-max_step, max_step + 1, dtype=jnp.int32)
    logits = jnp.log(interval_probabilities(temperature, max_step=max_step))

    def step(degree, k):
        target = degree + steps
        inside = (target >= 0) & (target < n_degrees)
        choice = jax.random.categorical(k, jnp.where(inside, logits, -1e9))
        nxt = degree + steps[choice]
        return nxt, nxt

    first = jnp.asarray(start, jnp.int32)
    _, rest = jax.lax.scan(step, first, jax.random.split(k_steps, n_notes - 1))
    return jnp.concatenate([first[None], rest])


def rhythm(key: jax.Array, *, n_notes: int, seconds: float) -> jax.Array:
    """float32 `[n_notes]` durations in seconds summing to `seconds`.

    Each note is short or long (weights 1 or 2, equally likely), then all are
    scaled to fill the melody: a two-value rhythm whose tempo adapts to the clip.
    """
    weights = jax.random.randint(key, (n_notes,), 1, 3).astype(jnp.float32)
    return weights * (seconds / jnp.sum(weights))


class Melody(NamedTuple):
    """A monophonic line. `degrees` int32 `[n_notes]` index `lattice_hz`;
    `note_hz` float32 `[n_notes]` (NaN for rests); `durations_s` float32 `[n_notes]`;
    `rests` bool `[n_notes]`."""
    degrees: jax.Array
    note_hz: jax.Array
    durations_s: jax.Array
    rests: jax.Array


def walk_to_melody(key: jax.Array, lattice_hz: jax.Array, *, n_notes: int, temperature, max_step: int,
                   seconds: float, rest_probability) -> Melody:
    """`melody` on a given float32 lattice `[n_degrees]` of scale pitches (Hz): jit/vmap safe."""
    k_walk, k_rhythm, k_rest = jax.random.split(key, 3)
    degrees = random_walk(k_walk, n_notes=n_notes, n_degrees=lattice_hz.shape[0],
                          temperature=temperature, max_step=max_step)
    # The first note always sounds, so every melody has a defined start.
    rests = jax.random.bernoulli(k_rest, rest_probability, (n_notes,)) & (jnp.arange(n_notes) > 0)
    note_hz = jnp.where(rests, jnp.nan, lattice_hz[degrees])
    return Melody(degrees, note_hz, rhythm(k_rhythm, n_notes=n_notes, seconds=seconds), rests)


def melody(key: jax.Array, *, tuning: Tuning, n_notes: int, temperature: float = 1.0, f_ref_hz: float = 261.6256,
           f_min_hz: float = 130.0, f_max_hz: float = 1050.0, max_step: int = 4, seconds: float = 4.0,
           rest_probability: float = 0.0) -> Melody:
    """A random-walk melody of `n_notes` on the pitches of `tuning` within `[f_min_hz, f_max_hz]`.

    Steps are in scale steps, drawn from `interval_probabilities(temperature,
    max_step=max_step)`; durations from `rhythm`; each note after the first is a
    rest with probability `rest_probability`. Deterministic for a key.
    """
    lattice = scale_frequencies(tuning, f_ref_hz=f_ref_hz, f_min_hz=f_min_hz, f_max_hz=f_max_hz)
    if lattice.size < 2:
        raise TuningError(f"tuning {tuning.name!r} has {lattice.size} pitch(es) in [{f_min_hz}, {f_max_hz}] Hz; "
                          "widen the range so a melody can move")
    return walk_to_melody(key, jnp.asarray(lattice, jnp.float32), n_notes=n_notes, temperature=temperature,
                          max_step=max_step, seconds=seconds, rest_probability=rest_probability)
