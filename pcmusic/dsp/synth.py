"""The differentiable oscillator bank: harmonic tones, free partials, filtered noise.

Control convention (all renderers): controls arrive at the frame rate,
`sample_rate / hop`. Frame n's value holds at sample n*hop; within the frame,
frequency and amplitude move linearly to frame n+1's value (the last frame is
held), so `n_frames` frames render `n_frames * hop` samples.

Phase is kept in turns (cycles). Inside a frame the linear frequency ramp is
integrated exactly (trapezoidal sum, i.e. quadratic phase), and the phase at
each frame start is carried wrapped mod 1, summed exactly in 32-bit fixed point,
so float32 never holds a large phase and long renders do not drift: a 10-minute
440 Hz tone is off by ~1e-5 cent and ~1e-3 turn at its end (DDSP's float32
cumsum drifts audibly after minutes: ddsp issue 160).

Alias-free: a partial is faded out conservatively per frame. Its amplitude at
frame point n is multiplied by `nyquist_gain` of its largest frequency over the
two intervals touching that point, a smoothstep falling from 1 at
(1 - NYQUIST_TAPER) * Nyquist to 0 at Nyquist. Since the faded amplitude is then
interpolated like any other, a partial whose instantaneous frequency reaches
Nyquist anywhere in an interval is silent over that whole interval, also while
gliding, and a partial leaving the band fades over a frame instead of clicking.

Everything is float32, batched over arbitrary leading dims, and jit/vmap/grad
safe. The harmonic bank costs one sin/cos per sample plus a few multiply-adds
per harmonic (see `pcmusic.dsp.oscillators`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from pcmusic.dsp.oscillators import harmonic_sum, sinusoid_sum
from pcmusic.errors import PcmusicError

NYQUIST_TAPER = 0.03  # fraction of Nyquist over which partials fade out below it


def _f32(x) -> jax.Array:
    return jnp.asarray(x, dtype=jnp.float32)


def _harmonic_numbers(n_harmonics: int, ndim: int) -> jax.Array:
    """k = 1..n_harmonics as float32 shaped [1, ..., 1, n_harmonics] (rank `ndim`)."""
    k = jnp.arange(1, n_harmonics + 1, dtype=jnp.float32)
    return k.reshape((1,) * (ndim - 1) + (n_harmonics,))


def _check_rate(sample_rate, hop) -> None:
    if not isinstance(hop, (int, np.integer)) or hop < 1:
        raise PcmusicError(f"hop must be a positive int (samples per frame), got {hop!r}")
    if not float(sample_rate) > 0:
        raise PcmusicError(f"sample_rate must be positive (Hz), got {sample_rate!r}")


def _next_frame(x: jax.Array, axis: int = -1) -> jax.Array:
    """x shifted one frame earlier along `axis`, the last frame held."""
    n = x.shape[axis]
    return jnp.concatenate([lax.slice_in_dim(x, 1, n, axis=axis),
                            lax.slice_in_dim(x, n - 1, n, axis=axis)], axis=axis)


def upsample_frames(x, *, hop: int, axis: int = -1) -> jax.Array:
    """Linear interpolation of frame-rate controls to the audio rate.

    Args:
      x: float32 `[..., n_frames, ...]`, frames along `axis`.
      hop: samples per frame.
    Returns:
      float32 with `axis` of length `n_frames * hop`: frame n's value at sample
      n*hop, linear to frame n+1, the last frame held (the module's convention).
    """
    _check_rate(1.0, hop)
    x = jnp.moveaxis(_f32(x), axis, -1)
    alpha = jnp.arange(hop, dtype=jnp.float32) / jnp.float32(hop)
    alpha = alpha.reshape((1,) * x.ndim + (hop,))
    up = x[..., None] + alpha * (_next_frame(x) - x)[..., None]
    return jnp.moveaxis(up.reshape(x.shape[:-1] + (x.shape[-1] * hop,)), -1, axis)


def nyquist_gain(freqs_hz, *, sample_rate) -> jax.Array:
    """Smoothstep fade, 1 below (1 - NYQUIST_TAPER) * Nyquist and 0 at and above it.

    Args:
      freqs_hz: float32 array of any shape (absolute value is used).
    Returns:
      float32, same shape, in [0, 1].
    """
    nyquist = jnp.float32(sample_rate / 2)
    s = jnp.clip((nyquist - jnp.abs(_f32(freqs_hz))) / (jnp.float32(NYQUIST_TAPER) * nyquist),
                 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _fade_gain(freqs_hz: jax.Array, *, sample_rate, axis: int) -> jax.Array:
    """Per frame point: nyquist_gain of the largest |frequency| over the two
    intervals touching it, i.e. over frames n-1, n, n+1 along `axis` (edges held)."""
    f = jnp.abs(freqs_hz)
    n = f.shape[axis]
    previous = jnp.concatenate([lax.slice_in_dim(f, 0, 1, axis=axis),
                                lax.slice_in_dim(f, 0, n - 1, axis=axis)], axis=axis)
    peak = jnp.maximum(jnp.maximum(previous, f), _next_frame(f, axis))
    return nyquist_gain(peak, sample_rate=sample_rate)


@jax.custom_jvp
def _exclusive_cumsum_mod1(turns: jax.Array) -> jax.Array:
    """sum_{m < n} turns_m mod 1 along the last axis, exactly.

    Turns in [0, 1) are summed as uint32 fixed point (2^-32 turn steps), whose
    wrap-around is exactly mod 1: no rounding accumulates, however long the
    render. (An associative scan of float adds mod 1 would also do, but its
    interleaving pads fuse into the oscillator loop and stop XLA:CPU vectorising
    it.) The tangent is the plain exclusive cumsum.
    """
    fixed = (turns * jnp.float32(2.0**32)).astype(jnp.uint32)
    total = jnp.cumsum(fixed, axis=-1, dtype=jnp.uint32) - fixed
    return total.astype(jnp.float32) * jnp.float32(2.0**-32)


@_exclusive_cumsum_mod1.defjvp
def _exclusive_cumsum_mod1_jvp(primals, tangents):
    (turns,), (d_turns,) = primals, tangents
    return _exclusive_cumsum_mod1(turns), jnp.cumsum(d_turns, axis=-1) - d_turns


def _frame_phases(freqs_hz: jax.Array, *, sample_rate, hop: int, initial_turns,
                  axis: int) -> jax.Array:
    """Phase in turns, wrapped to [0, 1), at the first sample of every frame.

    The increment over frame n is the exact integral (f_n + f_{n+1}) / q turns with
    q = 2 sr / hop. The sum is kept exactly as a rounded sum plus its error (Knuth's
    TwoSum) and whole turns are dropped by an exact fmod before the division (which
    XLA turns into a multiply by 1/q), so each increment errs by <= 6e-8 turns
    however many turns a frame holds: ~1e-5 cent, 1.4e-4 turns after a minute at
    100 frames/s. The increments are then summed exactly mod 1.
    """
    q = jnp.float32(2 * sample_rate / hop)
    a, b = freqs_hz, _next_frame(freqs_hz, axis)
    total = a + b
    b_virtual = total - a
    rounding = (a - (total - b_virtual)) + (b - b_virtual)
    increment = (jnp.fmod(total, q) + rounding) / q
    increment = increment - jnp.floor(increment)
    start = jnp.moveaxis(_exclusive_cumsum_mod1(jnp.moveaxis(increment, axis, -1)), -1, axis)
    if initial_turns is not None:
        start = start + jnp.expand_dims(_f32(initial_turns), axis)
        start = start - jnp.floor(start)
    return start


def harmonic(f0_hz, amplitudes, *, sample_rate, hop: int,
             initial_phase_turns=None) -> jax.Array:
    """Harmonic tone: partials at k * f0 for k = 1..n_harmonics.

    Args:
      f0_hz: float32 `[..., n_frames]`, fundamental frequency in Hz.
      amplitudes: float32 `[..., n_frames, n_harmonics]`, linear amplitude of
        harmonic k (a unit amplitude gives a sinusoid of peak 1, RMS 1/sqrt 2).
      sample_rate: Hz. hop: samples per frame.
      initial_phase_turns: optional float32 `[...]`, the fundamental's phase at
        sample 0 in turns (harmonic k starts at k times it); default 0.
    Returns:
      float32 `[..., n_frames * hop]`: sum_k a_k(t) sin(2 pi k phase(t)), with the
      conventions in the module docstring (Nyquist fade per frame).
    """
    _check_rate(sample_rate, hop)
    f0_hz, amplitudes = _f32(f0_hz), _f32(amplitudes)
    if amplitudes.ndim < 2 or amplitudes.shape[:-1] != f0_hz.shape:
        raise PcmusicError(
            f"amplitudes must be [..., n_frames, n_harmonics] with [..., n_frames] equal to "
            f"f0_hz's shape {f0_hz.shape}; got {amplitudes.shape}")
    n_frames, n_harmonics = amplitudes.shape[-2:]
    start = _frame_phases(f0_hz, sample_rate=sample_rate, hop=hop,
                          initial_turns=initial_phase_turns, axis=-1)
    f_next = _next_frame(f0_hz)
    j = jnp.arange(hop, dtype=jnp.float32).reshape((1,) * f0_hz.ndim + (hop,))
    # Integral of the frequency ramp over the first j samples: j times its mean.
    mean_hz = f0_hz[..., None] + (f_next - f0_hz)[..., None] * (j / jnp.float32(2 * hop))
    theta = start[..., None] + mean_hz * j / jnp.float32(sample_rate)
    theta = theta - jnp.floor(theta)
    k = _harmonic_numbers(n_harmonics, f0_hz.ndim + 1)
    gain = _fade_gain(f0_hz[..., None] * k, sample_rate=sample_rate, axis=-2)
    coefs = amplitudes * gain
    coefs = jnp.concatenate([coefs, coefs[..., -1:, :]], axis=-2)
    return harmonic_sum(theta, coefs)


def sinusoids(freqs_hz, amplitudes, *, sample_rate, hop: int,
              initial_phase_turns=None) -> jax.Array:
    """Free (e.g. inharmonic) partials.

    Args:
      freqs_hz: float32 `[..., n_frames, n_partials]`, frequency of each partial, Hz.
      amplitudes: float32 `[..., n_frames, n_partials]`, linear amplitude.
      sample_rate: Hz. hop: samples per frame.
      initial_phase_turns: optional float32 `[..., n_partials]`, phase at sample 0.
    Returns:
      float32 `[..., n_frames * hop]`: sum_p a_p(t) sin(2 pi phase_p(t)), with the
      conventions in the module docstring.
    """
    _check_rate(sample_rate, hop)
    freqs_hz, amplitudes = _f32(freqs_hz), _f32(amplitudes)
    if freqs_hz.ndim < 2 or amplitudes.shape != freqs_hz.shape:
        raise PcmusicError(
            f"freqs_hz and amplitudes must both be [..., n_frames, n_partials]; got "
            f"{freqs_hz.shape} and {amplitudes.shape}")
    start = _frame_phases(freqs_hz, sample_rate=sample_rate, hop=hop,
                          initial_turns=initial_phase_turns, axis=-2)
    coefs = amplitudes * _fade_gain(freqs_hz, sample_rate=sample_rate, axis=-2)
    per_sample = freqs_hz / jnp.float32(sample_rate)
    out = sinusoid_sum(hop, start, per_sample, _next_frame(per_sample, -2),
                       coefs, _next_frame(coefs, -2))
    return out.reshape(freqs_hz.shape[:-2] + (freqs_hz.shape[-2] * hop,))


def harmonic_frequencies(f0_hz, n_harmonics: int, *, inharmonicity=None) -> jax.Array:
    """Partial frequencies of a (stiff-string) harmonic tone, for `sinusoids`.

    f_k = k f0 sqrt(1 + B k^2) (Fletcher 1964, stiff strings; B = 0 is harmonic).

    Args:
      f0_hz: float32 `[..., n_frames]`.
      n_harmonics: number of partials H.
      inharmonicity: optional B, a scalar or float32 `[..., n_frames]` (>= 0).
    Returns:
      float32 `[..., n_frames, H]`, Hz.
    """
    f0_hz = _f32(f0_hz)
    k = _harmonic_numbers(n_harmonics, f0_hz.ndim + 1)
    freqs = f0_hz[..., None] * k
    if inharmonicity is None:
        return freqs
    b = _f32(inharmonicity)
    b = b[..., None] if b.ndim else b
    return freqs * jnp.sqrt(1.0 + b * (k * k))


def band_to_bin_matrix(n_bands: int, n_bins: int) -> np.ndarray:
    """[n_bands, n_bins] linear interpolation from bands evenly spaced over
    0..Nyquist (band i at i / (n_bands - 1)) to rfft bins (bin b at b / (n_bins - 1))."""
    if n_bands == 1:
        return np.ones((1, n_bins), np.float32)
    position = np.linspace(0.0, n_bands - 1.0, n_bins)
    lower = np.minimum(np.floor(position).astype(int), n_bands - 2)
    frac = position - lower
    matrix = np.zeros((n_bands, n_bins), np.float32)
    matrix[lower, np.arange(n_bins)] = 1.0 - frac
    matrix[lower + 1, np.arange(n_bins)] += frac
    return matrix


def filtered_noise(magnitudes, *, hop: int, key: jax.Array) -> jax.Array:
    """Gaussian noise shaped by per-frame band magnitudes (a DDSP-style noise synth).

    Frame n (n = 0..n_frames, the last frame held once more) is fresh white noise
    of 2*hop samples, filtered in the frequency domain by the band magnitudes
    interpolated linearly to its bins, weighted by a sine window centred on sample
    n*hop and overlap-added at `hop`. The squared sine windows sum to one, so the
    output is stationary for constant magnitudes and crossfades smoothly between
    frames: its power spectral density follows magnitudes(f)^2, and a flat
    magnitude m gives white noise of RMS m.

    Args:
      magnitudes: float32 `[..., n_frames, n_bands]`, linear magnitude of bands
        evenly spaced from 0 Hz to Nyquist (band i at i/(n_bands-1) * Nyquist).
      hop: samples per frame. key: PRNG key (same key, same noise).
    Returns:
      float32 `[..., n_frames * hop]`.
    """
    _check_rate(1.0, hop)
    magnitudes = _f32(magnitudes)
    if magnitudes.ndim < 2:
        raise PcmusicError(f"magnitudes must be [..., n_frames, n_bands]; got {magnitudes.shape}")
    lead, (n_frames, n_bands) = magnitudes.shape[:-2], magnitudes.shape[-2:]
    magnitudes = jnp.concatenate([magnitudes, magnitudes[..., -1:, :]], axis=-2)
    bin_gain = magnitudes @ jnp.asarray(band_to_bin_matrix(n_bands, hop + 1))
    noise = jax.random.normal(key, lead + (n_frames + 1, 2 * hop), dtype=jnp.float32)
    spectrum = jnp.fft.rfft(noise, norm="ortho") * bin_gain.astype(jnp.complex64)
    shaped = jnp.fft.irfft(spectrum, n=2 * hop, norm="ortho")
    window = np.sin(np.pi * (np.arange(2 * hop) + 0.5) / (2 * hop)).astype(np.float32)
    frames = (shaped * jnp.asarray(window).reshape((1,) * (shaped.ndim - 1) + (2 * hop,))).reshape(lead + (n_frames + 1, 2, hop))
    # Output block m = second half of frame m + first half of frame m + 1.
    blocks = frames[..., :-1, 1, :] + frames[..., 1:, 0, :]
    return blocks.reshape(lead + (n_frames * hop,))
