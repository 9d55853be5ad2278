"""The PC engine's inference: exact posteriors, monotone energy, clamps, probing, stability."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pcmusic import pc
from pcmusic.errors import InferenceDivergence

B = 5
SIZES = (6, 4, 3)  # level 0 (observed) .. level 2 (top)


def _linear_gaussian(key):
    """A 3-level linear-Gaussian hierarchy with scalar and per-unit precisions."""
    maps = tuple(pc.maps.dense(SIZES[l + 1], SIZES[l]) for l in range(2))
    h = pc.Hierarchy(maps=maps)
    k = jax.random.split(key, 6)
    map_params = [m.init(kk) for m, kk in zip(maps, k)]
    map_params = [{"w": p["w"], "b": 0.3 * jax.random.normal(kk, p["b"].shape)}
                  for p, kk in zip(map_params, k[2:])]
    x = jax.random.normal(k[4], (B, SIZES[0]))
    latents = [x, jnp.zeros((B, SIZES[1])), jnp.zeros((B, SIZES[2]))]
    params = pc.init_params(h, map_params, latents)
    params["log_precision"] = (jnp.log(jnp.linspace(0.5, 2.0, SIZES[0])),  # per unit
                               jnp.float32(np.log(1.5)), jnp.float32(np.log(0.7)))
    params["top_mean"] = 0.5 * jax.random.normal(k[5], (SIZES[2],))
    return h, params, latents


def _posterior_mean(params, x):
    """Closed-form MAP = posterior mean of (z1, z2) given z0 = x (float64 linear solve)."""
    f = lambda a: np.asarray(a, np.float64)
    a0, b0 = f(params["maps"][0]["w"]).T, f(params["maps"][0]["b"])   # pred0 = a0 z1 + b0
    a1, b1 = f(params["maps"][1]["w"]).T, f(params["maps"][1]["b"])
    p0 = np.diag(np.exp(f(params["log_precision"][0])))
    p1 = np.exp(f(params["log_precision"][1])) * np.eye(SIZES[1])
    p2 = np.exp(f(params["log_precision"][2])) * np.eye(SIZES[2])
    mu = f(params["top_mean"])
    h = np.block([[a0.T @ p0 @ a0 + p1, -p1 @ a1], [-a1.T @ p1, a1.T @ p1 @ a1 + p2]])
    rhs = np.concatenate([(f(x) - b0) @ p0 @ a0 + b1 @ p1, np.tile(-b1 @ p1 @ a1 + mu @ p2, (B, 1))], 1)
    z = np.linalg.solve(h, rhs.T).T
    return z[:, :SIZES[1]], z[:, SIZES[1]:], np.linalg.eigvalsh(h).max()


@functools.lru_cache(maxsize=None)
def _settle_fn(h, optimizer, n_steps, clamp, **kw):
    return jax.jit(lambda p, z: pc.settle(h, p, z, optimizer=optimizer, n_steps=n_steps,
                                          clamp=clamp, **kw))


def test_linear_gaussian_posterior_and_parameter_gradient():
    h, params, latents = _linear_gaussian(jax.random.PRNGKey(0))
    z1, z2, lam_max = _posterior_mean(params, latents[0])
    opt = optax.sgd(float(1.0 / lam_max), momentum=0.9)
    result = pc.check(_settle_fn(h, opt, 600, (True, False, False))(params, latents))
    np.testing.assert_allclose(result.latents[1], z1, atol=1e-4)
    np.testing.assert_allclose(result.latents[2], z2, atol=1e-4)

    # dE/dtheta / batch at the closed-form equilibrium, written out by hand.
    settled = [latents[0], jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32)]
    grads, _ = pc.param_gradients(h, params, settled)
    pi0 = np.exp(np.asarray(params["log_precision"][0], np.float64))
    pi1 = float(np.exp(params["log_precision"][1]))
    pi2 = float(np.exp(params["log_precision"][2]))
    w0, b0 = np.asarray(params["maps"][0]["w"], np.float64), np.asarray(params["maps"][0]["b"], np.float64)
    w1, b1 = np.asarray(params["maps"][1]["w"], np.float64), np.asarray(params["maps"][1]["b"], np.float64)
    x = np.asarray(latents[0], np.float64)
    e0 = (x - z1 @ w0 - b0) * pi0
    e1 = (z1 - z2 @ w1 - b1) * pi1
    np.testing.assert_allclose(grads["maps"][0]["w"], -z1.T @ e0 / B, atol=1e-5)
    np.testing.assert_allclose(grads["maps"][0]["b"], -e0.sum(0) / B, atol=1e-5)
    np.testing.assert_allclose(grads["maps"][1]["w"], -z2.T @ e1 / B, atol=1e-5)
    np.testing.assert_allclose(grads["top_mean"], -(pi2 * (z2 - np.asarray(params["top_mean"]))).sum(0) / B,
                               atol=1e-5)
    # Precisions are not learnable in this hierarchy: no gradient reaches them.
    assert all(float(jnp.abs(g).max()) == 0.0 for g in grads["log_precision"])


def _tanh_hierarchy(key, sizes=(8, 6, 4)):
    maps = tuple(pc.maps.dense(sizes[l + 1], sizes[l], activation=jnp.tanh) for l in range(len(sizes) - 1))
    h = pc.Hierarchy(maps=maps)
    keys = jax.random.split(key, len(sizes) + 1)
    map_params = [m.init(k) for m, k in zip(maps, keys)]
    latents = [jax.random.normal(keys[-1], (B, sizes[0]))] + [
        0.5 * jax.random.normal(k, (B, n)) for k, n in zip(keys[len(maps):], sizes[1:])]
    return h, pc.init_params(h, map_params, latents), latents


TANH = _tanh_hierarchy(jax.random.PRNGKey(1))
CLAMP_BOTTOM = (True, False, False)


def test_energy_never_rises_with_small_steps_and_probe_is_consistent():
    h, params, latents = TANH
    result = _settle_fn(h, optax.sgd(0.02), 60, CLAMP_BOTTOM, record_stride=1)(params, latents)
    traj = result.trajectory
    energy = np.asarray(traj["energy"])
    assert np.all(np.diff(energy) <= 1e-6 * np.abs(energy[:-1])), energy
    assert energy[-1] < 0.7 * energy[0]  # it does descend
    np.testing.assert_array_equal(energy, result.energy_history)
    assert float(result.energy) <= energy[-1]

    # Probing: energies recomputed from the recorded latents equal the recorded ones,
    # per level too, and the recorded errors are the prediction errors of those latents.
    fn = pc.energy_fn(h, params, latents, clamp=CLAMP_BOTTOM)
    np.testing.assert_allclose(pc.replay(fn, traj), energy, rtol=1e-5)
    np.testing.assert_allclose(traj["energies"].sum(1), energy, rtol=1e-5)
    k = 17
    z_k = [lv[k] for lv in traj["latents"]]
    _, aux = pc.energy(h, params, z_k)
    np.testing.assert_allclose(traj["errors"][0][k], aux["errors"][0], atol=1e-6)
    np.testing.assert_allclose(traj["energies"][k], aux["energies"], rtol=1e-5)
    np.testing.assert_array_equal(traj["latents"][1][0], latents[1])
    assert traj["latents"][1].shape == (60, B, 6) and traj["step"][5] == 5


def test_record_stride_bounds_memory():
    h, params, latents = TANH
    result = _settle_fn(h, optax.sgd(0.02), 60, CLAMP_BOTTOM, record_stride=7)(params, latents)
    traj = result.trajectory
    np.testing.assert_array_equal(traj["step"], np.arange(0, 60, 7))
    np.testing.assert_allclose(traj["energy"], result.energy_history[::7], rtol=1e-6)


def test_clamped_entries_never_move_even_with_weight_decay():
    h, params, latents = TANH
    mask = np.zeros((B, 8), bool)
    mask[:, ::2] = True  # every other unit of level 0 is observed
    clamp = [mask, False, True]
    # adamw's decoupled weight decay moves entries whose gradient is zero.
    opt = optax.adamw(0.05, weight_decay=0.5)
    fn = jax.jit(lambda p, z: pc.settle(h, p, z, optimizer=opt, n_steps=30, clamp=clamp))
    out = fn(params, latents).latents
    assert np.array_equal(np.asarray(out[0])[mask], np.asarray(latents[0])[mask])
    assert np.array_equal(np.asarray(out[2]), np.asarray(latents[2]))
    assert np.abs(np.asarray(out[0])[~mask] - np.asarray(latents[0])[~mask]).min() > 1e-4
    assert np.abs(np.asarray(out[1]) - np.asarray(latents[1])).min() > 1e-4


def test_inpainting_a_time_span_fills_it_from_context():
    factor, n_coarse = 4, 10
    up = pc.maps.upsample(1, 1, factor=factor)
    tri = 1.0 - np.abs(np.arange(8) - 3.5) / 4.0  # a smooth (triangular) interpolation kernel
    params_up = {"w": jnp.asarray(tri, jnp.float32)[:, None, None], "b": jnp.zeros((1,), jnp.float32)}
    h = pc.Hierarchy(maps=(up,))
    t = np.arange(n_coarse, dtype=np.float32)
    z1_true = np.stack([np.sin(0.7 * t + p) for p in (0.0, 1.0, 2.0)])[:, :, None].astype(np.float32)
    x = up.apply(params_up, jnp.asarray(z1_true))
    span = slice(17, 23)  # six frames hidden in the middle
    observed = np.ones(x.shape, bool)
    observed[:, span] = False
    x0 = jnp.where(jnp.asarray(observed), x, 0.0)
    latents = [x0, jnp.zeros((3, n_coarse, 1), jnp.float32)]
    params = pc.init_params(h, [params_up], latents)
    params["log_precision"] = (jnp.float32(0.0), jnp.float32(np.log(1e-4)))  # near-flat prior
    out = pc.settle(h, params, latents, optimizer=optax.sgd(0.3, momentum=0.9), n_steps=400,
                    clamp=[observed, False]).latents
    filled, truth = np.asarray(out[0])[:, span], np.asarray(x)[:, span]
    assert np.abs(filled - truth).max() < 0.05 * np.abs(truth).max()
    np.testing.assert_array_equal(np.asarray(out[0])[observed], np.asarray(x)[observed])


def test_tol_stops_at_equilibrium_and_matches_a_fixed_length_run():
    h, params, latents = TANH
    opt = optax.sgd(0.1)
    early = _settle_fn(h, opt, 500, CLAMP_BOTTOM, tol=1e-3)(params, latents)
    n = int(early.n_steps)
    assert 5 < n < 500
    fixed = pc.settle(h, params, latents, optimizer=opt, n_steps=n, clamp=CLAMP_BOTTOM)
    for a, b in zip(early.latents, fixed.latents):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    # the stopping rule: RMS gradient over free entries at the last evaluated state <= tol
    fn = pc.energy_fn(h, params, latents, clamp=CLAMP_BOTTOM)
    prev = pc.settle(h, params, latents, optimizer=opt, n_steps=n - 1, clamp=CLAMP_BOTTOM).latents
    g = jax.grad(lambda z: fn(z, 0)[0])(list(prev))
    rms = np.sqrt(np.mean(np.concatenate([np.ravel(g[1]), np.ravel(g[2])]) ** 2))
    assert rms <= 1e-3
    assert np.isnan(early.energy_history[n:]).all()


def test_divergence_names_step_and_level_and_keeps_the_last_good_state():
    h0, params, latents = TANH
    poisoned = lambda z, step: jnp.where(step == 5, jnp.float32(jnp.nan), jnp.float32(0.0))
    h = pc.Hierarchy(maps=h0.maps, priors=(None, poisoned, None))
    opt = optax.sgd(0.05, momentum=0.5)
    result = pc.settle(h, params, latents, optimizer=opt, n_steps=20, clamp=CLAMP_BOTTOM)
    assert bool(result.diverged) and int(result.bad_step) == 5 and int(result.bad_level) == 1
    assert int(result.n_steps) == 4 and np.isfinite(float(result.energy))
    clean = pc.settle(h0, params, latents, optimizer=opt, n_steps=4, clamp=CLAMP_BOTTOM)
    for a, b in zip(result.latents, clean.latents):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    with pytest.raises(InferenceDivergence, match="step 5 in level 1"):
        pc.check(result)

    # An honest explosion: far too large a step size.
    blown = pc.settle(h0, params, latents, optimizer=optax.sgd(5.0), n_steps=40, clamp=CLAMP_BOTTOM)
    assert bool(blown.diverged) and int(blown.bad_step) > 0
    assert all(np.isfinite(np.asarray(z)).all() for z in blown.latents)
    with pytest.raises(InferenceDivergence, match="diverged at step"):
        pc.check(blown)


def test_vmap_over_multi_start_matches_single_runs():
    h, params, latents = TANH
    starts = jax.random.normal(jax.random.PRNGKey(7), (3, B, 4))

    def run(top):
        z = [latents[0], latents[1], top]
        return pc.settle(h, params, z, optimizer=optax.sgd(0.05), n_steps=40, clamp=CLAMP_BOTTOM)

    batched = jax.jit(jax.vmap(run))(starts)
    assert batched.energy.shape == (3,) and not bool(batched.diverged.any())
    run_one = jax.jit(run)
    for i in range(3):
        single = run_one(starts[i])
        np.testing.assert_allclose(batched.latents[2][i], single.latents[2], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batched.energy[i], single.energy, rtol=1e-5)


def test_generic_infer_on_a_user_energy():
    """Any energy works: a quadratic bowl in a dict pytree, minimum at known values."""
    target = {"a": jnp.arange(3.0), "b": jnp.ones((2, 2))}

    def energy(z, step):
        terms = jnp.stack([jnp.sum((z["a"] - target["a"]) ** 2), jnp.sum((z["b"] - target["b"]) ** 2)])
        return jnp.sum(terms), {"energies": terms}

    z0 = jax.tree.map(jnp.zeros_like, target)
    out = pc.infer(energy, z0, optimizer=optax.sgd(0.25), n_steps=60, clamp={"a": False, "b": None})
    np.testing.assert_allclose(out.latents["a"], target["a"], atol=1e-5)
    np.testing.assert_allclose(out.latents["b"], target["b"], atol=1e-5)
    assert out.aux["energies"].shape == (2,)


def test_check_every_k_and_a_bad_final_update():
    h0, params, latents = TANH
    opt = optax.sgd(0.05)
    every = pc.settle(h0, params, latents, optimizer=opt, n_steps=23, clamp=CLAMP_BOTTOM)
    sparse = pc.settle(h0, params, latents, optimizer=opt, n_steps=23, clamp=CLAMP_BOTTOM,
                       check_every=5)
    # the same trajectory; only the checked steps (0, 5, 10, ...) have energies
    for a, b in zip(every.latents, sparse.latents):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    history = np.asarray(sparse.energy_history)
    np.testing.assert_allclose(history[::5], np.asarray(every.energy_history)[::5], rtol=1e-6)
    assert np.isnan(np.delete(history, np.arange(0, 23, 5))).all()

    # NaN appearing at step 7 is found at the next check (10); the last good check (5) is returned
    poisoned = lambda z, step: jnp.where(step >= 7, jnp.float32(jnp.nan), jnp.float32(0.0))
    h = pc.Hierarchy(maps=h0.maps, priors=(None, None, poisoned))
    out = pc.settle(h, params, latents, optimizer=opt, n_steps=23, clamp=CLAMP_BOTTOM, check_every=5)
    assert int(out.bad_step) == 10 and int(out.bad_level) == 2 and int(out.n_steps) == 5
    at5 = pc.settle(h0, params, latents, optimizer=opt, n_steps=5, clamp=CLAMP_BOTTOM)
    np.testing.assert_allclose(out.latents[2], at5.latents[2], rtol=1e-6, atol=1e-7)

    # a state made bad by the very last update (never checked inside the loop)
    last = lambda z, step: jnp.where(step >= 23, jnp.float32(jnp.inf), jnp.float32(0.0))
    h = pc.Hierarchy(maps=h0.maps, priors=(None, last, None))
    out = pc.settle(h, params, latents, optimizer=opt, n_steps=23, clamp=CLAMP_BOTTOM)
    assert bool(out.diverged) and int(out.bad_step) == 23 and int(out.bad_level) == 1
    assert int(out.n_steps) == 22 and np.isfinite(float(out.energy))
    with pytest.raises(pc.HierarchySpecError, match="record_stride"):
        pc.settle(h0, params, latents, optimizer=opt, n_steps=23, check_every=5, record_stride=7)


def test_schedules_transforms_and_priors_enter_the_energy_per_step():
    h0, params, latents = TANH
    _, aux0 = pc.energy(h0, params, latents)
    blur = lambda err, step: jnp.float32(0.5) * err  # a linear transform of the error
    h = pc.Hierarchy(maps=h0.maps,
                     precision_schedules=(lambda step: jnp.float32(2.0) ** step.astype(jnp.float32),
                                          None, None),
                     error_transforms=(None, blur, None),
                     priors=(None, None, lambda z, step: jnp.sum(jnp.abs(z))))
    for step in (0, 3):
        _, aux = pc.energy(h, params, latents, step=step)
        np.testing.assert_allclose(aux["energies"][0], 2.0**step * aux0["energies"][0], rtol=1e-5)
        np.testing.assert_allclose(aux["energies"][1], 0.25 * aux0["energies"][1], rtol=1e-5)
        np.testing.assert_allclose(aux["energies"][2],
                                   aux0["energies"][2] + float(jnp.sum(jnp.abs(latents[2]))), rtol=1e-5)
    # inside inference the step is the loop counter: the recorded level-0 terms follow 2^t
    out = pc.settle(h, params, latents, optimizer=optax.sgd(1e-4), n_steps=4, clamp=(True, True, True),
                    record_stride=1)
    np.testing.assert_allclose(out.trajectory["energies"][:, 0] / out.trajectory["energies"][0, 0],
                               [1.0, 2.0, 4.0, 8.0], rtol=1e-5)


def test_a_clamped_levels_prediction_is_computed_once_outside_the_loop():
    h0, params, latents = TANH
    calls = []

    def counted(p, z):
        calls.append(1)
        return h0.maps[1](p, z)

    h = pc.Hierarchy(maps=(h0.maps[0], counted))
    clamp = (True, False, True)  # the top is clamped: its prediction of level 1 is constant
    out = jax.jit(lambda p, z: pc.settle(h, p, z, optimizer=optax.sgd(0.05), n_steps=10,
                                         clamp=clamp))(params, latents)
    assert len(calls) == 1  # traced once, before the scan
    # a jax-array mask clamps the same entries but is not static: no hoisting
    mask = jnp.ones((B, 4), bool)
    reference = pc.settle(h0, params, latents, optimizer=optax.sgd(0.05), n_steps=10,
                          clamp=[True, False, mask])
    assert len(calls) == 1
    np.testing.assert_allclose(out.latents[1], reference.latents[1], rtol=1e-6, atol=1e-7)
