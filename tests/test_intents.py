"""Sampling statistics: what the model met in training, and what generation samples."""
import jax
import jax.numpy as jnp
import numpy as np

from pcmusic import controls as C
from pcmusic import generation as G
from pcmusic import intents
from pcmusic import model as M

SPEC = M.ModelSpec(controls=C.ControlSpec(n_harmonics=8, n_noise_bands=4), latent_dims=(4, 4, 3),
                   hidden=8)


def test_running_statistics_converge_to_those_of_the_stream():
    params = M.init_model(jax.random.key(0), SPEC).params
    mean, std, residual = np.array([2.0, -1.0, 0.5]), np.array([0.1, 0.3, 0.05]), np.array([0.2, 0.05])
    update = jax.jit(lambda p, u, e: intents.update_intent_stats(p, u, e, rate=0.02))
    keys = jax.random.split(jax.random.key(1), 1500)
    for key in keys:
        k1, k2, k3 = jax.random.split(key, 3)
        tops = jnp.asarray(mean + std * np.asarray(jax.random.normal(k1, (8, 1, 3))), jnp.float32)
        errors = (None, residual[0] * jax.random.normal(k2, (8, 16, 4)),
                  residual[1] * jax.random.normal(k3, (8, 4, 4)))
        params = update(params, (None, None, tops), errors)
    got_mean, got_std = (np.asarray(x)[0] for x in intents.intent_stats(params))
    np.testing.assert_allclose(got_mean, mean, atol=0.05)
    np.testing.assert_allclose(got_std, std, rtol=0.2)
    np.testing.assert_allclose(np.asarray(intents.residual_scales(params)), residual, rtol=0.1)


def test_generation_samples_intents_and_levels_from_the_statistics():
    model = M.init_model(jax.random.key(2), SPEC)
    params = dict(model.params, intent={"mean": jnp.full((1, 3), 5.0), "log_std": jnp.full((1, 3), np.log(0.01)),
                                        "log_residual": jnp.log(jnp.asarray([1e-4, 1e-4]))})
    model = M.AudioModel(SPEC, params)
    drawn = np.asarray(G.sample_intent(model, jax.random.key(3), 64))
    assert drawn.shape == (64, 1, 3)
    np.testing.assert_allclose(drawn.mean(0)[0], 5.0, atol=0.01)
    np.testing.assert_allclose(drawn.std(0)[0], 0.01, rtol=0.3)
    # below the intent, the levels scatter by the measured residual, not by 1/sqrt(pi) = 0.32
    intent = jnp.asarray(drawn[:2])
    _, _, z3 = G.sample_down(model.bind(), intent, jax.random.key(4), n_frames=16, temperature=1.0)
    _, _, m3, _ = model.bind().predict_down(intent, 16)
    assert float(jnp.max(jnp.abs(z3 - m3))) < 1e-3


def test_params_without_statistics_fall_back_to_the_prior_and_precisions():
    model = M.init_model(jax.random.key(5), SPEC)
    legacy = {k: v for k, v in model.params.items() if k != "intent"}
    mean, std = intents.intent_stats(legacy)
    np.testing.assert_allclose(np.asarray(mean), np.asarray(legacy["pc"]["top_mean"]))
    np.testing.assert_allclose(np.asarray(std), np.exp(-0.5 * SPEC.latent_log_precision[2]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(intents.residual_scales(legacy)),
                               np.exp(-0.5 * np.asarray(SPEC.latent_log_precision[:2])), rtol=1e-6)
