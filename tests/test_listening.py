"""Listening: generation hears its own output with its own perception and corrects its action."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pcmusic.model import controls as C
from pcmusic import generation as G
from pcmusic.generation import listening as L
from pcmusic import model as M
from pcmusic import perception
from pcmusic.errors import PcmusicError

SPEC = M.ModelSpec(controls=C.ControlSpec(n_harmonics=12, n_noise_bands=8), latent_dims=(8, 8, 4),
                   hidden=16)
FAST = perception.InferenceSpec(n_steps=20, n_upper_steps=5, n_shoot_steps=5)


def _biased_ears(pred, bias, scale=None):
    """A stand-in perception, h(a) = a + bias (times `scale` per unit: how much of a unit is
    heard); energy 0.5 ||h - pred||^2 per sample."""
    scale = scale or {k: 1.0 for k in pred}

    def hear(action):
        heard = {k: scale[k] * action[k] + bias[k] for k in action}
        e = sum(0.5 * jnp.sum(jnp.square(heard[k] - pred[k]), axis=tuple(range(1, pred[k].ndim)))
                for k in pred)
        return heard, e
    return hear


def test_listening_converges_to_the_action_that_is_heard_as_predicted():
    keys = jax.random.split(jax.random.key(0), 3)
    pred = {"a": jax.random.normal(keys[0], (3, 5)), "b": jax.random.normal(keys[1], (3, 2, 4))}
    bias = {"a": jnp.full((3, 5), 0.4), "b": 0.3 * jax.random.normal(keys[2], (3, 2, 4))}
    ones = jax.tree.map(jnp.ones_like, pred)
    out = L.listen_loop(pred, pred, ones, _biased_ears(pred, bias), steps=8, step_size=0.7)
    for k in pred:   # the fixed point a = pred - bias: what is heard is what was predicted
        np.testing.assert_allclose(out.action[k], pred[k] - bias[k], atol=1e-3)
        np.testing.assert_allclose(out.heard[k], pred[k], atol=1e-3)
    assert out.energy.shape == (3, 9) and out.accepted.shape == (3, 8) and out.accepted.all()
    assert np.all(np.diff(out.energy, axis=1) <= 0) and np.all(out.energy[:, -1] < 1e-5 * out.energy[:, 0])


def test_listening_leaves_inaudible_units_and_rejects_steps_that_do_not_help():
    pred = {"a": jnp.zeros((2, 4))}
    weights = {"a": jnp.array([[1.0, 1.0, 0.0, 0.0]] * 2)}
    # Units 2, 3 are not heard at all (h ignores them): moving them cannot help.
    ears = _biased_ears(pred, {"a": jnp.full((2, 4), 0.5)}, scale={"a": jnp.array([[1.0, 1.0, 0.0, 0.0]] * 2)})
    out = L.listen_loop(pred, pred, weights, ears, steps=5, step_size=0.5)
    np.testing.assert_allclose(out.action["a"][:, 2:], 0.0)
    np.testing.assert_allclose(out.action["a"][:, :2], -0.5 * (1 - 0.5 ** 5), atol=1e-6)

    def deaf(action):   # perception that diverges: every step is rejected, the action kept
        heard, e = ears(action)
        moved = jnp.any(action["a"] != 0.0)
        return heard, jnp.where(moved, jnp.nan, e)
    out = L.listen_loop(pred, pred, weights, deaf, steps=3, step_size=0.5)
    assert not out.accepted.any()
    np.testing.assert_array_equal(out.action["a"], 0.0)
    assert np.all(out.energy == out.energy[:, :1])


def test_listening_spec_rejects_bad_values():
    with pytest.raises(PcmusicError, match="step_size"):
        L.Listening(step_size=0.0)
    with pytest.raises(PcmusicError, match="steps"):
        L.Listening(steps=-1)


@pytest.fixture(scope="module")
def model():
    return M.init_model(jax.random.key(0), SPEC)


def test_generate_listens_with_energy_that_never_rises(model):
    listen = L.Listening(steps=2, inference=FAST)
    audio, trace = G.generate(model, jax.random.key(2), n=2, seconds=0.2, refine_steps=4, listen=listen)
    e = trace.listened.energy
    assert e.shape == (2, 3) and np.all(np.isfinite(e)) and np.all(np.diff(e, axis=1) <= 0)
    # the sound returned is the render of the action returned, with the sample's own noise
    _, again = G.generate(model, jax.random.key(2), n=2, seconds=0.2, refine_steps=4)
    assert trace.listened.accepted.shape == (2, 2)
    assert again.listened is None
    np.testing.assert_array_equal(trace.unrefined_audio, again.unrefined_audio)


def _generated_from_seed_2(model=None):
    """Generation from seed 2, refined and listened to (the CLI's path), as arrays; run in
    this process and in a fresh one by the determinism test."""
    model = M.init_model(jax.random.key(0), SPEC) if model is None else model
    audio, trace = G.generate(model, jax.random.key(2), n=2, seconds=0.2, refine_steps=4,
                              listen=L.Listening(steps=2, inference=FAST))
    return {"audio": audio, "unrefined_audio": trace.unrefined_audio, "energy": trace.energy,
            "listen_energy": trace.listened.energy, "log2_f0": trace.controls["log2_f0"]}


def test_a_seed_generates_the_same_sound_in_a_fresh_process(model, fresh_process):
    """`pcmusic generate --seed` promises the same sounds on every run: a new process (other
    XLA flags, so its own compilation; another hash seed) must reproduce them bit for bit."""
    here = _generated_from_seed_2(model)
    there = fresh_process("tests.test_listening", "_generated_from_seed_2")
    assert set(there) == set(here)
    for name, value in here.items():
        np.testing.assert_array_equal(there[name], np.asarray(value), err_msg=name)
    assert np.all(np.isfinite(here["audio"])) and np.abs(here["audio"]).max() > 0


def test_listening_hears_amplitudes_at_the_level_of_the_sound(model):
    """Perception hears every clip at one level; listening shifts what it heard back to the
    level of the sound, so a room 6 dB quieter is heard 0.69 nepers down (and the action's
    step makes up for it), the same pitch."""
    intent = G.sample_intent(model, jax.random.key(4), 2)
    n_frames = SPEC.pad_frames(20)
    c, z2, z3 = G.sample_down(model, intent, jax.random.key(5), n_frames=n_frames, temperature=0.0)
    keys = jax.random.split(jax.random.key(6), 4)
    heard = {}
    for gain in (0.0, -6.0):
        out = L.listen(model, c, (z2, z3), intent, keys[:2], keys[2:], hearing=G.Hearing(gain_db=gain),
                       listening=L.Listening(steps=0, inference=FAST))
        assert out.energy.shape == (2, 1) and out.accepted.shape == (2, 0)
        heard[gain] = out.heard
    for k in ("log_amp", "log_noise"):
        np.testing.assert_allclose(heard[-6.0][k] - heard[0.0][k], -0.6908, atol=2e-3)
    np.testing.assert_allclose(heard[-6.0]["log2_f0"], heard[0.0]["log2_f0"], atol=1e-4)
    step = L.corrective_step(c, heard[-6.0], c, {k: jnp.ones_like(v) for k, v in c.items()},
                             jnp.ones(2))
    np.testing.assert_allclose(step["log_amp"] - (c["log_amp"] - (heard[0.0]["log_amp"] - c["log_amp"])),
                               0.6908, atol=2e-3)
