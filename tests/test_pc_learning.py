"""The PC engine's learning: subspace recovery, precision learning, amortised inference, the
parameter step against finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from pcmusic import pc


def _principal_angles_deg(a, b):
    qa, _ = np.linalg.qr(a)
    qb, _ = np.linalg.qr(b)
    s = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1.0, 1.0)
    return np.degrees(np.arccos(s))


def test_learning_recovers_the_generating_subspace():
    """x = z W + noise, z ~ N(0, I_2): the learned map spans the rows of W (Rao & Ballard style)."""
    d, k, n_batch, batch = 10, 2, 40, 100
    key_w, key_z, key_n, key_init = jax.random.split(jax.random.PRNGKey(3), 4)
    w_true = jax.random.normal(key_w, (k, d)) * jnp.asarray([[1.5], [1.0]])
    z = jax.random.normal(key_z, (n_batch, batch, k))
    xs = z @ w_true + 0.1 * jax.random.normal(key_n, (n_batch, batch, d))

    dense = pc.maps.dense(k, d, bias=False, scale=0.3)
    h = pc.Hierarchy(maps=(dense,))
    example = [xs[0], jnp.zeros((batch, k))]
    params = pc.init_params(h, [dense.init(key_init)], example)
    popt = pc.freeze_except(optax.adam(0.05))

    def epoch(carry, x):
        params, state = carry
        latents = [x, jnp.zeros((batch, k))]
        params, state, res = pc.train_step(h, params, state, latents,
                                           latent_optimizer=optax.sgd(0.04, momentum=0.5),
                                           param_optimizer=popt, n_steps=40, clamp=(True, False))
        return (params, state), res.diverged

    @jax.jit
    def train(params):
        carry = (params, popt.init(params))
        for _ in range(4):
            carry, diverged = lax.scan(epoch, carry, xs)
        return carry[0], diverged

    learned, diverged = train(params)
    assert not bool(diverged.any())
    angles = _principal_angles_deg(np.asarray(learned["maps"][0]["w"]).T, np.asarray(w_true).T)
    assert angles.max() < 5.0, angles
    start = _principal_angles_deg(np.asarray(params["maps"][0]["w"]).T, np.asarray(w_true).T)
    assert start.max() > 20.0  # the test starts far from the answer


def test_learnable_precisions_converge_to_the_noise_precision():
    """Both levels clamped (supervised): d/dlogpi [0.5 pi e^2 - 0.5 log pi] = 0 at pi = 1/E[e^2]."""
    n, sigma = 4000, np.asarray([0.5, 1.0, 2.0], np.float32)
    key_w, key_y, key_e = jax.random.split(jax.random.PRNGKey(4), 3)
    w_true = jax.random.normal(key_w, (2, 3))
    y = jax.random.normal(key_y, (n, 2))
    x = y @ w_true + jax.random.normal(key_e, (n, 3)) * jnp.asarray(sigma)[None]
    dense = pc.maps.dense(2, 3)
    h = pc.Hierarchy(maps=(dense,), learn_precision=True, top_prior=False)
    params = pc.init_params(h, [dense.init(key_w)], [x, y], per_unit=True)
    opt = optax.adam(0.05)

    @jax.jit
    def fit(params):
        def step(carry, _):
            p, s = carry
            p, s, _ = pc.learn_step(h, p, s, [x, y], optimizer=opt)
            return (p, s), None
        return lax.scan(step, (params, opt.init(params)), None, length=600)[0][0]

    learned = fit(params)
    variance = np.exp(-np.asarray(learned["log_precision"][0]))
    np.testing.assert_allclose(variance, sigma**2, rtol=0.1)


def test_amortised_encoder_cuts_the_steps_to_a_given_energy():
    sizes = (8, 5, 3)
    maps = tuple(pc.maps.dense(sizes[l + 1], sizes[l], activation=jnp.tanh) for l in range(2))
    h = pc.Hierarchy(maps=maps)
    keys = jax.random.split(jax.random.PRNGKey(5), 8)
    gen = pc.init_params(h, [m.init(k) for m, k in zip(maps, keys)],
                         [jnp.zeros((1, n)) for n in sizes])
    batch = 64

    def sample(key):
        top = jax.random.normal(key, (batch, sizes[2]))
        levels = pc.predict_top_down(h, gen, top)
        return levels[0] + 0.05 * jax.random.normal(jax.random.fold_in(key, 1), levels[0].shape)

    enc_maps = tuple(pc.maps.dense(sizes[l], sizes[l + 1]) for l in range(2))
    enc = pc.Encoder(maps=enc_maps)
    enc_params = [m.init(k) for m, k in zip(enc_maps, keys[2:4])]
    opt = optax.adam(0.01)
    latent_opt = optax.sgd(0.1)
    clamp = (True, False, False)

    def zero_init(x):
        return [x, jnp.zeros((batch, sizes[1])), jnp.zeros((batch, sizes[2]))]

    @jax.jit
    def train(enc_params, key):
        def step(carry, key):
            p, s = carry
            settled = pc.settle(h, gen, zero_init(sample(key)), optimizer=latent_opt, n_steps=150,
                                clamp=clamp).latents
            p, s, loss = pc.amortised_step(enc, p, s, settled, optimizer=opt)
            return (p, s), loss
        (p, _), losses = lax.scan(step, (enc_params, opt.init(enc_params)), jax.random.split(key, 300))
        return p, losses

    trained, losses = train(enc_params, keys[4])
    assert float(losses[-20:].mean()) < 0.5 * float(losses[:20].mean())

    x = sample(keys[5])
    run = jax.jit(lambda z: pc.settle(h, gen, z, optimizer=latent_opt, n_steps=150, clamp=clamp))
    cold = run(zero_init(x))
    warm = run(list(pc.encode(enc, trained, x)))
    target = float(cold.energy) * 1.05  # within 5% of the settled energy
    steps_cold = int(np.argmax(np.asarray(cold.energy_history) <= target))
    steps_warm = int(np.argmax(np.asarray(warm.energy_history) <= target))
    assert np.asarray(cold.energy_history)[steps_cold] <= target
    assert steps_warm < 0.5 * steps_cold, (steps_warm, steps_cold)


def _numpy_energy(params, y, z1, x):
    """E of the 3-level test hierarchy written out in float64 numpy from its definition
    (unit precisions, no top prior): 0.5 |y - (z1 W0 + b0)|^2 + 0.5 |z1 - tanh(x W1 + b1)|^2."""
    (m0, m1) = params
    e0 = y - (z1 @ m0["w"] + m0["b"])
    e1 = z1 - np.tanh(x @ m1["w"] + m1["b"])
    return 0.5 * np.sum(e0**2) + 0.5 * np.sum(e1**2)


def test_train_step_follows_the_energy_gradient_and_learns():
    sizes = (6, 4, 3)
    maps = tuple(pc.maps.dense(sizes[l + 1], sizes[l], activation=jnp.tanh if l else None)
                 for l in range(2))
    h = pc.Hierarchy(maps=maps, top_prior=False)
    key = jax.random.PRNGKey(6)
    x = jax.random.normal(jax.random.PRNGKey(8), (16, 3))
    y = jax.random.normal(jax.random.PRNGKey(9), (16, 6))
    params = pc.init_params(h, [m.init(k) for m, k in zip(maps, jax.random.split(key, 2))],
                            [y, jnp.zeros((16, 4)), x])
    clamp = pc.clamp_levels(3, [0, -1])

    # One step with plain SGD (rate 1) moves the map params by -dE/dtheta / batch at the
    # settled latents: checked against central finite differences of the energy written
    # out in numpy. Precisions (not learned here) and the unused top mean stay put.
    sgd_step = pc.make_train_step(h, latent_optimizer=optax.sgd(0.1), param_optimizer=optax.sgd(1.0),
                                  n_steps=20, clamp=clamp)
    start = pc.replace_levels(pc.predict_top_down(h, params, x), {0: y})
    moved, _, res = sgd_step(params, optax.sgd(1.0).init(params), start)
    y64, z1, x64 = (np.asarray(level, np.float64) for level in res.latents)
    np.testing.assert_array_equal(y64, np.asarray(y))    # the clamped levels held the data
    np.testing.assert_array_equal(x64, np.asarray(x))
    before = jax.tree.map(lambda a: np.asarray(a, np.float64), params["maps"])
    eps = 1e-6
    for level, name in [(0, "w"), (0, "b"), (1, "w"), (1, "b")]:
        theta = before[level][name]
        fd = np.zeros_like(theta)
        for i in np.ndindex(theta.shape):
            up, down = jax.tree.map(np.copy, before), jax.tree.map(np.copy, before)
            up[level][name][i] += eps
            down[level][name][i] -= eps
            fd[i] = (_numpy_energy(up, y64, z1, x64) - _numpy_energy(down, y64, z1, x64)) / (2 * eps)
        step = np.asarray(moved["maps"][level][name], np.float64) - theta
        np.testing.assert_allclose(step, -fd / 16, rtol=1e-3, atol=1e-6, err_msg=f"map {level} {name}")
        assert np.abs(step).max() > 1e-3              # a real step, not a vanishing one
    for a, b in zip(jax.tree.leaves((params["log_precision"], params["top_mean"])),
                    jax.tree.leaves((moved["log_precision"], moved["top_mean"]))):
        np.testing.assert_array_equal(a, b)

    opt = optax.adam(3e-2)
    step = pc.make_train_step(h, latent_optimizer=optax.sgd(0.1), param_optimizer=opt,
                              n_steps=20, clamp=clamp)
    state, energies = opt.init(params), []
    for _ in range(30):
        latents = pc.replace_levels(pc.predict_top_down(h, params, x), {0: y})
        params, state, res = step(params, state, latents)
        energies.append(float(res.energy))
    assert energies[-1] < 0.5 * energies[0]


def test_hybrid_train_step_learns_the_model_and_the_encoder_together():
    sizes = (6, 3)
    dense = pc.maps.dense(3, 6, bias=False)
    h = pc.Hierarchy(maps=(dense,))
    enc_map = pc.maps.dense(6, 3)
    enc = pc.Encoder(maps=(enc_map,))
    keys = jax.random.split(jax.random.PRNGKey(11), 4)
    w_true = jax.random.normal(keys[0], (3, 6))
    xs = jax.random.normal(keys[1], (60, 32, 3)) @ w_true
    params = pc.init_params(h, [dense.init(keys[2])], [xs[0], jnp.zeros((32, 3))])
    enc_params = [enc_map.init(keys[3])]
    popt, eopt = pc.freeze_except(optax.adam(0.03)), optax.adam(0.03)

    @jax.jit
    def train(params, enc_params):
        def step(carry, x):
            p, e, s, es = carry
            p, e, s, es, res = pc.hybrid_train_step(
                h, enc, p, e, s, es, x, latent_optimizer=optax.sgd(0.05), param_optimizer=popt,
                encoder_optimizer=eopt, n_steps=30)
            return (p, e, s, es), (res.energy, res.energy_history[0])
        carry = (params, enc_params, popt.init(params), eopt.init(enc_params))
        return lax.scan(step, carry, xs)[1]

    settled, initial = train(params, enc_params)
    assert float(settled[-10:].mean()) < 0.2 * float(settled[:10].mean())   # the model learns
    gap_start = float((initial[:10] - settled[:10]).mean())
    gap_end = float((initial[-10:] - settled[-10:]).mean())
    assert gap_end < 0.3 * gap_start  # the encoder's guess ends close to the settled state
