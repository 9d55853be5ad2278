"""Monotone descent: the energy never rises, whatever the step size, and still converges."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pcmusic import pc
from pcmusic.pc import monotone_descent

# An ill-conditioned quadratic: curvatures 1 .. 100, minimum at X_STAR.
CURV = jnp.asarray(np.geomspace(1.0, 100.0, 6), jnp.float32)
X_STAR = jnp.asarray(np.linspace(-1.0, 2.0, 6), jnp.float32)


def quadratic(state, step):
    del step
    e = 0.5 * jnp.sum(CURV * jnp.square(state["x"] - X_STAR))
    return e, {"energies": jnp.stack([e, jnp.float32(0.0)])}


def test_plain_sgd_diverges_where_monotone_descent_converges():
    # sgd with lr 0.05 is unstable on curvature 100 (needs lr < 2/100).
    run = jax.jit(lambda s: pc.infer(quadratic, s, optimizer=optax.sgd(0.05), n_steps=60,
                                     divergence_factor=None))
    plain = run({"x": jnp.zeros(6, jnp.float32)})
    assert not np.isfinite(float(plain.energy)) or float(plain.energy) > 1e6
    result = jax.jit(lambda s: monotone_descent(quadratic, s, optimizer=optax.sgd(0.05), n_steps=300))(
        {"x": jnp.zeros(6, jnp.float32)})
    history = np.asarray(result.energy_history)
    assert history.shape == (301,)
    assert np.all(np.diff(history) <= 0.0)
    assert history[-1] < 1e-3 * history[0]
    assert int(result.n_rejected) > 0               # it did have to shrink
    np.testing.assert_allclose(np.asarray(result.latents["x"]), np.asarray(X_STAR), atol=0.02)
    assert np.asarray(result.terms).shape == (301, 2)
    np.testing.assert_allclose(np.asarray(result.terms)[:, 0], history, rtol=1e-6)


def test_adam_with_a_huge_step_still_never_rises():
    result = jax.jit(lambda s: monotone_descent(quadratic, s, optimizer=optax.adam(3.0), n_steps=200))(
        {"x": jnp.zeros(6, jnp.float32)})
    history = np.asarray(result.energy_history)
    assert np.all(np.diff(history) <= 0.0)
    assert history[-1] < 0.05 * history[0]


def test_non_finite_proposals_are_rejected():
    def walled(state, step):   # NaN beyond x = 1.5: a proposal there must be refused
        x = state["x"]
        e = jnp.sum(jnp.square(x - 2.0))
        return jnp.where(jnp.all(x < 1.5), e, jnp.float32(jnp.nan)), None
    result = monotone_descent(walled, {"x": jnp.zeros(3, jnp.float32)}, optimizer=optax.sgd(0.4),
                              n_steps=50)
    history = np.asarray(result.energy_history)
    assert np.all(np.isfinite(history)) and np.all(np.diff(history) <= 0.0)
    assert np.all(np.asarray(result.latents["x"]) < 1.5)
    assert result.terms is None and not bool(result.diverged)


def test_a_non_finite_start_is_reported_and_nothing_moves():
    start = {"x": jnp.asarray([jnp.nan, 0.0], jnp.float32)}
    result = monotone_descent(lambda s, t: (jnp.sum(s["x"] ** 2), None), start,
                              optimizer=optax.sgd(0.1), n_steps=5)
    assert bool(result.diverged)
    assert int(result.n_rejected) == 5


@pytest.mark.parametrize("kwargs", [dict(n_steps=0), dict(n_steps=3, shrink=1.0),
                                    dict(n_steps=3, grow=0.5)])
def test_bad_settings_raise(kwargs):
    with pytest.raises(pc.HierarchySpecError, match="n_steps|shrink"):
        monotone_descent(quadratic, {"x": jnp.zeros(6, jnp.float32)}, optimizer=optax.sgd(0.1), **kwargs)
