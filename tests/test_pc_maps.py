"""Generative maps: shapes, reference values, numerical gradients, bf16 mode, hierarchy specs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend import core as jex_core
from jax.test_util import check_grads

from pcmusic import pc
from pcmusic.pc.errors import HierarchySpecError

KEY = jax.random.PRNGKey(0)


def _numpy_upsample(x, w, factor):
    """Reference transposed convolution: output frame t*factor + k - pad gets x[t] @ w[k]."""
    n_batch, n_frames, _ = x.shape
    k_size = w.shape[0]
    pad = (k_size - factor) // 2
    out = np.zeros((n_batch, n_frames * factor, w.shape[2]))
    for t in range(n_frames):
        for k in range(k_size):
            j = t * factor + k - pad
            if 0 <= j < n_frames * factor:
                out[:, j] += x[:, t] @ w[k]
    return out


@pytest.mark.parametrize("factor,kernel_size", [(2, None), (4, None), (3, 3), (4, 5)])
def test_upsample_matches_the_transposed_convolution(factor, kernel_size):
    m = pc.maps.upsample(3, 2, factor=factor, kernel_size=kernel_size)
    params = m.init(KEY)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (2, 5, 3)))
    y = m.apply(params, jnp.asarray(x))
    assert y.shape == (2, 5 * factor, 2)
    np.testing.assert_allclose(y, _numpy_upsample(x, np.asarray(params["w"]), factor), atol=1e-5)


def test_conv1d_keeps_length_and_matches_numpy():
    m = pc.maps.conv1d(3, 4, kernel_size=5, activation=jnp.tanh)
    params = m.init(KEY)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (2, 9, 3)))
    y = np.asarray(m.apply(params, jnp.asarray(x)))
    assert y.shape == (2, 9, 4)
    w = np.asarray(params["w"])
    padded = np.pad(x, ((0, 0), (2, 2), (0, 0)))
    ref = np.stack([sum(padded[:, t + k] @ w[k] for k in range(5)) for t in range(9)], 1)
    np.testing.assert_allclose(y, np.tanh(ref), atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: pc.maps.dense(4, 3, activation=jnp.tanh),
    lambda: pc.maps.conv1d(2, 3, kernel_size=3, activation=jnp.tanh),
    lambda: pc.maps.upsample(2, 3, factor=2, activation=jnp.tanh),
    lambda: pc.maps.compose(pc.maps.pointwise(jnp.tanh), pc.maps.upsample(2, 2, factor=3),
                            pc.maps.conv1d(2, 1, kernel_size=3)),
])
def test_numerical_gradients_wrt_input_and_params(make):
    m = make()
    params = m.init(KEY)
    shape = (2, 4) if "w" in params and np.ndim(params["w"]) == 2 else (2, 5, 2)
    x = jax.random.normal(jax.random.PRNGKey(3), shape)
    with jax.numpy_dtype_promotion("standard"):  # check_grads mixes Python floats in
        check_grads(lambda x: m.apply(params, x), (x,), order=1, modes=("rev",), eps=1e-2,
                    atol=2e-2, rtol=2e-2)
        check_grads(lambda p: m.apply(p, x), (params,), order=1, modes=("rev",), eps=1e-2,
                    atol=2e-2, rtol=2e-2)


def test_bf16_mode_is_close_and_keeps_float32_params_and_outputs():
    m32, m16 = pc.maps.dense(64, 32), pc.maps.dense(64, 32, bf16=True)
    params = m32.init(KEY)
    x = jax.random.normal(jax.random.PRNGKey(4), (8, 64))
    y32, y16 = m32.apply(params, x), m16.apply(params, x)
    assert y16.dtype == jnp.float32 and params["w"].dtype == jnp.float32
    err = float(jnp.abs(y16 - y32).max() / jnp.abs(y32).max())
    assert 0.0 < err < 2e-2  # bfloat16 inputs (8-bit mantissa), float32 accumulation
    c16 = pc.maps.conv1d(4, 4, kernel_size=3, bf16=True)
    c32 = pc.maps.conv1d(4, 4, kernel_size=3)
    p = c32.init(KEY)
    xt = jax.random.normal(KEY, (2, 6, 4))
    assert float(jnp.abs(c16.apply(p, xt) - c32.apply(p, xt)).max()) < 5e-2


@pytest.mark.parametrize("kind", ["dense", "conv1d", "upsample"])
def test_bf16_backward_products_take_bf16_operands_and_match_float32(kind):
    """The opt-in bf16 mode must speed up the backward half too: every product in the
    gradient's program multiplies bfloat16 operands, and the gradients (w.r.t. the input
    and the params) stay float32 and within bfloat16 rounding of the float32 map's."""
    make = {"dense": lambda b: pc.maps.dense(6, 5, activation=jnp.tanh, bf16=b),
            "conv1d": lambda b: pc.maps.conv1d(6, 5, kernel_size=3, activation=jnp.tanh, bf16=b),
            "upsample": lambda b: pc.maps.upsample(6, 5, factor=2, activation=jnp.tanh, bf16=b)}[kind]
    m32, m16 = make(False), make(True)
    params = m32.init(KEY)
    shape = (4, 6) if kind == "dense" else (2, 7, 6)
    x = jax.random.normal(jax.random.PRNGKey(5), shape)
    target = jax.random.normal(jax.random.PRNGKey(6), m32.apply(params, x).shape)

    def loss(m):
        return lambda p, x: jnp.sum((m.apply(p, x) - target) ** 2)

    def products(jaxpr):  # every product, also inside nested jaxprs (pjit, custom rules)
        for e in jaxpr.eqns:
            if e.primitive.name in ("dot_general", "conv_general_dilated"):
                yield e
            for sub in jex_core.jaxprs_in_params(e.params):
                yield from products(sub)

    grad16 = jax.grad(loss(m16), argnums=(0, 1))
    products = list(products(jax.make_jaxpr(grad16)(params, x).jaxpr))
    assert len(products) >= 3  # forward, d/dx, d/dw
    for e in products:
        assert all(v.aval.dtype == jnp.bfloat16 for v in e.invars), e
    g32, g16 = jax.grad(loss(m32), argnums=(0, 1))(params, x), grad16(params, x)
    for a, b in zip(jax.tree.leaves(g32), jax.tree.leaves(g16)):
        assert b.dtype == jnp.float32
        rel = float(jnp.abs(b - a).max() / (jnp.abs(a).max() + 1e-12))
        assert 0.0 < rel < 3e-2, rel  # 8-bit mantissa operands, float32 accumulation


