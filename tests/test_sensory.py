"""Control level, sensory prediction and structural priors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pcmusic.model import controls as C
from pcmusic.model import priors, sensory
from pcmusic.errors import PcmusicError

CS = C.ControlSpec(n_voices=2, n_harmonics=8, n_noise_bands=6, inharmonic=True)
SS = sensory.resolve(sensory.SensorySpec(), CS.sample_rate)


def _controls(n_frames=20, *, noise=-10.0):
    c = C.zeros(CS, 1, n_frames)
    c["log2_f0"] = jnp.log2(jnp.asarray([[[220.0] * n_frames, [330.0] * n_frames]], jnp.float32))
    c["log_amp"] = jnp.log(jnp.broadcast_to(0.2 / jnp.arange(1, 9, dtype=jnp.float32),
                                            (1, 2, n_frames, 8)))
    c["log_noise"] = jnp.full((1, n_frames, 6), noise, jnp.float32)
    return c


def test_render_puts_partials_at_stiff_string_frequencies():
    c = _controls(64)
    c["log_inharm"] = jnp.log(jnp.asarray([[1e-3, 1e-9]], jnp.float32))
    audio = np.asarray(C.render(c, CS, key=jax.random.key(0))[0])
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    freqs = np.fft.rfftfreq(audio.size, 1 / CS.sample_rate)
    k = 6
    stiff = k * 220.0 * np.sqrt(1 + 1e-3 * k * k)
    window = (freqs > stiff - 15) & (freqs < stiff + 15)
    assert freqs[window][np.argmax(spectrum[window])] == pytest.approx(stiff, abs=3.0)


def test_check_names_the_bad_leaf():
    c = _controls()
    c["log_amp"] = c["log_amp"][..., :5]
    with pytest.raises(PcmusicError, match="log_amp"):
        C.check(c, CS)


def test_prediction_equals_observation_of_the_noiseless_render():
    c = _controls()
    audio = C.render_partials(c, CS)
    observed = sensory.observe(audio, SS)
    predicted = sensory.predict(c, CS, SS)   # noise at -87 dB contributes nothing visible
    for o, p in zip(observed, predicted):
        assert o.shape == p.shape
        assert float(jnp.max(jnp.abs(o - p))) < 1e-2


def test_expected_noise_power_matches_the_average_of_noise_renders():
    n_frames, n_fft = 40, 512
    mags = jnp.broadcast_to(jnp.asarray([0.02, 0.01, 0.03, 0.005, 0.01, 0.002], jnp.float32),
                            (64, n_frames, 6))
    from pcmusic.dsp import spectral, synth
    noise = synth.filtered_noise(mags, hop=CS.hop, key=jax.random.key(3))
    empirical = jnp.mean(spectral.power(spectral.stft(noise, n_fft=n_fft, hop=n_fft // 4)), axis=0)
    expected = sensory.expected_noise_power(mags[:1], n_fft=n_fft, n_samples=n_frames * CS.hop,
                                            hop=CS.hop)[0]
    inner = slice(4, -4)  # frames away from the zero-padded edges
    ratio = np.asarray(jnp.mean(empirical[inner], 0) / jnp.mean(expected[inner], 0))
    np.testing.assert_allclose(ratio[5:-5], 1.0, atol=0.15)


def test_efference_copy_predicts_the_models_own_noisy_render_exactly():
    """With the render's own noise key the prediction is the render: no sensory error and
    no gradient; in expectation, the same render leaves a floor whose gradient in f0 is
    not 0 (what refinement would otherwise descend by moving pitch)."""
    c = _controls(16, noise=-3.0)
    key = jax.random.key(5)
    observed = sensory.observe(C.render(c, CS, key=key), SS)
    blur = jnp.zeros((1,), jnp.float32)

    @jax.jit
    def energy(log2_f0, noise_key):
        e, _ = sensory.sensory_energy(dict(c, log2_f0=log2_f0), observed, blur, cspec=CS, sspec=SS,
                                      precision=0.01, noise_key=noise_key)
        return jnp.sum(e)
    def steepest(noise_key):
        return float(jnp.max(jnp.abs(jax.grad(energy)(c["log2_f0"], noise_key))))
    assert float(energy(c["log2_f0"], key)) < 1e-5
    assert float(energy(c["log2_f0"], None)) > 0.1
    assert float(energy(c["log2_f0"], jax.random.key(6))) > 0.1       # another draw is a surprise
    assert steepest(None) > 1e-2 and steepest(key) < 0.05 * steepest(None)


def test_blur_of_zero_width_is_identity_and_weights_follow_hops():
    errs = tuple(jnp.asarray(np.random.default_rng(0).normal(size=(1, 5, n // 2 + 1)), jnp.float32)
                 for n in SS.resolutions)
    for a, b in zip(errs, sensory.blur(errs, 0.0, sample_rate=CS.sample_rate)):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert sensory.resolution_weights(SS, 128) == tuple((n // 4) / 128 for n in SS.resolutions)


def test_an_unblurred_energy_equals_a_blur_of_zero_width():
    # perception skips the blur's FFTs once its width has faded to 0
    c = _controls()
    x = C.render(c, CS, key=jax.random.key(0))
    observed = sensory.observe(x, SS)
    other = dict(c, log2_f0=c["log2_f0"] + 0.02)
    kw = dict(cspec=CS, sspec=SS, precision=0.01)
    skipped, errors = sensory.sensory_energy(other, observed, None, **kw)
    blurred, errors0 = sensory.sensory_energy(other, observed, jnp.zeros(1, jnp.float32), **kw)
    np.testing.assert_allclose(skipped, blurred, rtol=1e-4)
    assert float(skipped[0]) > 0
    for a, b in zip(errors, errors0):
        np.testing.assert_array_equal(a, b)


def test_the_annealed_energy_follows_the_blur_schedule():
    # perception and refinement: blurred by blur0 * fade(step) while the blur lasts, plain after
    c = _controls()
    observed = sensory.observe(C.render(c, CS, key=jax.random.key(0)), SS)
    other = dict(c, log2_f0=c["log2_f0"] + 0.02)
    kw = dict(cspec=CS, sspec=SS, precision=0.01)
    blur0 = jnp.full((1,), 40.0, jnp.float32)
    annealed = jax.jit(lambda step: sensory.annealed_sensory_energy(other, observed, blur0, step, n_steps=20,
                                                                   blurred=True, **kw)[0])
    for step in (0, 5, 9, 10, 15):
        fade = max(0.0, 1.0 - 2.0 * step / 20)
        want = sensory.sensory_energy(other, observed, blur0 * fade if fade > 0 else None, **kw)[0]
        np.testing.assert_allclose(annealed(jnp.int32(step)), want, rtol=1e-4)
    assert float(annealed(jnp.int32(0))[0]) < 0.9 * float(annealed(jnp.int32(15))[0])   # the blur acts
    off = sensory.annealed_sensory_energy(other, observed, blur0, jnp.int32(0), n_steps=20, blurred=False, **kw)
    np.testing.assert_allclose(off[0], sensory.sensory_energy(other, observed, None, **kw)[0], rtol=1e-6)


def test_default_prior_is_zero_when_flat_and_grows_with_jitter():
    c = _controls()
    c["log_inharm"] = jnp.full((1, 2), priors.ControlPrior().inharm_mean, jnp.float32)
    prior = priors.ControlPrior()
    flat = C.zeros(CS, 1, 20)
    flat["log_inharm"] = c["log_inharm"]
    assert float(priors.energy(flat, prior, CS)[0]) == pytest.approx(0.0, abs=1e-6)
    jitter = dict(flat, log2_f0=flat["log2_f0"] + 0.01 * jnp.asarray(np.random.default_rng(0).normal(
        size=flat["log2_f0"].shape), jnp.float32))
    assert float(priors.energy(jitter, prior, CS)[0]) > 10.0


def test_sub_octave_explanation_costs_more_under_the_envelope_prior():
    # The same partials explained by f0/2 need every other amplitude silent.
    prior = priors.ControlPrior()
    spec = C.ControlSpec(n_harmonics=16, inharmonic=False)
    right = C.zeros(spec, 1, 10)
    right["log_amp"] = jnp.log(jnp.broadcast_to(0.2 / jnp.arange(1, 17, dtype=jnp.float32), (1, 1, 10, 16)))
    sub = C.zeros(spec, 1, 10)
    k = np.arange(1, 17)
    sub_amps = np.where(k % 2 == 0, 0.2 / np.maximum(k // 2, 1), 1e-4).astype(np.float32)
    sub["log_amp"] = jnp.log(jnp.broadcast_to(jnp.asarray(sub_amps), (1, 1, 10, 16)))
    assert float(priors.energy(sub, prior, spec)[0]) > 10 * float(priors.energy(right, prior, spec)[0])


def test_roughness_prior_prefers_a_fifth_to_a_tritone_for_harmonic_voices():
    spec = C.ControlSpec(n_voices=2, n_harmonics=6, inharmonic=False)
    prior = priors.ControlPrior(roughness=1.0, f0_slope=0, f0_curvature=0, amp_time=0, amp_envelope=0)

    def dyad(ratio):
        c = C.zeros(spec, 1, 4)
        c["log2_f0"] = jnp.log2(jnp.asarray([[[261.6] * 4, [261.6 * ratio] * 4]], jnp.float32))
        c["log_amp"] = jnp.log(jnp.broadcast_to(0.88 ** jnp.arange(6, dtype=jnp.float32), (1, 2, 4, 6)))
        return float(priors.energy(c, prior, spec)[0])

    assert dyad(1.5) < dyad(2 ** 0.5)
