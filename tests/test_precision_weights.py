"""Context-dependent precision: per-unit error weights, audibility of controls."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.model import controls as C
from pcmusic import model as M
from pcmusic import pc


def test_unit_weights_of_one_change_nothing():
    e = {"a": jax.random.normal(jax.random.key(0), (3, 4)), "b": jax.random.normal(jax.random.key(1), (3, 2, 5))}
    lp = {"a": jnp.float32(0.3), "b": jnp.linspace(-1.0, 1.0, 5)[None].repeat(2, 0)}
    ones = jax.tree.map(jnp.ones_like, e)
    for log_det in (False, True):
        np.testing.assert_allclose(float(pc.gaussian_term(e, lp, log_det=log_det, weights=ones)),
                                   float(pc.gaussian_term(e, lp, log_det=log_det)), rtol=1e-6)


def test_learned_precision_is_the_weighted_inverse_mean_square():
    e = jax.random.normal(jax.random.key(2), (4, 50)) * jnp.linspace(0.1, 3.0, 50)[None]
    w = jax.random.uniform(jax.random.key(3), e.shape)
    optimum = np.log(float(jnp.sum(w)) / float(jnp.sum(w * e ** 2)))
    grad = jax.grad(lambda lp: pc.gaussian_term(e, lp, log_det=True, weights=w))(jnp.float32(optimum))
    assert abs(float(grad)) < 1e-3 * float(jnp.sum(w))
    unweighted = np.log(e.size / float(jnp.sum(e ** 2)))
    assert abs(optimum - unweighted) > 0.1          # the weights did matter


def test_energy_ignores_units_of_zero_weight_and_their_weights_get_no_gradient():
    maps = (pc.maps.dense(2, 3),)
    w_fn = lambda z, step: jnp.asarray([[1.0, 0.0, 1.0]]) * jnp.exp(z)   # depends on z  # noqa: E731
    h = pc.Hierarchy(maps=maps, error_weights=(w_fn, None))
    params = pc.init_params(h, [maps[0].init(jax.random.key(0))],
                            [jnp.zeros((1, 3)), jnp.zeros((1, 2))])
    z0 = jnp.asarray([[0.2, -0.4, 0.1]])
    top = jnp.asarray([[0.5, -1.0]])
    e = lambda z: pc.energy(h, params, [z, top])[0]   # noqa: E731
    moved = z0.at[0, 1].add(5.0)                       # the zero-weight unit
    np.testing.assert_allclose(float(e(moved)), float(e(z0)), rtol=1e-6)
    # gradient with the weights held fixed (stop-gradient), not through exp(z)
    fixed_w = w_fn(z0, 0)
    h_fixed = pc.Hierarchy(maps=maps, error_weights=(lambda z, step: fixed_w, None))
    g = jax.grad(e)(z0)
    g_fixed = jax.grad(lambda z: pc.energy(h_fixed, params, [z, top])[0])(z0)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_fixed), rtol=1e-5, atol=1e-7)


def test_audibility_of_loud_quiet_and_aliased_partials():
    spec = C.ControlSpec(n_voices=1, n_harmonics=8, sample_rate=16000)
    c = C.zeros(spec, 1, 4, f0_hz=1500.0)              # partials 6-8 (9, 10.5, 12 kHz) alias
    log_amp = np.full((1, 1, 4, 8), np.log(0.1), np.float32)
    log_amp[0, 0, 1] = np.log(1e-5)                    # frame 1: 85 dB below the others
    c["log_amp"] = jnp.asarray(log_amp)
    w = C.audibility(c, spec, half_power=1e-6)
    amp = np.asarray(w["log_amp"])[0, 0]
    assert np.all(amp[[0, 2, 3], :5] > 0.99)
    assert np.all(amp[:, 5:] == 0.0)                   # above Nyquist
    assert np.all(amp[1] < 1e-3)
    f0 = np.asarray(w["log2_f0"])[0, 0]
    assert f0[0] > 0.99 and f0[1] < 1e-3
    assert np.asarray(w["log_noise"]).max() < 0.01       # zeros() is silent noise (-87 dB)
    assert jax.tree.structure(w) == jax.tree.structure(c)


def test_model_control_error_of_a_silent_frame_costs_nothing():
    spec = M.ModelSpec(controls=C.ControlSpec(n_voices=1, n_harmonics=8, n_noise_bands=4),
                       latent_dims=(4, 4, 2), hidden=8)
    model = M.init_model(jax.random.key(0), spec)
    n = spec.frames_per_top
    top = jnp.zeros((1, 1, 2))
    c, z2, z3, _ = model.predict_down(top, n)
    loud_then_silent = jnp.where(jnp.arange(n)[:, None] < n // 2, np.log(0.1), np.log(1e-6))
    c = dict(c, log_amp=jnp.broadcast_to(loud_then_silent, c["log_amp"].shape).astype(jnp.float32))
    shifted = dict(c, log2_f0=c["log2_f0"].at[:, :, -1].add(1.0))         # octave jump, silent frame
    e = lambda cc, m: m.upper_energy(cc, (z2, z3, top))[0]              # noqa: E731
    assert abs(float(e(shifted, model)) - float(e(c, model))) < 1e-3
    loud_jump = dict(c, log2_f0=c["log2_f0"].at[:, :, 0].add(1.0))        # octave jump, loud frame
    assert float(e(loud_jump, model)) - float(e(c, model)) > 10.0
