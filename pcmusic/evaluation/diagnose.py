"""Where the hierarchy carries pitch: f0 errors of its levels' predictions, in cents.

Generation renders what a top predicts through every map
(`pcmusic.generation.sampling.sample_down`), so a model copies its corpus's pitches only
as far as that prediction is accurate. For
labelled clips, `f0_errors_cents` settles each batch as training does and compares
the note f0 with: the settled controls (what perception hears), g2(settled z2) (the
event level's prediction), the whole top-down prediction from the settled top, and the
one from the clip's intent, the top shot from the settled top
(`pcmusic.perception.intent_of`, what the intent bank keeps with
`train.intent_shoot_steps` and generation renders).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.errors import PcmusicError
from pcmusic.model import sensory
from pcmusic.perception import InferenceSpec, intent_of, settle

LEVELS = ("settled", "from_z2", "from_top", "from_intent")


def f0_errors_cents(model, audio, f0_hz, *, inference: InferenceSpec,
                    intent_shoot_steps: int = 200) -> dict:
    """|f0 error| in cents of every voiced frame, per level of prediction.

    model: an `AudioModel` with one voice. audio: float `[B, n_frames * hop]` at the
    model's sample rate, n_frames a multiple of `spec.frames_per_top`. f0_hz: float
    `[B, 1, n_frames]` the true f0 per control frame, NaN where silent (as
    `pcmusic.data.SyntheticBatch.f0_hz`). inference: settling as in training
    (`Config.inference`). intent_shoot_steps: shooting steps of "from_intent" (at
    inference.lr_shoot). Returns {level: float64 `[n_voiced_frames]`} for LEVELS.
    """
    spec = model.spec
    audio = jnp.asarray(audio, jnp.float32)
    f0_hz = np.asarray(f0_hz, np.float64)
    n_frames = audio.shape[-1] // spec.controls.hop
    if spec.controls.n_voices != 1 or f0_hz.shape != (audio.shape[0], 1, n_frames):
        raise PcmusicError(f"f0_errors_cents needs a one-voice model and f0_hz [B, 1, {n_frames}] "
                           f"for audio {tuple(audio.shape)}; got {spec.controls.n_voices} voices and "
                           f"f0_hz {f0_hz.shape}")
    predicted = _predict(model, audio, inference=inference,
                         intent_shoot_steps=max(1, int(intent_shoot_steps)))
    voiced = np.isfinite(f0_hz) & (f0_hz > 0)
    truth = np.log2(np.where(voiced, f0_hz, 1.0))
    return {name: np.abs(1200.0 * (np.asarray(p, np.float64) - truth))[voiced]
            for name, p in zip(LEVELS, predicted)}


@functools.partial(jax.jit, static_argnames=("inference", "intent_shoot_steps"))
def _predict(model, audio, *, inference, intent_shoot_steps):
    """log2 f0 `[B, 1, F]` of the settled controls, g2(settled z2), the top-down
    prediction from the settled top and from the shot intent."""
    result = settle(sensory.normalise(audio), inference=inference, model=model)
    c, (z2, _, top) = result.latents["controls"], result.latents["upper"]
    n_frames = c["log2_f0"].shape[-1]
    from_z2 = model.predict_controls(z2)
    from_top = model.predict_down(top, n_frames)[0]
    intent = intent_of(model, c, top, n_steps=intent_shoot_steps, learning_rate=inference.lr_shoot)
    from_intent = model.predict_down(intent, n_frames)[0]
    return c["log2_f0"], from_z2["log2_f0"], from_top["log2_f0"], from_intent["log2_f0"]


def summary(errors: dict) -> dict:
    """{level: {"median_cents", "p90_cents", "within_15_cents"}} of `f0_errors_cents`."""
    return {name: {"median_cents": float(np.median(e)), "p90_cents": float(np.percentile(e, 90)),
                   "within_15_cents": float(np.mean(e <= 15.0))} for name, e in errors.items()}
