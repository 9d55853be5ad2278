"""Per-sample kernels behind `pcmusic.dsp.synth`, each with an exact hand-written VJP.

Both kernels render frame intervals: an array `[..., n_frames, hop]` whose row n
holds the samples n*hop .. n*hop + hop - 1, where every control moves linearly
from its value at frame point n to that at frame point n+1 (`alpha = j / hop`).

`harmonic_sum` evaluates sum_k a_k(alpha) sin(2 pi k theta) for k = 1..H with one
sin/cos per sample and the complex-rotation recurrence z_k = z_{k-1} z_1 for the
rest (unrolled over the static H, so XLA fuses it into one elementwise loop). The
rotation's float32 error grows only linearly in k (a Chebyshev/Clenshaw recurrence's
grows quadratically near theta = 0); most of it is the float32 rounding of theta
itself, which any method has.
Autodiff through the unrolled loop would store H audio-length arrays; the VJP
below recomputes the rotation instead and is exact.

`sinusoid_sum` is the per-partial version (one sin per partial and sample). Its
VJP works on frame-level inputs, so the backward pass reduces per-partial terms
over each frame inside fused loops instead of storing [..., n_frames, hop,
n_partials] arrays.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

TWO_PI = np.float32(2.0 * np.pi)
# Samples per chunk in the amplitude backward pass. On a CPU ~32k keeps the
# recurrence's working set in cache. On an accelerator the chunks run one after the
# other and each scan step is a kernel launch, so small chunks starve it; 16M samples
# (64 MB per working array) fill it and bound its memory.
_CHUNK_SAMPLES = {"cpu": 1 << 15}
_CHUNK_SAMPLES_ACCELERATOR = 1 << 24


def _chunk_samples() -> int:
    """Backward-pass chunk length for the default backend (read at trace time)."""
    return _CHUNK_SAMPLES.get(jax.default_backend(), _CHUNK_SAMPLES_ACCELERATOR)


def _ramp(hop: int, ndim: int) -> jax.Array:
    """alpha_j = j / hop shaped [1, ..., 1, hop] to broadcast against rank `ndim`."""
    alpha = jnp.arange(hop, dtype=jnp.float32) / jnp.float32(hop)
    return alpha.reshape((1,) * (ndim - 1) + (hop,))


def _rotation_terms(theta, coefs, cosine_weights):
    """The per-sample recurrence; theta [..., m, hop], coefs [..., m+1, H] -> [..., m, hop]."""
    alpha = _ramp(theta.shape[-1], theta.ndim)
    c0 = coefs[..., :-1, :]
    dc = coefs[..., 1:, :] - c0
    x = TWO_PI * theta
    cos1, sin1 = jnp.cos(x), jnp.sin(x)
    zr, zi = cos1, sin1
    acc = jnp.zeros_like(theta)
    n_harmonics = coefs.shape[-1]
    for k in range(n_harmonics):
        a_k = c0[..., k, None] + alpha * dc[..., k, None]
        acc = acc + (a_k * jnp.float32(k + 1)) * zr if cosine_weights else acc + a_k * zi
        if k + 1 < n_harmonics:
            zr, zi = zr * cos1 - zi * sin1, zr * sin1 + zi * cos1
    return acc


def _rotation_sum(theta: jax.Array, coefs: jax.Array, *, cosine_weights: bool) -> jax.Array:
    """sum_k (c0_k + alpha dc_k) sin(2 pi k theta), or with `cosine_weights`
    sum_k k (c0_k + alpha dc_k) cos(2 pi k theta); theta [..., n, hop], coefs
    [..., n+1, H] -> flat [..., n * hop].

    The frames are rendered in two halves joined along the sample axis. XLA:CPU
    never fuses a long minor-axis concatenate into its consumers, so the result is
    materialised once; otherwise the whole recurrence would be fused into, and
    recomputed by, every consumer that reads a sample more than once (the STFT's
    overlapping frames: 24x the work for six resolutions at 75% overlap).
    """
    n_frames = theta.shape[-2]
    half = n_frames // 2
    parts = [(0, half), (half, n_frames)] if half else [(0, n_frames)]
    flat = [_rotation_terms(theta[..., a:b, :], coefs[..., a:b + 1, :], cosine_weights)
            for a, b in parts]
    flat = [p.reshape(p.shape[:-2] + (p.shape[-2] * p.shape[-1],)) for p in flat]
    return jnp.concatenate(flat, axis=-1) if len(flat) > 1 else flat[0]


def _sine_projections(theta: jax.Array, g: jax.Array, n_harmonics: int):
    """Per interval and harmonic: sum_j g (1 - alpha) sin(2 pi k theta) and
    sum_j g alpha sin(2 pi k theta); theta, g [..., n, hop] -> two [..., n, H]."""
    lead, hop = theta.shape[:-1], theta.shape[-1]
    n_rows = int(np.prod(lead))
    rows = max(1, min(n_rows, _chunk_samples() // hop))
    n_chunks = -(-n_rows // rows)
    pad = n_chunks * rows - n_rows

    def chunks(a):  # [..., hop] -> [n_chunks, hop, rows]: reduce over the major axis
        a = jnp.pad(a.reshape(n_rows, hop), ((0, pad), (0, 0)))
        return a.reshape(n_chunks, rows, hop).transpose(0, 2, 1)

    alpha = (jnp.arange(hop, dtype=jnp.float32) / jnp.float32(hop))[:, None]

    def one_chunk(args):
        th, gg = args
        x = TWO_PI * th
        cos1, sin1 = jnp.cos(x), jnp.sin(x)
        w1 = gg * alpha
        w0 = gg - w1

        def step(z, _):
            zr, zi = z
            out = (jnp.sum(w0 * zi, axis=0), jnp.sum(w1 * zi, axis=0))
            return (zr * cos1 - zi * sin1, zr * sin1 + zi * cos1), out

        _, (p0, p1) = lax.scan(step, (cos1, sin1), None, length=n_harmonics, unroll=4)
        return p0, p1  # [H, rows] each

    p0, p1 = lax.map(one_chunk, (chunks(theta), chunks(g)))

    def unchunk(p):  # [n_chunks, H, rows] -> [..., H]
        p = p.transpose(0, 2, 1).reshape(n_chunks * rows, n_harmonics)[:n_rows]
        return p.reshape(lead + (n_harmonics,))

    return unchunk(p0), unchunk(p1)


@jax.custom_vjp
def harmonic_sum(theta_turns: jax.Array, coefs: jax.Array) -> jax.Array:
    """Sum of H harmonics of one phase, amplitudes linear within each frame.

    Args:
      theta_turns: float32 [..., n_frames, hop], fundamental phase in turns (any
        real value; in [0, 1) for best accuracy).
      coefs: float32 [..., n_frames + 1, H], amplitude of harmonic k = 1..H at each
        frame point (the last point closes the last interval).
    Returns:
      float32 [..., n_frames * hop]: sum_k a_k(t) sin(2 pi k theta(t)).
    """
    return _rotation_sum(theta_turns, coefs, cosine_weights=False)


def _harmonic_fwd(theta_turns, coefs):
    return harmonic_sum(theta_turns, coefs), (theta_turns, coefs)


def _harmonic_bwd(residuals, g):
    theta, coefs = residuals
    # d/dtheta sum_k a_k sin(2 pi k theta) = 2 pi sum_k k a_k cos(2 pi k theta)
    d_theta = (g * TWO_PI * _rotation_sum(theta, coefs, cosine_weights=True)).reshape(theta.shape)
    g = g.reshape(theta.shape)
    # Point n feeds interval n with weight (1 - alpha) and interval n-1 with alpha.
    p0, p1 = _sine_projections(theta, g, coefs.shape[-1])
    zeros = jnp.zeros_like(p0[..., :1, :])
    d_coefs = (jnp.concatenate([p0, zeros], axis=-2)
               + jnp.concatenate([zeros, p1], axis=-2))
    return d_theta, d_coefs


harmonic_sum.defvjp(_harmonic_fwd, _harmonic_bwd)


def _partial_phase(phase, freq_start, freq_end, hop):
    """theta [..., n, hop, P] in turns, wrapped; inputs [..., n, P], freqs in turns/sample."""
    j = jnp.arange(hop, dtype=jnp.float32)
    u = j.reshape((1,) * (phase.ndim - 1) + (hop, 1))
    v = (j * j / jnp.float32(2 * hop)).reshape(u.shape)
    # Trapezoidal integral of the linear frequency ramp: sum_{i<j} is exact here.
    theta = (phase[..., None, :] + freq_start[..., None, :] * (u - v)
             + freq_end[..., None, :] * v)
    return theta - jnp.floor(theta), u, v


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def sinusoid_sum(hop, phase_turns, freq_start, freq_end, amp_start, amp_end):
    """Sum of free partials over frame intervals.

    Args:
      hop: samples per frame interval (static int).
      phase_turns: float32 [..., n_frames, P], phase of each partial at the
        interval's first sample, in turns.
      freq_start, freq_end: float32 [..., n_frames, P], frequency in turns per
        sample at the interval's two frame points (linear in between).
      amp_start, amp_end: float32 [..., n_frames, P], amplitudes likewise.
    Returns:
      float32 [..., n_frames, hop].
    """
    theta, _, _ = _partial_phase(phase_turns, freq_start, freq_end, hop)
    alpha = _ramp(hop, phase_turns.ndim)[..., None]
    amp = amp_start[..., None, :] + alpha * (amp_end - amp_start)[..., None, :]
    return jnp.sum(amp * jnp.sin(TWO_PI * theta), axis=-1)


def _sinusoid_fwd(hop, phase_turns, freq_start, freq_end, amp_start, amp_end):
    out = sinusoid_sum(hop, phase_turns, freq_start, freq_end, amp_start, amp_end)
    return out, (phase_turns, freq_start, freq_end, amp_start, amp_end)


def _sinusoid_bwd(hop, residuals, g):
    phase_turns, freq_start, freq_end, amp_start, amp_end = residuals
    theta, u, v = _partial_phase(phase_turns, freq_start, freq_end, hop)
    alpha = _ramp(hop, phase_turns.ndim)[..., None]
    amp = amp_start[..., None, :] + alpha * (amp_end - amp_start)[..., None, :]
    g = g[..., None]
    d_theta = g * amp * TWO_PI * jnp.cos(TWO_PI * theta)  # fused into the sums below
    g_sin = g * jnp.sin(TWO_PI * theta)
    d_phase = jnp.sum(d_theta, axis=-2)
    d_freq_end = jnp.sum(d_theta * v, axis=-2)
    d_freq_start = jnp.sum(d_theta * u, axis=-2) - d_freq_end
    d_amp_end = jnp.sum(g_sin * alpha, axis=-2)
    d_amp_start = jnp.sum(g_sin, axis=-2) - d_amp_end
    return d_phase, d_freq_start, d_freq_end, d_amp_start, d_amp_end


sinusoid_sum.defvjp(_sinusoid_fwd, _sinusoid_bwd)
