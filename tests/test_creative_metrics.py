"""Offline metrics: flatness, pitch-class entropy, corpus novelty and copy rate by hand."""
import math

import jax
import numpy as np
import pytest

from pcmusic.creative.metrics import (copy_rate, corpus_novelty, pitch_class_entropy,
                                      spectral_flatness)
from pcmusic.errors import PcmusicError


def frames_power(audio, n_fft=1024):
    frames = audio[: len(audio) // n_fft * n_fft].reshape(-1, n_fft) * np.hanning(n_fft)
    return (np.abs(np.fft.rfft(frames, axis=-1)) ** 2).astype(np.float32)


def test_flatness_by_hand_white_noise_and_sine():
    assert float(spectral_flatness(np.full(8, 3.0, np.float32))) == pytest.approx(1.0, rel=1e-6)
    assert float(spectral_flatness(np.array([1.0, 4.0], np.float32))) == pytest.approx(2 / 2.5)
    rng = np.random.default_rng(0)
    noise = np.mean(np.asarray(jax.jit(spectral_flatness)(frames_power(rng.standard_normal(64 * 1024)))))
    assert noise == pytest.approx(math.exp(-np.euler_gamma), abs=0.02)   # 0.5615
    t = np.arange(16 * 1024) / 16000.0
    sine = np.mean(np.asarray(spectral_flatness(frames_power(np.sin(2 * np.pi * 440.0 * t)))))
    assert sine < 0.01
    assert np.isfinite(float(spectral_flatness(np.zeros(4, np.float32))))


def test_pitch_class_entropy_is_octave_invariant_and_frequency_native():
    a = 440.0
    assert float(pitch_class_entropy(np.array([a / 2, a, 2 * a, 4 * a]))) == pytest.approx(0.0, abs=1e-6)
    # A, A, C#, E: classes 0, 0, 400, 700 cents -> counts 2, 1, 1
    chord = a * 2 ** (np.array([0, 1200, 400, 700]) / 1200)
    assert float(pitch_class_entropy(chord)) == pytest.approx(1.5, abs=1e-5)
    # 4 cents sharp stays in its 10-cent class; 1196 cents wraps to class 0
    assert float(pitch_class_entropy(np.array([a, a * 2 ** (4 / 1200), a * 2 ** (1196 / 1200)]))) \
        == pytest.approx(0.0, abs=1e-6)
    # a quarter-tone scale: 24 equally used classes, with unvoiced frames left out
    quarter = a * 2 ** (np.arange(24) * 50 / 1200)
    got = pitch_class_entropy(np.concatenate([quarter, [np.nan, 0.0]]))
    assert float(got) == pytest.approx(math.log2(24), abs=1e-5)
    # weights: one class twice as heavy as another -> H(2/3, 1/3); batched rows
    batch = np.array([[a, 2 * a, a * 1.5], [a, a, a]], np.float32)
    want = -(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3)
    np.testing.assert_allclose(np.asarray(pitch_class_entropy(batch)), [want, 0.0], atol=1e-5)
    with pytest.raises(PcmusicError, match="divide 1200"):
        pitch_class_entropy(np.array([a]), bin_cents=7.0)


def test_corpus_novelty_is_distance_to_nearest_training_item():
    corpus = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
    got = corpus_novelty(np.array([[0.0, 0.0], [6.0, 8.0]], np.float32), corpus)
    np.testing.assert_allclose(np.asarray(got), [0.0, 5.0])
    np.testing.assert_allclose(np.asarray(corpus_novelty(np.zeros((1, 2), np.float32), corpus, k=2)),
                               [2.5])


def test_copy_rate_counts_transposed_quotations():
    corpus = [[100.0, 200.0, 300.0, 400.0]]           # intervals 1200, 702, 498 cents
    transposed = [[150.0, 300.0, 450.0, 600.0]]
    assert copy_rate(transposed, corpus, n=2) == 1.0
    assert copy_rate([[100.0, 200.0, 300.0, 350.0]], corpus, n=2) == 0.5   # 702,267 is new
    # a 3-cent slip stays within the 10-cent quantum; a 30-cent one does not
    slip = lambda c: [[100.0, 200.0, 300.0 * 2 ** (c / 1200)]]   # noqa: E731
    assert copy_rate(slip(3.0), corpus, n=2) == 1.0
    assert copy_rate(slip(30.0), corpus, n=2) == 0.0
    # counted with multiplicity: intervals 1200, 702 | 1200, 84 -> 3 of 4 occur in the corpus
    assert copy_rate([[100.0, 200.0, 300.0], [10.0, 20.0, 21.0]], corpus, n=1) == pytest.approx(3 / 4)
    with pytest.raises(PcmusicError, match="smaller n"):
        copy_rate([[100.0, 200.0]], corpus, n=2)
    with pytest.raises(PcmusicError, match="rests"):
        copy_rate([[100.0, np.nan, 200.0]], corpus, n=1)
