"""Oscillator bank: spectra, amplitude, aliasing, smoothness, phase accuracy, gradients."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from pcmusic.dsp import synth
from pcmusic.bench.synth import measure_tone, reference_harmonic, reference_sinusoids
from pcmusic.errors import PcmusicError


@functools.partial(jax.jit, static_argnames=("sample_rate", "hop"))
def render(f0_hz, amplitudes, *, sample_rate, hop):
    return synth.harmonic(f0_hz, amplitudes, sample_rate=sample_rate, hop=hop)


def steady(f0_hz, amplitudes, n_frames):
    """Constant controls: f0 [n_frames], amplitudes [n_frames, H]."""
    amplitudes = np.asarray(amplitudes, np.float32)
    return (np.full((n_frames,), f0_hz, np.float32),
            np.broadcast_to(amplitudes, (n_frames, amplitudes.size)).copy())


def gliding_controls(rng, n_voices, n_frames, n_harmonics, lo_hz, hi_hz):
    f0 = np.exp(np.linspace(np.log(lo_hz), np.log(hi_hz), n_frames))[None] * np.exp(
        rng.normal(0, 0.02, (n_voices, n_frames)))
    amps = rng.uniform(0.2, 1.0, (n_voices, n_frames, n_harmonics)) / np.arange(1, n_harmonics + 1)
    return f0.astype(np.float32), amps.astype(np.float32)


def test_fft_peak_of_440_hz_render_is_at_440_hz():
    sr, hop = 16000, 160
    y = np.asarray(render(*steady(440.0, [1.0], 100), sample_rate=sr, hop=hop))
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    peak_hz = np.argmax(spectrum) * sr / y.size
    assert abs(peak_hz - 440.0) <= sr / y.size


def test_harmonics_land_at_multiples_and_nothing_aliases():
    # f0 = 1100 Hz at 16 kHz: harmonics 1..7 are in band; 8..12 would alias to
    # 7200, 6100, 5000, 3900, 2800 Hz if they were not silenced.
    sr, hop, f0 = 16000, 160, 1100.0
    y = np.asarray(render(*steady(f0, np.ones(12), 100), sample_rate=sr, hop=hop))
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    freqs = np.fft.rfftfreq(y.size, 1 / sr)
    peaks = freqs[(spectrum > 1e-3 * spectrum.max())
                  & (spectrum >= np.roll(spectrum, 1)) & (spectrum >= np.roll(spectrum, -1))]
    np.testing.assert_allclose(peaks, f0 * np.arange(1, 8), atol=sr / y.size)
    for k in range(8, 13):
        alias_bin = int(round((sr - k * f0) * y.size / sr))
        # A unit partial would peak near spectrum.max(); float32 rounding sits ~1e-6 below.
        assert spectrum[alias_bin - 2:alias_bin + 3].max() < 1e-5 * spectrum.max()


def test_partials_are_silent_wherever_they_glide_past_nyquist():
    sr, hop, n_frames = 8000, 64, 60
    f0 = np.linspace(200.0, 1400.0, n_frames).astype(np.float32)
    f_sample = np.asarray(synth.upsample_frames(f0, hop=hop))
    for k in (3, 5, 8):  # each crosses 4 kHz during the glide
        amps = np.zeros((n_frames, 8), np.float32)
        amps[:, k - 1] = 1.0
        y = np.asarray(render(f0, amps, sample_rate=sr, hop=hop))
        above = k * f_sample >= sr / 2
        # Also within one sample of the crossing (the frequency grows within a sample).
        above |= np.roll(above, -1)
        assert above.any() and (~above).any()
        assert np.abs(y[above]).max() == 0.0
        well_below = k * f_sample < 0.9 * sr / 2
        assert np.abs(y[well_below]).max() > 0.9


def test_amplitude_and_parseval():
    sr, hop = 16000, 100  # 440 Hz: 11 periods per 400 samples
    y = np.asarray(render(*steady(440.0, [1.0], 400), sample_rate=sr, hop=hop))
    np.testing.assert_allclose(np.sqrt(np.mean(y ** 2)), 1 / np.sqrt(2), rtol=1e-4)
    amps = np.array([0.5, 0.3, 0.2, 0.1], np.float32)
    y = np.asarray(render(*steady(440.0, amps, 400), sample_rate=sr, hop=hop))
    # Parseval: the mean square is the sum of the partials' powers a_k^2 / 2.
    np.testing.assert_allclose(np.mean(y ** 2), np.sum(amps ** 2) / 2, rtol=1e-4)
    power = np.abs(np.fft.rfft(y)) ** 2
    np.testing.assert_allclose(2 * power.sum() / y.size ** 2, np.mean(y ** 2), rtol=1e-3)


def test_fast_harmonic_bank_matches_float64_reference():
    rng = np.random.default_rng(0)
    sr, hop = 16000, 128
    f0, amps = gliding_controls(rng, 3, 24, 48, 150.0, 600.0)  # crosses Nyquist too
    phase0 = rng.random(3).astype(np.float32)
    y = synth.harmonic(f0, amps, sample_rate=sr, hop=hop, initial_phase_turns=phase0)
    ref = reference_harmonic(f0.astype(np.float64), amps.astype(np.float64), sample_rate=sr,
                             hop=hop, initial_phase_turns=phase0.astype(np.float64))
    # float32 rounding of the fundamental's phase (~1e-6 turns) times k dominates.
    assert np.abs(np.asarray(y) - ref).max() < 1e-4 * np.abs(ref).max()


def test_sinusoids_match_reference_and_harmonic_route():
    rng = np.random.default_rng(1)
    sr, hop = 16000, 128
    f0, amps = gliding_controls(rng, 2, 24, 32, 200.0, 500.0)
    freqs = np.asarray(synth.harmonic_frequencies(f0, 32, inharmonicity=np.float32(1e-3)))
    np.testing.assert_allclose(freqs, f0[..., None] * np.arange(1, 33)
                               * np.sqrt(1 + 1e-3 * np.arange(1, 33) ** 2), rtol=1e-6)
    phases = rng.random((2, 32)).astype(np.float32)
    y = synth.sinusoids(freqs, amps, sample_rate=sr, hop=hop, initial_phase_turns=phases)
    ref = reference_sinusoids(freqs.astype(np.float64), amps.astype(np.float64), sample_rate=sr,
                              hop=hop, initial_phase_turns=phases.astype(np.float64))
    assert np.abs(np.asarray(y) - ref).max() < 1e-4 * np.abs(ref).max()
    harmonic_route = synth.harmonic(f0, amps, sample_rate=sr, hop=hop)
    free_route = synth.sinusoids(synth.harmonic_frequencies(f0, 32), amps, sample_rate=sr, hop=hop)
    np.testing.assert_allclose(harmonic_route, free_route, atol=1e-4)


def test_no_clicks_at_frame_boundaries():
    rng = np.random.default_rng(2)
    sr, hop = 16000, 160
    f0, amps = gliding_controls(rng, 1, 50, 10, 300.0, 450.0)
    y = np.asarray(render(f0, amps, sample_rate=sr, hop=hop))[0]
    # A sample step is bounded by the slopes: sum_k (2 pi k f a_k / sr + |da_k| / hop).
    bound = (np.sum(2 * np.pi * np.arange(1, 11) * f0[0].max() / sr * amps[0].max(0))
             + np.abs(np.diff(amps[0], axis=0)).max(0).sum() / hop)
    steps = np.abs(np.diff(y))
    assert steps.max() <= bound
    at_boundaries = steps[hop - 1::hop]
    assert at_boundaries.max() <= 1.05 * np.percentile(steps, 99.5)


@pytest.mark.parametrize("sample_rate", [16000, 48000])
def test_ten_minute_tone_keeps_its_pitch_and_phase(sample_rate):
    hop, minutes = sample_rate // 100, 10
    n_frames = minutes * 60 * 100
    y = render(*steady(440.0, [1.0], n_frames), sample_rate=sample_rate, hop=hop)
    # No discontinuity anywhere: each step within the sine's own slope.
    assert float(jnp.max(jnp.abs(jnp.diff(y)))) <= 2 * np.pi * 440 / sample_rate * 1.001
    tail = np.asarray(y[-sample_rate:])
    freq_hz, phases = measure_tone((n_frames * hop - sample_rate, tail), sample_rate, 440.0)
    assert abs(1200 * np.log2(freq_hz / 440.0)) < 0.01
    assert np.abs(phases).max() < 1e-2  # turns behind or ahead of the exact tone
    assert np.ptp(phases) < 1e-4  # steady within the last second


def test_amplitude_gradients_are_exact():
    rng = np.random.default_rng(3)
    f0, amps = gliding_controls(rng, 1, 6, 8, 300.0, 2600.0)  # top harmonics in the fade
    check_grads(jax.jit(lambda a: synth.harmonic(f0, a, sample_rate=16000, hop=32)), (amps,),
                order=1, modes=["rev"], eps=1e-2, atol=2e-3, rtol=2e-3)
    freqs = np.asarray(synth.harmonic_frequencies(f0, 8, inharmonicity=np.float32(1e-2)))
    check_grads(jax.jit(lambda a: synth.sinusoids(freqs, a, sample_rate=16000, hop=32)), (amps,),
                order=1, modes=["rev"], eps=1e-2, atol=2e-3, rtol=2e-3)


def test_amplitude_gradient_does_not_depend_on_chunk_length(monkeypatch):
    """The backward pass splits samples into chunks (small on a CPU, large on an
    accelerator): one chunk, several, and a ragged last one give the same gradient."""
    from pcmusic.dsp import oscillators as _oscillators

    rng = np.random.default_rng(5)
    f0, amps = gliding_controls(rng, 3, 20, 12, 150.0, 900.0)  # 3 x 20 rows of 64 samples

    def grads(chunk_samples):
        monkeypatch.setitem(_oscillators._CHUNK_SAMPLES, jax.default_backend(), chunk_samples)
        loss = lambda f, a: jnp.sum(synth.harmonic(f, a, sample_rate=16000, hop=64) ** 2)  # noqa: E731
        return jax.grad(loss, argnums=(0, 1))(f0, amps)  # not jitted: traced anew each time

    one, many, ragged = grads(1 << 20), grads(64 * 4), grads(64 * 7)
    assert np.abs(np.asarray(one[1])).max() > 0
    for other in (many, ragged):
        for a, b in zip(one, other):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-5, atol=1e-6)


def central_differences(loss, x, eps):
    flat = np.asarray(x, np.float32).ravel()
    out = []
    for i in range(flat.size):
        up, down = flat.copy(), flat.copy()
        up[i] += eps
        down[i] -= eps
        out.append((loss(up.reshape(x.shape)) - loss(down.reshape(x.shape))) / (2 * eps))
    return np.array(out).reshape(x.shape)


def test_frequency_gradients_match_central_differences():
    rng = np.random.default_rng(4)
    f0, amps = gliding_controls(rng, 1, 6, 8, 300.0, 2600.0)
    weights = jnp.asarray(rng.standard_normal(6 * 32).astype(np.float32))

    @jax.jit
    def loss_f0(f):
        return jnp.sum(weights * synth.harmonic(f, amps, sample_rate=16000, hop=32)[0])

    grad = np.asarray(jax.grad(loss_f0)(f0))
    fd = central_differences(lambda f: float(loss_f0(f)), f0, 0.05)
    np.testing.assert_allclose(grad, fd, rtol=2e-2, atol=2e-3 * np.abs(fd).max())

    freqs = np.asarray(synth.harmonic_frequencies(f0, 4, inharmonicity=np.float32(1e-2)))[0]

    @jax.jit
    def loss_freqs(f):
        return jnp.sum(weights * synth.sinusoids(f, amps[0, :, :4], sample_rate=16000, hop=32))

    grad = np.asarray(jax.grad(loss_freqs)(freqs))
    fd = central_differences(lambda f: float(loss_freqs(f)), freqs, 0.1)
    np.testing.assert_allclose(grad, fd, rtol=2e-2, atol=2e-3 * np.abs(fd).max())


def test_batching_vmap_and_jit_agree():
    rng = np.random.default_rng(5)
    f0, amps = gliding_controls(rng, 4, 10, 6, 200.0, 400.0)

    def one(f, a):
        return synth.harmonic(f, a, sample_rate=16000, hop=32)

    batched = jax.jit(one)(f0.reshape(2, 2, 10), amps.reshape(2, 2, 10, 6))
    mapped = jax.jit(jax.vmap(one))(f0, amps)
    eager = one(f0[:1], amps[:1])
    np.testing.assert_allclose(np.asarray(batched).reshape(4, -1), mapped, atol=1e-6)
    np.testing.assert_allclose(eager[0], mapped[0], atol=1e-5)  # eager rounds differently
    g_batched = jax.jit(jax.grad(lambda a: jnp.sum(one(f0, a) ** 2)))(amps)
    g_mapped = jax.jit(jax.vmap(jax.grad(lambda f, a: jnp.sum(one(f, a) ** 2), argnums=1)))(f0, amps)
    np.testing.assert_allclose(g_batched, g_mapped, rtol=1e-4, atol=1e-5)


def test_upsample_frames_convention():
    x = np.array([[0.0, 4.0, 2.0]], np.float32)
    up = np.asarray(synth.upsample_frames(x, hop=4))
    np.testing.assert_allclose(up, [[0, 1, 2, 3, 4, 3.5, 3, 2.5, 2, 2, 2, 2]])
    up_axis = np.asarray(synth.upsample_frames(x.T, hop=4, axis=0))
    np.testing.assert_allclose(up_axis[:, 0], up[0])


def test_filtered_noise_is_independent_per_key_shaped_and_smooth():
    hop, n_frames, key = 128, 200, jax.random.key(0)
    flat = np.full((n_frames, 9), 0.5, np.float32)
    a = np.asarray(synth.filtered_noise(flat, hop=hop, key=key))
    b = np.asarray(synth.filtered_noise(flat, hop=hop, key=jax.random.key(1)))
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.05
    np.testing.assert_allclose(np.sqrt(np.mean(a ** 2)), 0.5, rtol=0.05)
    # Low-pass bands: power above 3/4 Nyquist falls far below that under 1/4.
    lowpass = np.zeros((n_frames, 9), np.float32)
    lowpass[:, :3] = 1.0
    y = np.asarray(synth.filtered_noise(lowpass, hop=hop, key=key)).reshape(-1, 256)
    power = np.mean(np.abs(np.fft.rfft(y * np.hanning(256), axis=-1)) ** 2, axis=0)
    assert power[96:].mean() < 1e-3 * power[:32].mean()
    # Silent frames stay silent; the onset fades in over a frame, without a step.
    gate = np.ones((n_frames, 9), np.float32)
    gate[:50] = 0.0
    y = np.asarray(synth.filtered_noise(gate, hop=hop, key=key))
    assert np.all(y[:49 * hop] == 0.0)
    onset = np.abs(y[49 * hop:51 * hop])
    assert onset[:hop // 4].max() < onset[-hop // 2:].max()


def test_bad_input_raises_pcmusic_error():
    with pytest.raises(PcmusicError, match="amplitudes"):
        synth.harmonic(np.ones(5, np.float32), np.ones((4, 3), np.float32), sample_rate=16000, hop=8)
    with pytest.raises(PcmusicError, match="hop"):
        synth.harmonic(np.ones(5, np.float32), np.ones((5, 3), np.float32), sample_rate=16000, hop=0)
    with pytest.raises(PcmusicError, match="freqs_hz"):
        synth.sinusoids(np.ones((5, 2), np.float32), np.ones((5, 3), np.float32),
                        sample_rate=16000, hop=8)
