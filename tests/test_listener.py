"""PC listener: the ear, contexts, inference against the linear-Gaussian closed form,
learning, online listening, compression progress and population vmapping."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pcmusic.dsp import synth
from pcmusic.creative import listener as lis
from pcmusic.errors import ConfigError, PcmusicError

SPEC = lis.ListenerSpec(n_bands=12, n_context=4, n_latent=8, n_infer_steps=40)
free_energy = jax.jit(functools.partial(lis.free_energy, spec=SPEC))
energies = jax.jit(functools.partial(lis.inference_energies, spec=SPEC))
learn = jax.jit(functools.partial(lis.learn, spec=SPEC), static_argnames="n_steps")
hear = jax.jit(functools.partial(lis.hear, spec=SPEC))


def random_frames(key, n_frames=20):
    return 3.0 * jax.random.uniform(key, (n_frames, SPEC.n_bands), jnp.float32)


@pytest.fixture(scope="module")
def params():
    return lis.init_listener(SPEC, key=jax.random.key(0))


def test_ear_hears_silence_as_zero_and_a_tone_in_its_band():
    assert float(jnp.max(jnp.abs(hear(jnp.zeros(16000, jnp.float32))))) == 0.0
    n_frames = 50
    tone = synth.sinusoids(jnp.full((n_frames, 1), 1000.0, jnp.float32),
                           jnp.full((n_frames, 1), 0.3, jnp.float32), sample_rate=16000, hop=160)
    frames = np.asarray(hear(tone))
    assert frames.shape == (n_frames, SPEC.n_bands)
    # the loudest band is the one whose mel filter peaks nearest 1000 Hz
    fb = lis._mel(SPEC)
    peak_hz = np.argmax(fb, axis=0) * SPEC.sample_rate / SPEC.n_fft
    assert np.argmax(frames[25]) == np.argmin(np.abs(peak_hz - 1000.0))
    # a 1 kHz sinusoid of amplitude 0.3 on the -70 dB floor: about 5 bels above it
    assert 4.0 < frames[25].max() < 6.5


def test_contexts_hold_the_previous_frames_oldest_first():
    frames = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)
    history = -np.arange(3 * 2, dtype=np.float32).reshape(3, 2) - 1
    ctx = np.asarray(lis.contexts(frames, n_context=3, history=history))
    padded = np.concatenate([history, frames])
    for t in range(5):
        np.testing.assert_array_equal(ctx[t], padded[t:t + 3].ravel())
    silent = np.asarray(lis.contexts(frames, n_context=3))
    np.testing.assert_array_equal(silent[0], np.zeros(6))
    np.testing.assert_array_equal(silent[4], frames[1:4].ravel())


def test_inference_falls_and_settles_on_the_linear_gaussian_surprise(params):
    frames = random_frames(jax.random.key(1))
    history = energies(params, frames)
    assert np.all(np.diff(np.asarray(history)) <= 1e-4 * np.abs(np.asarray(history[:-1])))
    assert history[-1] < 0.5 * history[0]
    # closed form: F_t = 0.5 e^T (I/pi0 + W W^T/pi1)^-1 e, e = x - W(U c + a) - b
    w, b = (np.asarray(params["maps"][0][k], np.float64) for k in ("w", "b"))
    u, a = (np.asarray(params["maps"][1][k], np.float64) for k in ("w", "b"))
    ctx = np.asarray(lis.contexts(frames, n_context=SPEC.n_context), np.float64)
    err = np.asarray(frames, np.float64) - (ctx @ u + a) @ w - b
    cov = np.eye(SPEC.n_bands) / SPEC.sensory_precision + w.T @ w / SPEC.state_precision
    expected = 0.5 * np.einsum("ti,ij,tj->t", err, np.linalg.inv(cov), err)
    np.testing.assert_allclose(np.asarray(free_energy(params, frames)), expected, rtol=1e-3)


def test_inverse_by_newton_schulz_matches_numpy():
    w = np.asarray(jax.random.normal(jax.random.key(2), (16, 16)), np.float64) * 3
    h = w @ w.T + np.eye(16)
    np.testing.assert_allclose(np.asarray(lis._inverse_spd(jnp.asarray(h, jnp.float32))) @ h,
                               np.eye(16), atol=2e-3)


def test_learning_lowers_the_free_energy_of_what_it_heard(params):
    frames = random_frames(jax.random.key(3))
    before = float(jnp.mean(free_energy(params, frames)))
    after_1 = float(jnp.mean(free_energy(learn(params, frames, n_steps=1), frames)))
    after_5 = float(jnp.mean(free_energy(learn(params, frames, n_steps=5), frames)))
    assert after_5 < after_1 < before
    # precisions are not learned
    assert learn(params, frames, n_steps=2)["log_precision"] == params["log_precision"]


def test_listen_online_is_perceive_then_learn_chunk_by_chunk(params):
    frames = random_frames(jax.random.key(4), n_frames=10)
    got_params, got = jax.jit(functools.partial(lis.listen, spec=SPEC, chunk=4, n_learn=2))(params, frames)
    p, expected = params, []
    padded = np.concatenate([np.zeros((SPEC.n_context, SPEC.n_bands), np.float32), frames,
                             np.zeros((2, SPEC.n_bands), np.float32)])
    for start in (0, 4, 8):
        now = padded[SPEC.n_context + start:SPEC.n_context + start + 4]
        hist = padded[start:start + SPEC.n_context]
        expected.append(np.asarray(free_energy(p, now, history=hist)))
        p = learn(p, now, n_steps=2, history=hist)
    np.testing.assert_allclose(np.asarray(got), np.concatenate(expected)[:10], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got_params["maps"][0]["w"]), np.asarray(p["maps"][0]["w"]),
                               rtol=1e-4, atol=1e-6)


def test_compression_progress_sign_on_toy_inputs(params):
    cp = jax.jit(functools.partial(lis.compression_progress, spec=SPEC, n_learn=5, continuation=False))
    band_a = np.zeros((20, SPEC.n_bands), np.float32)
    band_a[:, 2] = 4.0
    band_b = np.zeros((20, SPEC.n_bands), np.float32)
    band_b[:, 9] = 4.0
    learnt, after = cp(params, band_a, band_a)
    # CP is exactly F before minus F after on the held-out segment
    f0 = float(jnp.mean(free_energy(params, band_a)))
    f1 = float(jnp.mean(free_energy(learn(params, band_a, n_steps=5), band_a)))
    np.testing.assert_allclose(float(learnt), f0 - f1, rtol=1e-4)
    assert float(learnt) > 0.5 * f0            # the same sound again: most of it learned
    # learning one band makes the listener expect it: a different band gets worse
    unrelated, _ = cp(params, band_a, band_b)
    assert float(unrelated) < 0


def test_deterministic_per_key_and_vmappable_over_a_population():
    keys = jax.random.split(jax.random.key(5), 3)
    population = jax.vmap(lambda k: lis.init_listener(SPEC, key=k))(keys)
    again = lis.init_listener(SPEC, key=keys[1])
    np.testing.assert_array_equal(np.asarray(population["maps"][0]["w"][1]),
                                  np.asarray(again["maps"][0]["w"]))
    assert not np.allclose(population["maps"][0]["w"][0], population["maps"][0]["w"][1])
    frames = random_frames(jax.random.key(6), n_frames=8)
    batched = jax.jit(jax.vmap(free_energy, in_axes=(0, None)))(population, frames)
    for i in range(3):
        one = jax.tree.map(lambda x: x[i], population)
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(free_energy(one, frames)),
                                   rtol=1e-5, atol=1e-6)


def test_bad_input_is_explained():
    with pytest.raises(ConfigError, match="infer_rate"):
        lis.ListenerSpec(infer_rate=1.5)
    with pytest.raises(ConfigError, match="Nyquist"):
        lis.ListenerSpec(f_max_hz=9000.0)
    with pytest.raises(PcmusicError, match="narrower than an FFT bin"):
        lis.hear(jnp.zeros(1600), spec=lis.ListenerSpec(n_bands=128, f_min_hz=0.0))
    with pytest.raises(PcmusicError, match="n_bands=12"):
        lis.free_energy(lis.init_listener(SPEC, key=jax.random.key(0)), jnp.zeros((5, 7)), spec=SPEC)
