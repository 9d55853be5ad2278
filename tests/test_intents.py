"""Sampling statistics: what the model met in training, and what generation samples."""
import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.model import controls as C
from pcmusic import generation as G
from pcmusic.model import intents
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
    params = dict(model.params, intent=dict(model.params["intent"], mean=jnp.full((1, 3), 5.0),
                                            log_std=jnp.full((1, 3), np.log(0.01)),
                                            log_residual=jnp.log(jnp.asarray([1e-4, 1e-4]))))
    model = M.AudioModel(SPEC, params)
    drawn = np.asarray(G.sample_intent(model, jax.random.key(3), 64))
    assert drawn.shape == (64, 1, 3)
    np.testing.assert_allclose(drawn.mean(0)[0], 5.0, atol=0.01)
    np.testing.assert_allclose(drawn.std(0)[0], 0.01, rtol=0.3)
    # below the intent, the levels scatter by the measured residual, not by 1/sqrt(pi) = 0.32
    intent = jnp.asarray(drawn[:2])
    _, _, z3 = G.sample_down(model, intent, jax.random.key(4), n_frames=16, temperature=1.0)
    _, _, m3, _ = model.predict_down(intent, 16)
    assert float(jnp.max(jnp.abs(z3 - m3))) < 1e-3


def test_a_fresh_model_samples_unit_gaussian_intents_and_residuals_of_its_precisions():
    model = M.init_model(jax.random.key(5), SPEC)
    mean, std = intents.intent_stats(model.params)
    np.testing.assert_allclose(np.asarray(mean), 0.0)
    np.testing.assert_allclose(np.asarray(std), 1.0)
    np.testing.assert_allclose(np.asarray(intents.residual_scales(model.params)),
                               np.exp(-0.5 * np.asarray(SPEC.latent_log_precision[:2])), rtol=1e-6)
    assert intents.bank_of(model.params) is None


def _tops(values) -> jnp.ndarray:
    return jnp.asarray(np.asarray(values, np.float32)[:, None, :])


def _update_tops(params, tops):
    errors = (None, jnp.zeros((tops.shape[0], 4, 4)), jnp.zeros((tops.shape[0], 1, 4)))
    return intents.update_intent_stats(params, (None, None, tops), errors)


def test_the_bank_keeps_the_latest_settled_tops_in_a_ring():
    params = M.init_model(jax.random.key(6), SPEC).params
    k = intents.BANK_SIZE
    assert intents.bank_of(params) is None                      # nothing met yet
    update = jax.jit(_update_tops)
    written = np.arange(3 * k + 40, dtype=np.float32)
    for start in range(0, written.size, 8):
        params = update(params, _tops(np.repeat(written[start:start + 8, None], 3, axis=1)))
    assert int(params["intent"]["bank_count"]) == written.size
    bank = np.asarray(intents.bank_of(params))[:, 0]
    np.testing.assert_array_equal(np.sort(bank), written[-k:])    # exactly the latest K
    # a batch larger than the bank keeps its own last K
    params = update(params, _tops(np.repeat(np.arange(1000, 1000 + k + 5, dtype=np.float32)[:, None], 3, 1)))
    np.testing.assert_array_equal(np.sort(np.asarray(intents.bank_of(params))[:, 0]),
                                  np.arange(1005, 1005 + k, dtype=np.float32))


def test_intents_come_from_the_clusters_of_settled_tops_not_from_between_them():
    """Tops in two clusters (as the tops of low and high notes): the kernel density
    estimate draws intents inside the clusters, a single Gaussian mostly between them."""
    params = M.init_model(jax.random.key(7), SPEC).params
    rng = np.random.default_rng(0)
    centres = np.where(rng.random((intents.BANK_SIZE, 1)) < 0.5, -3.0, 3.0)
    tops = centres + 0.1 * rng.standard_normal((intents.BANK_SIZE, 3))
    params = jax.jit(_update_tops)(params, _tops(tops))
    model = M.AudioModel(SPEC, params)
    drawn = np.asarray(G.sample_intent(model, jax.random.key(8), 400))[:, 0]
    nearest = np.min(np.abs(drawn[:, :1] - np.array([[-3.0, 3.0]])), axis=1)
    assert np.mean(nearest < 1.0) > 0.99
    assert 0.35 < np.mean(drawn[:, 0] > 0) < 0.65                  # both clusters
    no_bank = dict(params, intent=dict(params["intent"], bank_count=jnp.int32(intents.MIN_BANK - 1)))
    gaussian = np.asarray(G.sample_intent(M.AudioModel(SPEC, no_bank), jax.random.key(8), 400))[:, 0]
    assert np.mean(np.abs(gaussian[:, 0]) < 2.0) > 0.1            # the fallback fills the gap


def test_knn_bandwidth_is_the_distance_to_the_kth_neighbour():
    points = jnp.asarray([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [7.0, 0.0]])
    got = np.asarray(intents.knn_bandwidth(points, k=2)) * np.sqrt(2)
    np.testing.assert_allclose(got, [3.0, 2.0, 3.0, 6.0], rtol=1e-6)
