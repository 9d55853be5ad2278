"""Flax modules as PC maps: the adapter `pcmusic.pc.maps.from_flax`, the audio model's
built-in flax maps, a hierarchy of user-written flax modules trained end to end, and
the hidden units a probe replays."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx
from jax.test_util import check_grads

from pcmusic import model as M
from pcmusic import pc
from pcmusic.errors import PcmusicError
from pcmusic.model import controls as C
from pcmusic.model import maps as audio_maps
from pcmusic.perception import InferenceSpec
from pcmusic.training import step as learn
from tests.test_perceive import _tone

KEY = jax.random.key(0)
SPEC = M.ModelSpec(controls=C.ControlSpec(n_harmonics=12, n_noise_bands=8), latent_dims=(8, 8, 4), hidden=16)


class NnxMLP(nnx.Module):
    def __init__(self, n_in, n_hidden, n_out, *, rngs):
        self.a = nnx.Linear(n_in, n_hidden, rngs=rngs)
        self.b = nnx.Linear(n_hidden, n_out, rngs=rngs)

    def hidden(self, x):
        return jnp.tanh(self.a(x))

    def __call__(self, x):
        return self.b(self.hidden(x))


class LinenMLP(linen.Module):
    n_hidden: int
    n_out: int

    @linen.compact
    def __call__(self, x):
        h = jnp.tanh(linen.Dense(self.n_hidden)(x))
        return linen.Dense(self.n_out)(h)


def _is_plain(tree) -> bool:
    """Nested dicts (str keys) whose leaves are jax arrays: what the PC engine differentiates."""
    if isinstance(tree, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in tree.items())
    return isinstance(tree, jax.Array)


ADAPTED = {"nnx": lambda: pc.maps.from_flax(NnxMLP(3, 5, 2, rngs=nnx.Rngs(0))),
           "nnx factory": lambda: pc.maps.from_flax(lambda rngs: NnxMLP(3, 5, 2, rngs=rngs)),
           "linen": lambda: pc.maps.from_flax(LinenMLP(5, 2), jnp.zeros((1, 3)))}


@pytest.mark.parametrize("kind", list(ADAPTED))
def test_adapted_module_has_plain_params_exact_gradients_and_jits(kind):
    m = ADAPTED[kind]()
    params = m.init(KEY)
    assert _is_plain(params), jax.tree.map(type, params)
    x = jax.random.normal(jax.random.key(1), (4, 3))
    y = m.apply(params, x)
    assert y.shape == (4, 2)
    np.testing.assert_allclose(jax.jit(m.apply)(params, x), y, atol=1e-6)
    with jax.numpy_dtype_promotion("standard"):  # check_grads mixes Python floats in
        check_grads(lambda p: m.apply(p, x), (params,), order=1, modes=("rev",), eps=1e-2,
                    atol=2e-2, rtol=2e-2)
        check_grads(lambda x: m.apply(params, x), (x,), order=1, modes=("rev",), eps=1e-2,
                    atol=2e-2, rtol=2e-2)


def test_adapted_module_computes_the_pc_dense_maps_function():
    """Two routes to one answer: the nnx MLP at the params of two `pc.maps.dense` maps
    gives their composition's output and parameter gradients."""
    m = pc.maps.from_flax(NnxMLP(3, 5, 2, rngs=nnx.Rngs(0)))
    ref = pc.maps.compose(pc.maps.dense(3, 5, activation=jnp.tanh), pc.maps.dense(5, 2))
    p_ref = ref.init(KEY)
    p = {"a": {"kernel": p_ref[0]["w"], "bias": p_ref[0]["b"]},
         "b": {"kernel": p_ref[1]["w"], "bias": p_ref[1]["b"]}}
    x = jax.random.normal(jax.random.key(2), (4, 3))
    np.testing.assert_allclose(m.apply(p, x), ref.apply(p_ref, x), atol=1e-6)
    g = jax.grad(lambda p: jnp.sum(jnp.sin(m.apply(p, x))))(p)
    g_ref = jax.grad(lambda p: jnp.sum(jnp.sin(ref.apply(p, x))))(p_ref)
    np.testing.assert_allclose(g["a"]["kernel"], g_ref[0]["w"], atol=1e-6)
    np.testing.assert_allclose(g["b"]["bias"], g_ref[1]["b"], atol=1e-6)


