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
import numpy as np

from pcmusic import checks
from pcmusic.dsp import audio as audio_lib
from pcmusic.errors import PcmusicError
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


BYTES_PER_SAMPLE = 4096   # working memory per audio sample while settling one whole clip


def perceive_intent(model, audio, sample_rate: int, *, inference: InferenceSpec,
                    intent_shoot_steps: int):
    """The intent `[1, 1, d_top]` (numpy float32) a model hears in one clip, in the shape
    `pcmusic.generate(intent=...)` clamps.

    audio: float mono `[n_samples]` in [-1, 1] at `sample_rate` Hz, resampled to the
    model's rate and padded with silence to whole top-level frames; the whole clip is
    settled at once (one top per clip). inference / intent_shoot_steps: as the run that
    trained the model settles and shoots (its `[inference]` and `train.intent_shoot_steps`),
    so the intent is the one training would bank for this clip (`intents_of_batch`).
    Raises PcmusicError where inference diverges."""
    spec = model.spec
    audio = audio_lib.validate(audio, sample_rate)
    if sample_rate != spec.sample_rate:
        audio = audio_lib.resample(audio, sample_rate, spec.sample_rate)
    n_samples = spec.pad_frames(spec.controls.n_frames(audio.shape[0])) * spec.controls.hop
    checks.check_memory(n_samples * BYTES_PER_SAMPLE, f"the intent of {audio.shape[0] / spec.sample_rate:g} s",
                        "a shorter clip")
    clip = np.zeros((1, n_samples), np.float32)
    clip[0, :audio.shape[0]] = audio
    intent = np.asarray(perceive_intents(model, jnp.asarray(clip), inference=inference,
                                         intent_shoot_steps=intent_shoot_steps))
    if not np.all(np.isfinite(intent)):
        raise PcmusicError("perceiving the intent diverged (NaN/Inf energy): the model's params or "
                           "its inference settings do not fit this sound")
    return intent[:, None, :]
