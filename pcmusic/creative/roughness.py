"""Sensory roughness of sets of partials (Sethares 1993) and the minima of dyad curves.

The roughness of a set of partials (`pair_dissonance`, `roughness`) is Sethares'
parametrisation of the Plomp-Levelt curve, defined in `pcmusic.dsp.roughness` (the
structural prior uses it too) and re-exported here; this module adds tones, dyad curves
and their minima.

Amplitude convention of `harmonic_partials`: a_n = amplitude_decay ** (n - 1), with
amplitude_decay = 0.88 by default, i.e. a fundamental of amplitude 1 and a constant
ratio between neighbouring partials. This is the spectrum of Sethares' own worked
examples (amp = 0.88 .^ [0:5] with 500 Hz harmonics), so our curves can be compared
with his figures; a 1/n law falls faster in the low partials and gives the same
cusp minima for the dyads studied here.

Minima of the dyad curve are cusps (the |f_j - f_i| of two coinciding partials), so
a fixed-step gradient descent jumps back and forth across them. `find_minima` runs
Adam on log(ratio) with a cosine-decayed step, whose update size does not depend on
the (large, sign-flipping) slope at the cusp and shrinks to zero; a fixed step is
either too small to reach the cusp or large enough to be thrown out of its basin.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pcmusic.dsp.roughness import pair_dissonance, roughness  # noqa: F401 -- re-exported
from pcmusic.errors import PcmusicError


def harmonic_partials(f0_hz, n_partials: int, *, pseudo_octave=2.0,
                      amplitude_decay=0.88) -> tuple[jax.Array, jax.Array]:
    """Partials of a (possibly stretched) harmonic tone.

    f_n = f0 * n ** log2(pseudo_octave), n = 1..n_partials (pseudo_octave = 2: the
    harmonic series; 2.1: Sethares' stretched timbre whose "octave" is 2.1);
    a_n = amplitude_decay ** (n - 1) (see the module docstring for why).
    f0_hz: float32 `[...]` in Hz. Returns (freqs_hz, amplitudes), float32 `[..., n_partials]`.
    """
    f0_hz = jnp.asarray(f0_hz, jnp.float32)
    n = jnp.arange(1, n_partials + 1, dtype=jnp.float32)
    stretch = jnp.log2(jnp.asarray(pseudo_octave, jnp.float32))
    multipliers = jnp.reshape(n ** stretch, (1,) * f0_hz.ndim + (n_partials,))
    freqs_hz = f0_hz[..., None] * multipliers
    amplitudes = jnp.asarray(amplitude_decay, jnp.float32) ** (n - 1.0)
    return freqs_hz, jnp.broadcast_to(amplitudes, freqs_hz.shape)


def dyad_roughness(ratio, *, f0_hz, n_partials: int, pseudo_octave=2.0,
                   amplitude_decay=0.88) -> jax.Array:
    """Roughness of two tones of the same timbre, the upper at `ratio` times the lower.

    ratio: float32 `[...]` (> 0, dimensionless); f0_hz: the lower fundamental in Hz,
    broadcast against ratio. Returns float32 `[...]`; differentiable in ratio.
    """
    ratio = jnp.asarray(ratio, jnp.float32)
    f0_hz = jnp.asarray(f0_hz, jnp.float32)
    shape = jnp.broadcast_shapes(ratio.shape, f0_hz.shape)
    f_low, amps = harmonic_partials(jnp.broadcast_to(f0_hz, shape), n_partials,
                                    pseudo_octave=pseudo_octave, amplitude_decay=amplitude_decay)
    f_high = f_low * jnp.broadcast_to(ratio, shape)[..., None]
    return roughness(jnp.concatenate([f_low, f_high], axis=-1),
                     jnp.concatenate([amps, amps], axis=-1))


@functools.partial(jax.jit, static_argnames=("n_partials", "n_steps", "optimizer"))
def find_minima(start_ratios, *, f0_hz, n_partials: int, pseudo_octave=2.0,
                amplitude_decay=0.88, n_steps: int = 3000,
                optimizer: optax.GradientTransformation | None = None) -> jax.Array:
    """Local minima of the dyad roughness curve by descent on log(ratio), one run per start.

    start_ratios: float32 `[n_starts]`; each start descends independently (vmapped) for
    `n_steps` steps of `optimizer`, by default Adam with its learning rate cosine-decayed
    from 3e-3 to 0 over the run (the module docstring says why not a fixed-step
    `optax.sgd`).
    Returns the final ratios, float32 `[n_starts]`. The timbre keywords are those of
    `dyad_roughness`. A new optimizer object means a new compilation.
    """
    def energy(log_ratio):
        return dyad_roughness(jnp.exp(log_ratio), f0_hz=f0_hz, n_partials=n_partials,
                              pseudo_octave=pseudo_octave, amplitude_decay=amplitude_decay)

    if optimizer is None:
        optimizer = optax.adam(optax.cosine_decay_schedule(3e-3, n_steps))

    def descend(start):
        log_ratio = jnp.log(start)

        def step(carry, _):
            params, opt_state = carry
            # optax's bias correction raises a Python float to an int32 step count,
            # which the strict promotion mode of the tests rejects; the math is float32.
            with jax.numpy_dtype_promotion("standard"):
                updates, opt_state = optimizer.update(jax.grad(energy)(params), opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (log_ratio, _), _ = jax.lax.scan(step, (log_ratio, optimizer.init(log_ratio)), None,
                                         length=n_steps)
        return jnp.exp(log_ratio)

    return jax.vmap(descend)(jnp.asarray(start_ratios, jnp.float32))


class RoughnessCurve(NamedTuple):
    """A dyad roughness curve sampled on a grid, with its interior local minima."""
    ratios: np.ndarray        # float32 [n_points], ascending
    roughness: np.ndarray     # float32 [n_points]
    minima: np.ndarray        # float32 [n_minima], ascending ratios of local minima


def scan_minima(*, f0_hz, n_partials: int, pseudo_octave=2.0, amplitude_decay=0.88,
                ratio_min=1.0, ratio_max=2.3, n_points: int = 13001,
                min_separation=1e-3) -> RoughnessCurve:
    """Local minima of the dyad curve from a dense grid: an independent cross-check
    of `find_minima` that uses no gradients.

    A grid point is a minimum when it is lower than its left and not higher than its
    right neighbour (endpoints excluded). Near a smooth (non-cusp) minimum float32
    rounding can split one dip into several grid minima; minima closer than
    `min_separation` (in ratio) are merged, keeping the lowest. Runs on the host.
    """
    if not (0 < ratio_min < ratio_max) or n_points < 3:
        raise PcmusicError(f"scan_minima: need 0 < ratio_min < ratio_max and n_points >= 3, "
                           f"got ratio_min={ratio_min}, ratio_max={ratio_max}, n_points={n_points}")
    ratios = np.linspace(ratio_min, ratio_max, n_points, dtype=np.float32)
    values = np.asarray(dyad_roughness(ratios, f0_hz=f0_hz, n_partials=n_partials,
                                       pseudo_octave=pseudo_octave,
                                       amplitude_decay=amplitude_decay))
    inner = np.flatnonzero((values[1:-1] < values[:-2]) & (values[1:-1] <= values[2:])) + 1
    kept: list[int] = []
    for i in inner:
        if kept and ratios[i] - ratios[kept[-1]] < min_separation:
            if values[i] < values[kept[-1]]:
                kept[-1] = i
        else:
            kept.append(int(i))
    return RoughnessCurve(ratios, values, ratios[np.asarray(kept, dtype=np.int64)])
