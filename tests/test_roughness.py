"""Sethares roughness: the pair formula, the all-pairs sum, gradients, and dyad minima."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from pcmusic.creative.roughness import (dyad_roughness, find_minima, harmonic_partials,
                                        pair_dissonance, roughness, scan_minima)
from pcmusic.errors import PcmusicError

F0_HZ = 500.0  # Sethares' worked example: 500 Hz harmonics, amplitudes 0.88^(n-1)
JUST = np.array([6 / 5, 5 / 4, 4 / 3, 3 / 2, 5 / 3, 2.0])


def numpy_roughness(freqs, amps):
    """Reference: the formula written out pair by pair in float64."""
    total = 0.0
    for i, j in itertools.combinations(range(len(freqs)), 2):
        s = 0.24 / (0.0207 * min(freqs[i], freqs[j]) + 18.96)
        x = s * abs(freqs[j] - freqs[i])
        total += min(amps[i], amps[j]) * (5 * np.exp(-3.51 * x) - 5 * np.exp(-5.75 * x))
    return total


def test_pair_curve_peaks_where_the_formula_says():
    # d/dx (e^{-3.51x} - e^{-5.75x}) = 0 at x* = ln(5.75/3.51) / (5.75 - 3.51)
    x_star = np.log(5.75 / 3.51) / (5.75 - 3.51)
    f_low = 300.0
    df = np.linspace(0.0, 200.0, 20001, dtype=np.float32)
    d = np.asarray(pair_dissonance(f_low, 1.0, f_low + df, 0.5))
    s = 0.24 / (0.0207 * f_low + 18.96)
    assert abs(s * df[np.argmax(d)] - x_star) < 2e-3
    assert d[0] == 0.0 and np.all(d >= 0.0)
    # the softer partial sets the loudness of the beating, and the pair is symmetric
    assert np.allclose(d, np.asarray(pair_dissonance(f_low + df, 0.5, f_low, 3.0)), atol=1e-6)


def test_roughness_matches_pairwise_reference_batched():
    rng = np.random.default_rng(0)
    freqs = rng.uniform(100.0, 2000.0, (3, 2, 7)).astype(np.float32)
    amps = rng.uniform(0.0, 1.0, (3, 2, 7)).astype(np.float32)
    got = np.asarray(jax.jit(roughness)(freqs, amps))
    want = np.array([[numpy_roughness(f, a) for f, a in zip(fb, ab)] for fb, ab in zip(freqs, amps)])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # order of partials is irrelevant; a silent extra partial adds nothing
    perm = rng.permutation(7)
    np.testing.assert_allclose(np.asarray(roughness(freqs[..., perm], amps[..., perm])), got, rtol=1e-5)
    padded = roughness(np.concatenate([freqs, np.full((3, 2, 1), 510.0, np.float32)], -1),
                       np.concatenate([amps, np.zeros((3, 2, 1), np.float32)], -1))
    np.testing.assert_allclose(np.asarray(padded), got, rtol=1e-6)


def test_roughness_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    freqs = jnp.asarray(rng.uniform(200.0, 600.0, 5), jnp.float32)
    amps = jnp.asarray(rng.uniform(0.2, 1.0, 5), jnp.float32)
    check_grads(lambda f: roughness(f, amps), (freqs,), order=1, modes=("rev",), eps=0.05,
                atol=2e-2, rtol=2e-2)
    check_grads(lambda a: roughness(freqs, a), (amps,), order=1, modes=("rev",), eps=1e-3,
                atol=2e-2, rtol=2e-2)


def test_harmonic_and_stretched_partials():
    f, a = harmonic_partials(jnp.array([100.0, 220.0]), 6)
    np.testing.assert_allclose(np.asarray(f), np.outer([100.0, 220.0], np.arange(1, 7)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(a[1]), 0.88 ** np.arange(6), rtol=1e-6)
    f, _ = harmonic_partials(100.0, 8, pseudo_octave=2.1)
    f = np.asarray(f)
    # every doubling of the partial number multiplies the frequency by the pseudo-octave
    np.testing.assert_allclose([f[1] / f[0], f[3] / f[1], f[7] / f[3]], 2.1, rtol=1e-5)


def test_grid_minima_of_harmonic_dyad_are_the_just_ratios():
    curve = scan_minima(f0_hz=F0_HZ, n_partials=6)
    step = curve.ratios[1] - curve.ratios[0]
    for r in JUST:
        assert np.min(np.abs(curve.minima - r)) <= step
    # deepest of these: the octave, then the fifth (Sethares 1993)
    depth = np.asarray(dyad_roughness(JUST, f0_hz=F0_HZ, n_partials=6))
    assert list(np.argsort(depth)[:2]) == [5, 3]


def test_stretched_timbre_moves_the_minima():
    curve = scan_minima(f0_hz=F0_HZ, n_partials=6, pseudo_octave=2.1)
    stretch = np.log2(2.1)
    for p, q in [(2, 1), (3, 2), (4, 3)]:
        assert np.min(np.abs(curve.minima - (p / q) ** stretch)) < 2e-4
    assert np.min(np.abs(curve.minima - 1.5)) > 0.03


def test_adam_on_log_ratio_lands_on_the_cusps():
    rng = np.random.default_rng(2)
    starts = (JUST[:, None] * (1 + rng.uniform(-0.015, 0.015, (6, 3)))).astype(np.float32)
    final = np.asarray(find_minima(starts.ravel(), f0_hz=F0_HZ, n_partials=6)).reshape(6, 3)
    assert np.max(np.abs(final - JUST[:, None])) < 1e-4
    # the reason for Adam: a fixed step of the same size is thrown off the cusps
    fixed = np.asarray(find_minima(starts.ravel(), f0_hz=F0_HZ, n_partials=6,
                                   optimizer=optax.sgd(3e-3))).reshape(6, 3)
    assert np.max(np.abs(fixed - JUST[:, None])) > 1e-2
    # stretched: near 2.1 and 1.543 it converges there; from near 3/2 it leaves 3/2
    targets = np.array([2.1, 1.5 ** np.log2(2.1), 1.5])
    starts = (targets[:, None] * (1 + rng.uniform(-0.015, 0.015, (3, 3)))).astype(np.float32)
    final = np.asarray(find_minima(starts.ravel(), f0_hz=F0_HZ, n_partials=6,
                                   pseudo_octave=2.1)).reshape(3, 3)
    assert np.max(np.abs(final[:2] - targets[:2, None])) < 1e-4
    assert np.min(np.abs(final[2] - 1.5)) > 0.03


def test_bad_input_explains_itself():
    with pytest.raises(PcmusicError, match="one amplitude per partial"):
        roughness(jnp.ones(4), jnp.ones(3))
    with pytest.raises(PcmusicError, match="ratio_min"):
        scan_minima(f0_hz=F0_HZ, n_partials=6, ratio_min=2.0, ratio_max=1.0)