def test_layer_lists_get_string_keys_that_checkpoints_take():
    class Deep(nnx.Module):
        def __init__(self, rngs):
            self.layers = getattr(nnx, "List", list)([nnx.Linear(3, 3, rngs=rngs) for _ in range(2)])

        def __call__(self, x):
            for layer in self.layers:
                x = jnp.tanh(layer(x))
            return x

    m = pc.maps.from_flax(Deep(nnx.Rngs(0)))
    params = m.init(KEY)
    assert _is_plain(params) and set(params["layers"]) == {"0", "1"}
    x = jax.random.normal(jax.random.key(1), (4, 3))
    grads = jax.jit(jax.grad(lambda p: jnp.sum(m.apply(p, x))))(params)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert set(m.intermediates(params, x)) >= {"layers/0/__call__", "layers/1/__call__"}


def test_init_draws_from_the_key_where_flax_can():
    """A factory and a linen module are initialised from the key; an nnx module keeps
    the params it was built with."""
    for kind in ("nnx factory", "linen"):
        m = ADAPTED[kind]()
        a, b, again = m.init(jax.random.key(1)), m.init(jax.random.key(2)), m.init(jax.random.key(1))
        assert not np.allclose(jax.tree.leaves(a)[-1], jax.tree.leaves(b)[-1])
        jax.tree.map(np.testing.assert_array_equal, a, again)
    built = NnxMLP(3, 5, 2, rngs=nnx.Rngs(7))
    m = pc.maps.from_flax(built)
    np.testing.assert_array_equal(m.init(jax.random.key(1))["a"]["kernel"], built.a.kernel[...])


def test_adapter_refuses_what_it_cannot_keep_pure():
    class WithStats(linen.Module):
        @linen.compact
        def __call__(self, x):
            return linen.BatchNorm(use_running_average=True)(x)

    with pytest.raises(TypeError, match="batch_stats"):
        pc.maps.from_flax(WithStats(), jnp.zeros((1, 3))).init(KEY)
    with pytest.raises(TypeError, match="example_input"):
        pc.maps.from_flax(LinenMLP(5, 2))
    with pytest.raises(TypeError, match="nnx"):
        pc.maps.from_flax(42)


@pytest.mark.parametrize("kind", list(ADAPTED))
def test_intermediates_are_the_hidden_layers(kind):
    m = ADAPTED[kind]()
    params = m.init(KEY)
    x = jax.random.normal(jax.random.key(3), (4, 3))
    found = m.intermediates(params, x)
    hidden = found["hidden"] if kind != "linen" else jnp.tanh(found["Dense_0/__call__"])
    assert hidden.shape == (4, 5)
    first = params["a"] if kind != "linen" else params["Dense_0"]
    np.testing.assert_allclose(hidden, jnp.tanh(x @ first["kernel"] + first["bias"][None]), atol=1e-6)
    np.testing.assert_allclose(found["__call__"], m.apply(params, x), atol=1e-6)


def test_equinox_modules_are_maps_too():
    eqx = pytest.importorskip("equinox")

    class Batched(eqx.Module):
        inner: eqx.nn.MLP

        def __call__(self, x):
            return jax.vmap(self.inner)(x)

    mlp = eqx.nn.MLP(3, 2, 5, 1, activation=jnp.tanh, key=jax.random.key(0))
    m = pc.maps.from_flax(Batched(mlp))
    params = m.init(KEY)
    assert _is_plain(params)
    x = jax.random.normal(jax.random.key(1), (4, 3))
    np.testing.assert_allclose(m.apply(params, x), jax.vmap(mlp)(x), atol=1e-6)
    with jax.numpy_dtype_promotion("standard"):
        check_grads(lambda p: m.apply(p, x), (params,), order=1, modes=("rev",), eps=1e-2,
                    atol=2e-2, rtol=2e-2)


# ---------------------------------------------------------------- the built-in maps

def test_builtin_maps_draw_kernels_as_pc_maps_did():
    """N(0, 1 / fan_in) kernels (fan_in = inputs x kernel width) and zero biases, as
    `pc.maps.conv1d` and `pc.maps.dense`, so training starts where it used to."""
    spec = M.ModelSpec(hidden=256)
    params = M.init_model(KEY, spec).params
    trunk = params["pc"]["maps"][1]["trunk"]          # g3's first convolution: z3 -> hidden
    fan_in = spec.latent_dims[1] * spec.kernel_size
    assert trunk["kernel"].shape == (spec.kernel_size, spec.latent_dims[1], 256)
    np.testing.assert_allclose(float(jnp.std(trunk["kernel"])), fan_in ** -0.5, rtol=0.05)
    assert abs(float(jnp.mean(trunk["kernel"]))) < 0.05 * fan_in ** -0.5
    assert float(jnp.max(jnp.abs(trunk["bias"]))) == 0.0
    head = params["pc"]["maps"][0]["head"]["kernel"]   # g2's linear head: hidden -> controls
    np.testing.assert_allclose(float(jnp.std(head)), 256 ** -0.5, rtol=0.05)


