"""Spectral front end: STFT, log-magnitudes, filterbanks, multi-resolution distance.

Scaling: `stft` divides by the window's sum (scipy.signal.stft's default
`scaling="spectrum"`), so a sinusoid of amplitude A centred on a bin has magnitude
A/2 at every FFT size, and log-magnitudes at different resolutions are comparable.
`center=True` zero-pads n_fft // 2 samples on both sides (scipy's
`boundary="zeros"`), so frame m is centred on sample m * hop.

Log floor: `log_magnitude` is 0.5 * log(|X|^2 + eps^2): smooth, finite gradients
at silence, equal to log|X| well above eps and to log(eps) below it. The default
eps = 1e-4 puts the floor 74 dB below a full-scale sinusoid's peak (0.5), so the
distance attends to audible structure rather than to float32 noise.

Blur (coarse-to-fine): `blur_log_spectrum` smooths log-magnitudes along frequency
with a Gaussian of standard deviation `blur_hz` Hz, the same physical width at
every FFT size and sample rate. The width may be a traced scalar, so a schedule
can anneal it inside `lax.scan`; set it relative to the pitch in question (e.g. a
fraction of a candidate f0, as `pcmusic.dsp.freqfit` does) to get basins of the same
relative width at every pitch. Blurring the log-spectrum widens each partial's
peak, so a model partial "sees" a target partial from further away.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.errors import PcmusicError

DEFAULT_EPS = 1e-4


def default_resolutions(sample_rate) -> tuple[int, ...]:
    """FFT sizes for `features`: powers of two spanning ~128 ms down to ~4 ms.

    At 16 kHz this is DDSP's (2048, 1024, 512, 256, 128, 64); at 44.1 kHz
    (4096, ..., 128); at 48 kHz (8192, ..., 256). Hops are n_fft // 4 (75% overlap).
    """
    largest = int(round(math.log2(0.128 * sample_rate)))
    smallest = max(int(round(math.log2(0.004 * sample_rate))), 4)
    return tuple(2 ** e for e in range(largest, smallest - 1, -1))


def get_window(name: str, n_fft: int) -> np.ndarray:
    """Periodic (DFT-even) window of length n_fft; `name` is "hann" or "hamming"."""
    phase = 2 * np.pi * np.arange(n_fft) / n_fft
    if name == "hann":
        return (0.5 - 0.5 * np.cos(phase)).astype(np.float32)
    if name == "hamming":
        return (0.54 - 0.46 * np.cos(phase)).astype(np.float32)
    raise PcmusicError(f"unknown window {name!r}; use 'hann', 'hamming' or pass an array")


def _frame(x: jax.Array, n_fft: int, hop: int, n_frames: int) -> jax.Array:
    """[..., n] -> [..., n_frames, n_fft], frame m starting at sample m * hop."""
    if n_fft % hop == 0:  # slices of a [blocks, hop] view: cheap forward and backward
        ratio = n_fft // hop
        n_blocks = n_frames + ratio - 1
        need = n_blocks * hop
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, max(0, need - x.shape[-1]))])[..., :need]
        blocks = x.reshape(x.shape[:-1] + (n_blocks, hop))
        return jnp.concatenate([blocks[..., i:i + n_frames, :] for i in range(ratio)], axis=-1)
    index = np.arange(n_frames)[:, None] * hop + np.arange(n_fft)[None, :]
    return x[..., index]


def stft(audio, *, n_fft: int, hop: int, window="hann", center: bool = True) -> jax.Array:
    """Short-time Fourier transform.

    Args:
      audio: float32 `[..., n_samples]`.
      n_fft: frame (and window) length; hop: samples between frames.
      window: "hann" / "hamming" (periodic) or a float array of length n_fft.
      center: zero-pad n_fft // 2 on both sides so frame m is centred on m * hop.
    Returns:
      complex64 `[..., n_frames, n_fft // 2 + 1]`, scaled by 1 / sum(window);
      n_frames = 1 + n_samples // hop if center else 1 + (n_samples - n_fft) // hop.
    """
    audio = jnp.asarray(audio, jnp.float32)
    win = get_window(window, n_fft) if isinstance(window, str) else np.asarray(window, np.float32)
    if win.shape != (n_fft,) or hop < 1:
        raise PcmusicError(f"window must have length n_fft={n_fft} and hop >= 1; got "
                           f"{win.shape} and hop={hop}")
    if center:
        pad = [(0, 0)] * (audio.ndim - 1) + [(n_fft // 2, n_fft // 2)]
        audio = jnp.pad(audio, pad)
    n_frames = 1 + (audio.shape[-1] - n_fft) // hop
    if n_frames < 1:
        raise PcmusicError(f"audio of {audio.shape[-1]} samples is shorter than n_fft={n_fft}; "
                           "use center=True or a smaller n_fft")
    frames = _frame(audio, n_fft, hop, n_frames)
    scaled = jnp.asarray(win / win.sum(), jnp.float32).reshape((1,) * (frames.ndim - 1) + (n_fft,))
    return jnp.fft.rfft(frames * scaled, axis=-1)


def power(spectrum: jax.Array) -> jax.Array:
    """|X|^2 of a complex spectrum, float32."""
    return jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2


def magnitude(spectrum: jax.Array) -> jax.Array:
    """|X|, float32, with a zero (not NaN) gradient where X = 0."""
    p = power(spectrum)
    positive = p > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, p, 1.0)), 0.0)


def log_magnitude(spectrum: jax.Array, *, eps: float = DEFAULT_EPS) -> jax.Array:
    """0.5 * log(|X|^2 + eps^2): natural-log magnitude with a smooth floor at log(eps)."""
    return 0.5 * jnp.log(power(spectrum) + jnp.float32(eps) ** 2)


def _triangles(lower_hz, peak_hz, upper_hz, bin_hz) -> np.ndarray:
    """[n_bins, n_filters] triangles rising from lower to peak and falling to upper."""
    lower, peak, upper = (np.asarray(v, np.float64)[None, :] for v in (lower_hz, peak_hz, upper_hz))
    f = np.asarray(bin_hz, np.float64)[:, None]
    rising = (f - lower) / np.maximum(peak - lower, 1e-12)
    falling = (upper - f) / np.maximum(upper - peak, 1e-12)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def _bin_hz(sample_rate, n_fft) -> np.ndarray:
    return np.arange(n_fft // 2 + 1) * sample_rate / n_fft


def mel_filterbank(*, sample_rate, n_fft: int, n_mels: int, f_min_hz: float = 0.0,
                   f_max_hz: float | None = None) -> np.ndarray:
    """HTK mel filterbank, float32 `[n_fft // 2 + 1, n_mels]` (use `power @ fb`).

    mel(f) = 2595 log10(1 + f / 700) (HTK, not Slaney's linear-below-1-kHz scale);
    n_mels + 2 points evenly spaced in mel from f_min to f_max (default Nyquist);
    filter i is a triangle in Hz from point i through i+1 to i+2 with peak 1 (no
    area normalisation). Filters narrower than a bin may be all zero.
    """
    f_max_hz = sample_rate / 2 if f_max_hz is None else f_max_hz
    if not 0 <= f_min_hz < f_max_hz <= sample_rate / 2:
        raise PcmusicError(f"need 0 <= f_min_hz < f_max_hz <= Nyquist; got {f_min_hz}, {f_max_hz}")
    mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    points = 700.0 * (10 ** (np.linspace(mel(f_min_hz), mel(f_max_hz), n_mels + 2) / 2595.0) - 1)
    return _triangles(points[:-2], points[1:-1], points[2:], _bin_hz(sample_rate, n_fft))


def triangular_filterbank(center_freqs_hz, *, sample_rate, n_fft: int) -> np.ndarray:
    """Triangles peaking (at 1) at each centre, with feet at the neighbouring centres.

    The outermost feet mirror the first and last spacing. Log-spaced centres give a
    constant-Q (log-frequency) spectrum, e.g. for pitch.

    Args:
      center_freqs_hz: increasing, at least 2 values.
    Returns:
      float32 `[n_fft // 2 + 1, len(center_freqs_hz)]`.
    """
    c = np.asarray(center_freqs_hz, np.float64)
    if c.ndim != 1 or c.size < 2 or np.any(np.diff(c) <= 0):
        raise PcmusicError("center_freqs_hz must be an increasing 1-D list of >= 2 frequencies")
    lower = np.concatenate([[c[0] - (c[1] - c[0])], c[:-1]])
    upper = np.concatenate([c[1:], [c[-1] + (c[-1] - c[-2])]])
    return _triangles(lower, c, upper, _bin_hz(sample_rate, n_fft))


def blur_log_spectrum(log_mag: jax.Array, blur_hz, *, sample_rate) -> jax.Array:
    """Gaussian blur along the last (frequency bin) axis, standard deviation `blur_hz`.

    Computed exactly by liftering: the log-spectrum, extended evenly about 0 Hz and
    Nyquist as a real signal's spectrum is, is transformed, multiplied by the
    Gaussian's transform and transformed back, so the width is a plain (traceable)
    number and the support is the whole axis at two FFTs per frame.

    Args:
      log_mag: float32 `[..., n_bins]`, bins 0..Nyquist of an FFT of size
        2 * (n_bins - 1) at `sample_rate`.
      blur_hz: scalar (may be traced), the Gaussian's standard deviation in Hz.
    Returns:
      float32 `[..., n_bins]`; equal to `log_mag` (to float32 rounding) at 0.
    """
    n_bins = log_mag.shape[-1]
    n_fft = 2 * (n_bins - 1)
    sigma_bins = jnp.asarray(blur_hz, jnp.float32) * jnp.float32(n_fft / sample_rate)
    extended = jnp.concatenate([log_mag, log_mag[..., -2:0:-1]], axis=-1)
    quefrency = np.arange(n_bins, dtype=np.float32) / np.float32(n_fft)
    gain = jnp.exp(-2.0 * np.float32(np.pi ** 2) * (sigma_bins * quefrency) ** 2)
    gain = gain.reshape((1,) * (log_mag.ndim - 1) + (n_bins,)).astype(jnp.complex64)
    return jnp.fft.irfft(jnp.fft.rfft(extended, axis=-1) * gain, n=n_fft, axis=-1)[..., :n_bins]


def features(audio, *, sample_rate, resolutions=None, blur_hz=0.0,
             eps: float = DEFAULT_EPS) -> tuple[jax.Array, ...]:
    """Multi-resolution log-magnitude spectrograms (phi, the sensory level's features).

    Args:
      audio: float32 `[..., n_samples]`.
      sample_rate: Hz; picks `default_resolutions(sample_rate)` when `resolutions`
        is None. resolutions: FFT sizes; each uses hop n_fft // 4 and a Hann window.
      blur_hz: Gaussian blur along frequency, standard deviation in Hz (may be
        traced, e.g. annealed inside `lax.scan`); 0 = none.
    Returns:
      tuple, one float32 `[..., 1 + n_samples // (n_fft // 4), n_fft // 2 + 1]` per
      FFT size, natural-log magnitudes (see `log_magnitude`).
    """
    resolutions = default_resolutions(sample_rate) if resolutions is None else resolutions
    out = []
    for n_fft in resolutions:
        log_mag = log_magnitude(stft(audio, n_fft=n_fft, hop=n_fft // 4), eps=eps)
        if not (isinstance(blur_hz, (int, float)) and blur_hz == 0):
            log_mag = blur_log_spectrum(log_mag, blur_hz, sample_rate=sample_rate)
        out.append(log_mag)
    return tuple(out)


def feature_distance(features_a, features_b, *, kind: str = "l1") -> jax.Array:
    """Distance between two `features` tuples, reduced over all but leading dims.

    kind="l1" (default; DDSP's multi-scale spectral loss, Engel et al. 2020): per
    resolution mean |S_a - S_b| + mean |log S_a - log S_b|, summed over resolutions,
    with S = exp(log-magnitude). Robust to outliers and standard for training.
    kind="squared_log": per resolution 0.5 * mean (log S_a - log S_b)^2, summed:
    the Gaussian sensory prediction error of the free energy (unit precision).
    Returns float32 `[...]` (the leading dims of the spectrograms).
    """
    if kind not in ("l1", "squared_log"):
        raise PcmusicError(f"unknown distance kind {kind!r}; use 'l1' or 'squared_log'")
    total = 0.0
    for a, b in zip(features_a, features_b, strict=True):
        diff = a - b
        if kind == "l1":
            term = jnp.abs(jnp.exp(a) - jnp.exp(b)) + jnp.abs(diff)
        else:
            term = 0.5 * diff ** 2
        total = total + jnp.mean(term, axis=(-2, -1))
    return total


def spectral_distance(a, b, *, sample_rate, resolutions=None, blur_hz=0.0, kind: str = "l1",
                      eps: float = DEFAULT_EPS) -> jax.Array:
    """Multi-resolution spectral distance between audio `a` and `b` `[..., n_samples]`.

    0 for identical inputs, differentiable everywhere (finite at silence), and
    `kind`, `blur_hz`, `resolutions`, `eps` as in `features` / `feature_distance`.
    Returns float32 `[...]`.
    """
    kw = dict(sample_rate=sample_rate, resolutions=resolutions, blur_hz=blur_hz, eps=eps)
    return feature_distance(features(a, **kw), features(b, **kw), kind=kind)