def test_pytree_levels_and_prediction_top_down():
    """Levels can be dicts of arrays; a map returns a dict with the level's structure."""
    def control_map(params, z):
        h = z @ params["w"]
        return {"f0": h[:, :2], "amps": h[:, 2:].reshape(-1, 2, 3)}

    h = pc.Hierarchy(maps=(control_map,))
    top = jax.random.normal(KEY, (4, 5))
    params = pc.init_params(h, [{"w": jax.random.normal(KEY, (5, 8))}],
                            [{"f0": jnp.zeros((4, 2)), "amps": jnp.zeros((4, 2, 3))}, top], per_unit=True)
    levels = pc.predict_top_down(h, params, top)
    assert levels[0]["amps"].shape == (4, 2, 3)
    e, aux = pc.energy(h, params, levels)
    # perfect prediction below, only the top prior remains: 0.5 * ||top||^2
    np.testing.assert_allclose(aux["energies"][0], 0.0, atol=1e-6)
    np.testing.assert_allclose(e, 0.5 * float(jnp.sum(top**2)), rtol=1e-5)
    assert params["log_precision"][0]["amps"].shape == (2, 3)


def test_bad_specs_raise_clear_errors():
    h = pc.Hierarchy(maps=(pc.maps.dense(3, 2),))
    with pytest.raises(HierarchySpecError, match="one per level"):
        pc.Hierarchy(maps=(pc.maps.dense(3, 2),), priors=(None,))
    with pytest.raises(HierarchySpecError, match="2 levels"):
        pc.energy(h, {}, [jnp.zeros((1, 2))])
    latents = [jnp.zeros((1, 2)), jnp.zeros((1, 3))]
    params = pc.init_params(h, [pc.maps.dense(3, 2).init(KEY)], latents)
    with pytest.raises(HierarchySpecError, match="does not broadcast"):
        pc.partition([np.zeros((5,), bool), False], latents)
    params["log_precision"] = (jnp.zeros((7,)), jnp.float32(0.0))
    with pytest.raises(HierarchySpecError, match="log-precision leaf"):
        pc.energy(h, params, latents)
