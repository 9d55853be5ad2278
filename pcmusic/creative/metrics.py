"""Offline metrics for generated music that need no pretrained network.

- `spectral_flatness`: Wiener entropy exp(mean ln P) / mean P of a power spectrum
  (1 for a flat spectrum; about exp(-0.5772) = 0.56 for a periodogram frame of white
  noise, whose bin powers are exponentially distributed; near 0 for a sine).
- `pitch_class_entropy`: entropy of a histogram of pitch classes in cents above a
  reference, 1200 log2(f / f_ref) mod 1200: no note names, any tuning.
- `corpus_novelty`: distance from each generated item's features to its k nearest
  neighbours in the training set (k = 1: the closest training item).
- `copy_rate`: the fraction of the generated melodies' interval n-grams that occur
  verbatim in the corpus; intervals in cents, so transpositions count as copies.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.creative.modes import knn_novelty
from pcmusic.errors import PcmusicError


def spectral_flatness(power, *, floor=1e-12) -> jax.Array:
    """Spectral flatness of power spectra: float32 `[..., n_bins]` (>= 0, e.g. |STFT|^2
    of one frame) -> float32 `[...]` in [0, 1]. `floor` is added to every bin before
    the log so that silent bins give a finite value (and gradient), not -inf.
    Average per-frame values for a clip: flatness of an averaged spectrum is higher."""
    power = jnp.asarray(power, jnp.float32) + floor
    return jnp.exp(jnp.mean(jnp.log(power), axis=-1)) / jnp.mean(power, axis=-1)


def pitch_class_entropy(freqs_hz, *, weights=None, f_ref_hz=440.0, bin_cents=10.0) -> jax.Array:
    """Shannon entropy (bits) of the pitch-class histogram of `freqs_hz`.

    freqs_hz: float32 `[..., n]` in Hz; NaN or non-positive entries (unvoiced frames,
    rests) are left out. weights: optional `[..., n]` (durations, loudness); default 1.
    Pitch class = 1200 log2(f / f_ref_hz) mod 1200 cents, in bins of `bin_cents`
    centred on the reference and its multiples (a 12-TET note lands mid-bin, so
    detuning up to bin_cents/2 keeps it in its class); 1200 / bin_cents must be a
    whole number. Returns float32 `[...]`: 0 for one class, log2(k) for k classes
    used equally, at most log2(1200 / bin_cents).
    """
    n_bins = 1200.0 / bin_cents
    if not (bin_cents > 0 and float(n_bins).is_integer()):
        raise PcmusicError(f"pitch_class_entropy: bin_cents={bin_cents} must divide 1200 "
                           "(e.g. 10, 25, 50, 100)")
    n_bins = int(n_bins)
    freqs_hz = jnp.asarray(freqs_hz, jnp.float32)
    weights = jnp.ones_like(freqs_hz) if weights is None else jnp.asarray(weights, jnp.float32)
    voiced = jnp.isfinite(freqs_hz) & (freqs_hz > 0)
    cents = 1200.0 * jnp.log2(jnp.where(voiced, freqs_hz, f_ref_hz) / f_ref_hz)
    index = jnp.mod(jnp.round(cents / bin_cents).astype(jnp.int32), n_bins)
    onehot = jax.nn.one_hot(index, n_bins, dtype=jnp.float32)
    hist = jnp.sum(onehot * jnp.where(voiced, weights, 0.0)[..., None], axis=-2)
    p = hist / jnp.maximum(jnp.sum(hist, axis=-1, keepdims=True), 1e-30)
    return -jnp.sum(jnp.where(p > 0, p * jnp.log2(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)


def corpus_novelty(features, corpus_features, *, k: int = 1) -> jax.Array:
    """Mean distance from each generated feature vector float32 `[n, d]` to its k
    nearest training items `[m, d]` (Euclidean). 0 means an exact training item.
    Returns float32 `[n]`. See `modes.knn_novelty` for masks and self-exclusion."""
    return knn_novelty(features, corpus_features, k=k)


def _interval_ngrams(melody, n: int, quantum_cents: float) -> list[tuple[int, ...]]:
    f = np.asarray(melody, np.float64)
    if f.ndim != 1 or not np.all(np.isfinite(f) & (f > 0)):
        raise PcmusicError("copy_rate: each melody must be a 1-D sequence of positive, finite "
                           "frequencies in Hz; split melodies at rests instead of writing NaN/0")
    steps = np.round(1200.0 * np.diff(np.log2(f)) / quantum_cents).astype(np.int64)
    return [tuple(steps[i:i + n]) for i in range(len(steps) - n + 1)]


def copy_rate(generated: Iterable[Sequence[float]], corpus: Iterable[Sequence[float]], *,
              n: int = 4, quantum_cents: float = 10.0) -> float:
    """Fraction of the generated interval n-grams found verbatim in the corpus.

    generated, corpus: melodies, each a 1-D sequence of note frequencies in Hz (lengths
    may differ). Consecutive notes give intervals 1200 log2(f[i+1] / f[i]) cents, each
    rounded to the nearest multiple of `quantum_cents` (10 cents by default: intervals
    within +-5 cents of the same multiple match; near a rounding edge two intervals
    closer than that can still differ). An n-gram is n consecutive intervals; the rate
    counts generated n-grams with multiplicity. 1.0: every passage is a (possibly
    transposed) quotation; 0.0: none is.
    """
    if n < 1 or quantum_cents <= 0:
        raise PcmusicError(f"copy_rate: need n >= 1 and quantum_cents > 0, got n={n}, "
                           f"quantum_cents={quantum_cents}")
    known = {g for melody in corpus for g in _interval_ngrams(melody, n, quantum_cents)}
    grams = [g for melody in generated for g in _interval_ngrams(melody, n, quantum_cents)]
    if not grams:
        raise PcmusicError(f"copy_rate: no generated melody has the {n + 1} notes an interval "
                           f"{n}-gram needs; pass a smaller n")
    return sum(g in known for g in grams) / len(grams)