def test_builtin_event_map_is_interpolation_then_two_convolutions():
    """g3 equals the pc.maps composition it is made of, at the same params."""
    m = audio_maps.model_maps(SPEC).g3
    params = m.init(KEY)
    ref = pc.maps.compose(pc.maps.pointwise(lambda z: audio_maps.upsample_linear(z, 4)),
                          pc.maps.conv1d(8, 16, kernel_size=5, activation=jnp.tanh),
                          pc.maps.conv1d(16, 8, kernel_size=5))
    p_ref = ({}, {"w": params["trunk"]["kernel"], "b": params["trunk"]["bias"]},
             {"w": params["out"]["kernel"], "b": params["out"]["bias"]})
    z3 = jax.random.normal(jax.random.key(1), (2, 3, 8))
    np.testing.assert_allclose(m.apply(params, z3), ref.apply(p_ref, z3), atol=1e-5)


# ---------------------------------------------------------------- user maps

class UserControls(nnx.Module):
    """g2: z2 [B, n, d2] -> control features [B, n * factor, n_out], a gelu MLP."""

    def __init__(self, d2, n_out, factor, *, rngs):
        self.a = nnx.Linear(d2, 24, rngs=rngs)
        self.b = nnx.Linear(24, n_out, kernel_init=nnx.initializers.zeros_init(), rngs=rngs)
        self.factor = factor

    def __call__(self, z):
        return audio_maps.upsample_linear(self.b(jax.nn.gelu(self.a(z))), self.factor)


class UserEvents(nnx.Module):
    """g3: z3 [B, n, d3] -> z2 [B, n * factor, d2]."""

    def __init__(self, d3, d2, factor, *, rngs):
        self.a = nnx.Linear(d3, d2, rngs=rngs)
        self.factor = factor

    def __call__(self, z):
        return self.a(audio_maps.upsample_linear(z, self.factor))


class UserPool(nnx.Module):
    """e2, e3: [B, n, n_in] -> [B, n / factor, n_out]."""

    def __init__(self, n_in, n_out, factor, *, rngs):
        self.a = nnx.Linear(n_in, n_out, rngs=rngs)
        self.factor = factor

    def __call__(self, x):
        return audio_maps.pool(self.a(x), self.factor)


class UserTopEncoder(linen.Module):
    """e_top: z3 [B, n, d3] -> top [B, 1, dt] (linen)."""
    dt: int

    @linen.compact
    def __call__(self, z):
        return linen.Dense(self.dt)(jnp.mean(z, axis=1, keepdims=True))


def _user_maps(spec):
    d2, d3, dt = spec.latent_dims
    r1, r2 = spec.rate_factors
    n_out, n_in = audio_maps.n_control_outputs(spec.controls), audio_maps.n_control_features(spec.controls)
    return M.UserMaps(
        g2=lambda rngs: UserControls(d2, n_out, r1, rngs=rngs),
        g3=UserEvents(d3, d2, r2, rngs=nnx.Rngs(1)),
        top=LinenMLP(12, d3),
        encoder=(lambda rngs: UserPool(n_in, d2, r1, rngs=rngs),
                 lambda rngs: UserPool(d2, d3, r2, rngs=rngs), UserTopEncoder(dt)))


def test_user_maps_replace_the_builtin_ones_and_are_checked():
    user = _user_maps(SPEC)
    model = M.init_model(KEY, SPEC, maps=user)
    assert model.maps is user and set(model.params["pc"]["maps"][0]) == {"a", "b"}
    assert set(model.params["pc"]["maps"][2]) == {"Dense_0", "Dense_1"}
    top = jax.random.normal(jax.random.key(1), (2, 1, 4))
    c, z2, z3, _ = model.predict_down(top, 32)
    assert c["log_amp"].shape == (2, 1, 32, 12) and z2.shape == (2, 8, 8) and z3.shape == (2, 2, 8)
    # a zero head predicts the offsets: 220 Hz, quiet partials
    np.testing.assert_allclose(2.0 ** c["log2_f0"], 220.0, rtol=1e-5)
    assert [g.shape for g in model.encode_upper(c)] == [z2.shape, z3.shape, top.shape]
    jitted = jax.jit(lambda m, t: m.predict_down(t, 32)[1])(model, top)
    np.testing.assert_allclose(jitted, z2, atol=1e-5)
    partly = M.init_model(KEY, SPEC, maps={"g3": user.g3})          # the rest built in
    assert set(partly.params["pc"]["maps"][0]) == {"trunk", "head"}
    with pytest.raises(PcmusicError, match="g3 maps"):
        M.init_model(KEY, SPEC, maps={"g3": UserEvents(8, 8, 2, rngs=nnx.Rngs(0))})   # wrong rate
    with pytest.raises(PcmusicError, match="unknown keys"):
        M.init_model(KEY, SPEC, maps={"g4": user.g3})


