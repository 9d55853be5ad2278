"""Sensory roughness of a set of partials (Sethares 1993): a fixed function of partials.

W. A. Sethares, "Local consonance and the relationship between timbre and scale",
JASA 94(3), 1993, and "Tuning, Timbre, Spectrum, Scale" (Springer), appendix E: a
parametrisation of the Plomp-Levelt curve. For two partials (f_i, a_i), (f_j, a_j):

    s = 0.24 / (0.0207 * min(f_i, f_j) + 18.96)
    x = s * |f_j - f_i|
    d = min(a_i, a_j) * (5 exp(-3.51 x) - 5 exp(-5.75 x))

and the roughness of a sound is the sum of d over all pairs of its partials, within
and across tones. `min(a_i, a_j)` (rather than the older product) is Sethares' later
choice: the beating is as loud as the softer partial.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from pcmusic.errors import PcmusicError

# Sethares' constants (TTSS appendix E): curve peak position, critical-band fit, decay rates.
_D_STAR = 0.24
_S1 = 0.0207
_S2 = 18.96
_B1 = 3.51
_B2 = 5.75
_C = 5.0


def pair_dissonance(f1_hz, a1, f2_hz, a2) -> jax.Array:
    """Roughness of one pair of sinusoids (Sethares 1993), broadcast elementwise.

    f1_hz, f2_hz: float32 frequencies in Hz (>= 0); a1, a2: linear amplitudes (>= 0).
    All four broadcast against each other; returns float32 of the broadcast shape,
    >= 0, exactly 0 for equal frequencies or a zero amplitude, peaking near x = 0.24.
    Differentiable in all four arguments (except at f1 == f2, the cusp).
    """
    f1_hz, f2_hz = jnp.asarray(f1_hz, jnp.float32), jnp.asarray(f2_hz, jnp.float32)
    a1, a2 = jnp.asarray(a1, jnp.float32), jnp.asarray(a2, jnp.float32)
    s = _D_STAR / (_S1 * jnp.minimum(f1_hz, f2_hz) + _S2)
    x = s * jnp.abs(f2_hz - f1_hz)
    return jnp.minimum(a1, a2) * _C * (jnp.exp(-_B1 * x) - jnp.exp(-_B2 * x))


def roughness(freqs_hz, amplitudes) -> jax.Array:
    """Total roughness of a set of partials: sum over all unordered pairs.

    freqs_hz: float32 `[..., n_partials]` in Hz; amplitudes: float32 `[..., n_partials]`,
    linear. Put the partials of all simultaneous tones on the last axis (e.g. the
    concatenation of two tones' partials for a dyad). Returns float32 `[...]`.
    Zero-amplitude partials add nothing, so silent or padded partials are harmless.
    Differentiable in both inputs: usable as an energy term (prior) on oscillator
    controls. Costs O(n_partials^2) per batch element.
    """
    freqs_hz = jnp.asarray(freqs_hz, jnp.float32)
    amplitudes = jnp.asarray(amplitudes, jnp.float32)
    if freqs_hz.shape != amplitudes.shape:
        raise PcmusicError(f"roughness: freqs_hz has shape {freqs_hz.shape} but amplitudes "
                           f"{amplitudes.shape}; give one amplitude per partial (same shape)")
    d = pair_dissonance(freqs_hz[..., :, None], amplitudes[..., :, None],
                        freqs_hz[..., None, :], amplitudes[..., None, :])
    # each unordered pair once; the diagonal (a partial with itself) is excluded
    return jnp.sum(jnp.triu(d, k=1), axis=(-2, -1))
