"""Contracts checked with chex: a checkpoint restores every leaf of a model, jitted entry
points compile once per input shape, and pure DSP functions give one answer with and
without jit."""
import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pcmusic import perception
from pcmusic.dsp import synth
from pcmusic.model import ControlSpec, ModelSpec, SensorySpec, init_model

SR, HOP = 16000, 128


def small_spec() -> ModelSpec:
    """A hierarchy small enough to compile in seconds (one voice, 4 partials)."""
    return ModelSpec(controls=ControlSpec(n_harmonics=4, n_noise_bands=2),
                     sensory=SensorySpec(resolutions=(256,)), latent_dims=(4, 4, 2), hidden=8,
                     kernel_size=3)


def clip(f0_hz: float, n_samples: int) -> jax.Array:
    t = jnp.arange(n_samples, dtype=jnp.float32) / SR
    return (0.3 * jnp.sin(2 * jnp.pi * f0_hz * t))[None]


def test_checkpoint_round_trip_restores_every_leaf_and_a_difference_is_named(tmp_path):
    from pcmusic.training import checkpoint, config, step

    cfg = config.apply_overrides(config.default_config(), [
        "model.latent_dims=[4, 4, 2]", "model.hidden=8", "model.kernel_size=3",
        "model.controls.n_harmonics=4", "model.controls.n_noise_bands=2"])
    opt, enc_opt = step.optimizers(learning_rate=1e-3, encoder_learning_rate=1e-3)
    state = step.init_train_state(jax.random.key(0), cfg.model, optimizer=opt, encoder_optimizer=enc_opt)
    checkpoint.save(tmp_path, 1, state=state, config=cfg)
    model, restored_cfg = checkpoint.load_model(tmp_path)
    assert restored_cfg == cfg
    chex.assert_trees_all_close(model.params, step.model_of(state, cfg.model).params, rtol=0, atol=0)
    # a changed leaf fails the comparison by its path in the tree
    leaves = jax.tree_util.tree_leaves_with_path(model.params)
    path = next(p for p, x in leaves if jnp.size(x) > 1)
    changed = jax.tree_util.tree_map_with_path(lambda p, x: x + 1.0 if p == path else x, model.params)
    name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)   # chex's spelling
    with pytest.raises(AssertionError, match=f"differ in leaves '{name}'"):
        chex.assert_trees_all_close(changed, model.params)


def test_settle_batch_compiles_once_for_same_shaped_clips():
    """Equal specs built anew and other audio of the same shape reuse the compiled program."""
    def settle(f0_hz):
        cspec, sspec, prior, inference = perception.resolve_specs(
            cspec=ControlSpec(n_harmonics=4, n_noise_bands=2),
            sspec=SensorySpec(resolutions=(256,)),
            inference=perception.InferenceSpec(n_steps=2, octave_starts=(0.0,)))
        return perception.settle_batch(clip(f0_hz, 16 * HOP), cspec=cspec, sspec=sspec, prior=prior,
                                       inference=inference)

    before = perception.settle_batch._cache_size()
    first = settle(220.0)
    assert perception.settle_batch._cache_size() == before + 1
    second = settle(330.0)
    assert perception.settle_batch._cache_size() == before + 1
    assert not np.allclose(first.energy, second.energy)        # it did run on the new clip


def test_perceive_intents_traces_once_for_same_shaped_inputs():
    """Another model of the same spec (other params), a new equal InferenceSpec and other
    audio: no retrace. `perceive_intents` is `intents_of_batch` jitted with these static
    arguments; here the same jit of it, its traces counted by chex."""
    counted = jax.jit(chex.assert_max_traces(perception.intents_of_batch, n=1),
                      static_argnames=("inference", "intent_shoot_steps"))
    spec = small_spec()
    n_samples = spec.frames_per_top * HOP
    intents = []
    for seed, f0_hz in ((0, 220.0), (1, 330.0)):
        model = init_model(jax.random.key(seed), dataclasses.replace(spec))
        kw = {"inference": perception.InferenceSpec(n_steps=2, n_upper_steps=2, n_shoot_steps=2,
                                                    octave_starts=(0.0,)), "intent_shoot_steps": 2}
        intents.append(counted(model, clip(f0_hz, n_samples), **kw))
        chex.assert_shape(intents[-1], (1, spec.latent_dims[-1]))
    chex.assert_tree_all_finite(intents)
    assert not np.allclose(intents[0], intents[1])               # it ran on the new model
    with pytest.raises(AssertionError, match="traced"):          # a new shape is a new trace
        counted(model, clip(220.0, 2 * n_samples), **kw)


class SynthJitAndNoJit(chex.TestCase):
    """`pcmusic.dsp.synth` promises jit-compatible pure functions: the same render, jitted
    or not, equal to an analytic reference."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_harmonic_matches_the_analytic_tone(self):
        n_frames, f0_hz = 16, 440.0
        amplitudes = np.zeros((n_frames, 3), np.float32)
        amplitudes[:, 0], amplitudes[:, 2] = 0.5, 0.25                 # partials 1 and 3
        render = self.variant(functools.partial(synth.harmonic, sample_rate=SR, hop=HOP))
        out = render(jnp.full((n_frames,), f0_hz, jnp.float32), jnp.asarray(amplitudes))
        t = np.arange(n_frames * HOP) / SR
        expected = 0.5 * np.sin(2 * np.pi * f0_hz * t) + 0.25 * np.sin(2 * np.pi * 3 * f0_hz * t)
        chex.assert_shape(out, (n_frames * HOP,))
        np.testing.assert_allclose(np.asarray(out), expected, atol=2e-4)

    @chex.variants(with_jit=True, without_jit=True)
    def test_sinusoids_at_a_glide_follow_the_integrated_phase(self):
        n_frames = 16
        freqs = jnp.linspace(300.0, 600.0, n_frames, dtype=jnp.float32)[:, None]   # one partial
        render = self.variant(functools.partial(synth.sinusoids, sample_rate=SR, hop=HOP))
        out = np.asarray(render(freqs, jnp.full((n_frames, 1), 0.5, jnp.float32)))
        # frequency linear between frame starts: the phase is its exact integral, which the
        # trapezoid rule over the samples gives
        f = np.interp(np.arange(n_frames * HOP) / HOP, np.arange(n_frames), np.linspace(300, 600, n_frames))
        phase = np.concatenate([[0.0], np.cumsum((f[:-1] + f[1:]) / 2)]) / SR
        np.testing.assert_allclose(out, 0.5 * np.sin(2 * np.pi * phase), atol=2e-3)
