"""Spectral front end: STFT against scipy, filterbanks against their formulas,
multi-resolution distance properties, traced blur."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from pcmusic.dsp import spectral
from pcmusic.errors import PcmusicError


@pytest.mark.parametrize("n_fft,hop,center", [(512, 128, True), (400, 160, True),
                                              (256, 256, True), (256, 64, False)])
def test_stft_matches_scipy(n_fft, hop, center):
    x = np.random.default_rng(0).standard_normal((2, 3000)).astype(np.float32)
    ours = np.asarray(spectral.stft(x, n_fft=n_fft, hop=hop, center=center))
    _, _, ref = scipy.signal.stft(x, nperseg=n_fft, noverlap=n_fft - hop, window="hann",
                                  boundary="zeros" if center else None, padded=center)
    ref = np.swapaxes(ref, -1, -2)
    assert ours.shape[-2] == (1 + 3000 // hop if center else 1 + (3000 - n_fft) // hop)
    np.testing.assert_allclose(ours, ref[:, :ours.shape[-2]], atol=1e-4 * np.abs(ref).max())


def test_sinusoid_magnitude_is_half_its_amplitude_at_every_resolution():
    sr = 16000
    t = np.arange(sr) / sr
    for n_fft in spectral.default_resolutions(sr):
        freq = 10 * sr / n_fft  # bin 10
        x = (0.8 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        mag = np.asarray(jax.jit(lambda a: spectral.magnitude(  # noqa: B023
            spectral.stft(a, n_fft=n_fft, hop=n_fft // 4)))(x))
        np.testing.assert_allclose(mag[5:-5, 10], 0.4, rtol=1e-3)


def test_default_resolutions_follow_the_sample_rate():
    assert spectral.default_resolutions(16000) == (2048, 1024, 512, 256, 128, 64)
    for sr in (8000, 22050, 44100, 48000, 96000):
        sizes = np.array(spectral.default_resolutions(sr))
        durations = sizes / sr
        assert 0.09 < durations.max() < 0.19 and 0.0028 < durations.min() < 0.0057
        assert np.all(sizes[:-1] == 2 * sizes[1:])


def test_log_magnitude_floor_and_safe_gradients():
    zero = jnp.zeros((3,), jnp.complex64)
    np.testing.assert_allclose(spectral.log_magnitude(zero, eps=1e-4), np.log(1e-4), rtol=1e-6)
    big = jnp.array([3.0 + 4.0j], jnp.complex64)
    np.testing.assert_allclose(spectral.log_magnitude(big, eps=1e-4), np.log(5.0), rtol=1e-6)
    grad = jax.jit(jax.grad(lambda a: jnp.sum(spectral.magnitude(
        spectral.stft(a, n_fft=64, hop=16)))))(jnp.zeros(256))
    assert np.all(np.isfinite(grad))


def test_mel_filterbank_matches_htk_formula():
    sr, n_fft, n_mels = 16000, 1024, 40
    fb = spectral.mel_filterbank(sample_rate=sr, n_fft=n_fft, n_mels=n_mels, f_min_hz=50.0,
                                 f_max_hz=7000.0)
    assert fb.shape == (n_fft // 2 + 1, n_mels)
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    points = 700 * (10 ** (np.linspace(mel(50.0), mel(7000.0), n_mels + 2) / 2595) - 1)
    bins = np.arange(n_fft // 2 + 1) * sr / n_fft
    for i in (0, 17, 39):
        lo, mid, hi = points[i:i + 3]
        expected = np.clip(np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), 0, None)
        np.testing.assert_allclose(fb[:, i], expected, atol=1e-6)
    # Between the first and last peak the overlapping triangles sum to one.
    inside = (bins >= points[1]) & (bins <= points[-2])
    np.testing.assert_allclose(fb[inside].sum(1), 1.0, atol=1e-5)


def test_triangular_filterbank_peaks_at_log_spaced_centres():
    sr, n_fft = 16000, 2048
    centres = 125.0 * 2.0 ** np.arange(6)  # on bins: 125 Hz = bin 16
    fb = spectral.triangular_filterbank(centres, sample_rate=sr, n_fft=n_fft)
    peak_bins = np.argmax(fb, axis=0)
    np.testing.assert_array_equal(peak_bins, centres * n_fft / sr)
    np.testing.assert_allclose(fb.max(0), 1.0)
    with pytest.raises(PcmusicError):
        spectral.triangular_filterbank([200.0, 100.0], sample_rate=sr, n_fft=n_fft)


@pytest.mark.parametrize("kind", ["l1", "squared_log"])
def test_spectral_distance_zero_monotone_and_safe_at_silence(kind):
    rng = np.random.default_rng(1)
    sr = 16000
    t = np.arange(sr // 2) / sr
    x = (0.3 * np.sin(2 * np.pi * 330 * t) + 0.1 * np.sin(2 * np.pi * 990 * t)).astype(np.float32)
    noise = rng.standard_normal(x.size).astype(np.float32)
    levels = [0.0, 1e-3, 1e-2, 3e-2, 0.1]
    noisy = np.stack([x + s * noise for s in levels])
    dist = np.asarray(jax.jit(lambda a, b: spectral.spectral_distance(
        a, b, sample_rate=sr, kind=kind))(np.broadcast_to(x, noisy.shape), noisy))
    assert dist[0] == 0.0
    assert np.all(np.diff(dist) > 0)
    silence = jnp.zeros((1, 4000))
    grad = jax.jit(jax.grad(lambda a: jnp.sum(spectral.spectral_distance(
        a, silence, sample_rate=sr, kind=kind))))(silence)
    assert np.all(np.isfinite(grad))


def test_blur_is_a_gaussian_of_the_given_width_and_traceable():
    sr, n_fft = 16000, 1024
    n_bins = n_fft // 2 + 1
    spike = np.zeros((1, n_bins), np.float32)
    spike[0, 200] = 1.0
    np.testing.assert_allclose(spectral.blur_log_spectrum(spike, 0.0, sample_rate=sr), spike,
                               atol=1e-6)
    blurred = np.asarray(spectral.blur_log_spectrum(spike, 50.0, sample_rate=sr))[0]
    bins = np.arange(n_bins)
    np.testing.assert_allclose(blurred.sum(), 1.0, rtol=1e-4)
    sigma_bins = np.sqrt(np.sum(blurred * (bins - 200.0) ** 2) / blurred.sum())
    np.testing.assert_allclose(sigma_bins, 50.0 * n_fft / sr, rtol=1e-3)

    # The width is traced: anneal it inside a scan, one compiled program.
    x = jnp.asarray(np.random.default_rng(2).standard_normal(8000).astype(np.float32))

    @jax.jit
    def anneal(widths):
        def step(_, width):
            feats = spectral.features(x, sample_rate=sr, resolutions=(1024, 256), blur_hz=width)
            return None, jnp.stack([jnp.std(f) for f in feats])
        return jax.lax.scan(step, None, widths)[1]

    spread = np.asarray(anneal(jnp.array([400.0, 100.0, 0.0])))
    assert np.all(np.diff(spread[:, 0]) > 0)  # less blur, more detail
    plain = spectral.features(x, sample_rate=sr, resolutions=(1024, 256))
    np.testing.assert_allclose(spread[-1], [np.std(f) for f in plain], rtol=1e-5)


def test_bad_input_raises_pcmusic_error():
    with pytest.raises(PcmusicError, match="shorter"):
        spectral.stft(np.zeros(100, np.float32), n_fft=256, hop=64, center=False)
    with pytest.raises(PcmusicError, match="window"):
        spectral.stft(np.zeros(1000, np.float32), n_fft=256, hop=64, window="kaiser")
    with pytest.raises(PcmusicError, match="kind"):
        spectral.feature_distance((jnp.zeros((2, 3)),), (jnp.zeros((2, 3)),), kind="l3")