def test_a_hierarchy_of_user_flax_modules_trains():
    """pcmusic.training.train_step on a hierarchy whose maps and encoder are all the
    user's flax modules: the learning objective (the energy above the controls at the
    settled state) falls at every step on a fixed batch, and the encoder learns."""
    user = _user_maps(SPEC)
    inference = InferenceSpec(n_steps=10, n_upper_steps=10, n_shoot_steps=10)
    opt, enc_opt = learn.optimizers(learning_rate=3e-3, encoder_learning_rate=3e-3)
    state = learn.init_train_state(KEY, SPEC, optimizer=opt, encoder_optimizer=enc_opt, maps=user)
    step = jax.jit(functools.partial(learn.train_step, spec=SPEC, inference=inference, optimizer=opt,
                                     encoder_optimizer=enc_opt, maps=user))
    audio = jnp.stack([_tone(f0, seconds=0.256, seed=i) for i, f0 in enumerate((220.0, 330.0))])
    history = []
    for _ in range(8):
        state, metrics = step(state, audio)
        history.append({k: float(v) for k, v in metrics.items()})
    assert all(h["diverged"] == 0 for h in history)
    objective = [h["objective"] for h in history]
    assert np.all(np.diff(objective) < 0) and objective[-1] < 0.97 * objective[0], objective
    assert history[-1]["energy"] < history[0]["energy"]
    assert history[-1]["encoder_loss"] < 0.5 * history[0]["encoder_loss"]
    trained = learn.model_of(state, SPEC, user)
    assert trained.maps is user and trained.encoder().maps[2] is not None


def test_load_model_restores_user_maps(tmp_path):
    """A checkpoint holds a user model's params; load_model rebuilds it with the same maps."""
    from pcmusic.errors import CheckpointError
    from pcmusic.training import checkpoint, config
    cfg = dataclasses.replace(config.default_config(), model=SPEC)
    user = _user_maps(SPEC)
    opt, enc_opt = learn.optimizers(learning_rate=cfg.train.learning_rate,
                                    encoder_learning_rate=cfg.train.encoder_learning_rate)
    state = learn.init_train_state(jax.random.key(3), SPEC, optimizer=opt, encoder_optimizer=enc_opt,
                                   maps=user)
    checkpoint.save(tmp_path, 1, state=state, config=cfg)
    model, _ = checkpoint.load_model(tmp_path, maps=user)
    assert model.maps is user
    jax.tree.map(np.testing.assert_array_equal, model.params, state.params)
    with pytest.raises(CheckpointError, match="does not match"):
        checkpoint.load_model(tmp_path)                 # the built-in maps' params differ


# ---------------------------------------------------------------- probing hidden units

def test_probe_replays_recorded_latents_through_a_maps_hidden_units():
    from pcmusic.evaluation.probing import activations, probe
    model = M.init_model(KEY, M.ModelSpec(latent_dims=(8, 8, 4), hidden=16))
    p = probe(_tone(330.0, seconds=0.3), 16000, model=model, stride=10, inference=InferenceSpec(n_steps=20))
    r, f = 2, 48                                    # steps 0 and 10; 0.3 s padded to 48 frames
    shapes = {"g2": (r, 1, f // 4, 16), "g3": (r, 1, f // 4, 16), "top": None,
              "e2": (r, 1, f, 16), "e3": (r, 1, f // 4, 16), "e_top": None}
    for name, hidden_shape in shapes.items():
        found = p.activations(name)
        assert all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in found.values())
        if hidden_shape is not None:                # tiled top maps have no hidden layer
            assert found["hidden"].shape == hidden_shape, name
            assert np.all(np.abs(found["hidden"]) <= 1.0)     # tanh units
    out = p.activations("g3")["__call__"]
    z3 = p.trajectory["latents"]["upper"][1]
    expected = model.hierarchy(f).maps[1](model.params["pc"]["maps"][1], jnp.asarray(z3[1]))
    np.testing.assert_allclose(out[1], expected, atol=1e-5)  # record 1 through g3, replayed
    assert p.activations("top")["__call__"].shape == (r, 1, f // 16, 8)
    latents = jax.tree.map(jnp.asarray, p.trajectory["latents"])
    assert activations(model, latents, "g2")["hidden"].shape == shapes["g2"]
    with pytest.raises(PcmusicError, match="map_name"):
        p.activations("g5")
