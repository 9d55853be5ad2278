"""The intent a model hears in a sound: the top whose prediction best explains it.

The settled top of a clip is a compromise of the whole energy, in which the residuals at
z2 and z3 carry part of what the clip is (its pitch, say); generation renders what a top
predicts through every map, with no residuals. The clip's intent is therefore the top
shot from its settled top (and from the intent mean): the one whose top-down prediction
g(top) best reproduces the settled controls, min_top E_up(c, g(top), top)
(`pcmusic.perception.inference.shoot_top`). Training banks these intents, generation
samples around them, and evaluation asks which intent the model hears in its own output.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from pcmusic.model import intents, sensory
from pcmusic.perception.inference import InferenceSpec, settle, shoot_top


def intent_of(model, controls: dict, top: jax.Array, *, n_steps: int, learning_rate: float) -> jax.Array:
    """The intent `[B, 1, d_top]` of settled clips (controls `[B, ...]`, settled top
    `[B, 1, d_top]`): the top itself for n_steps 0, else the top shot from it and from the
    intent mean for n_steps of Adam at learning_rate. No gradient flows through it."""
    if n_steps < 1:
        return top
    controls, top = jax.lax.stop_gradient(controls), jax.lax.stop_gradient(top)
    mean = jnp.broadcast_to(intents.intent_stats(model.params)[0], top.shape)
    shot = shoot_top(model, controls, [top, mean], n_steps=n_steps, learning_rate=learning_rate)[2]
    return jax.lax.stop_gradient(shot)


def intents_of_batch(model, audio: jax.Array, *, inference: InferenceSpec,
                     intent_shoot_steps: int) -> jax.Array:
    """The intents `[B, d_top]` a model hears in float32 audio `[B, n_frames * hop]` at its
    sample rate (any level; n_frames a multiple of `spec.frames_per_top`): settle as
    training does, then `intent_of` at inference.lr_shoot. NaN rows where inference
    diverged. Traceable; `perceive_intents` is its jitted form."""
    result = settle(sensory.normalise(audio), inference=inference, model=model)
    c, top = result.latents["controls"], result.latents["upper"][-1]
    intent = intent_of(model, c, top, n_steps=intent_shoot_steps, learning_rate=inference.lr_shoot)[:, 0]
    return jnp.where(result.diverged, jnp.nan, intent)


# One jitted function for every caller in a process: each jit wrapper holds its own cache of
# compiled programs, and each program holds memory mappings.
perceive_intents = jax.jit(intents_of_batch, static_argnames=("inference", "intent_shoot_steps"))
