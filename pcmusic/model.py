"""The audio hierarchy: learned levels above the oscillator controls.

Levels, top to bottom (DESIGN.md), with frame rates falling with height:

    top   [B, 1, d_top]               clip-level intent (prior N(top_mean, I))
      | g_top: dense, tiled over the phrase frames ("tiled"), or an MLP of the
      |        top and a code of each phrase frame's position ("positional")
    z3    [B, F / (r1 r2), d3]        phrase level
      | g3: linear interpolation (x r2), conv (tanh), conv
    z2    [B, F / r1, d2]             event level
      | g2: conv (tanh), linear heads, linear interpolation (x r1)
    controls (pcmusic.controls)       f0 in Hz (as log2), partial amplitudes, noise, stiffness
      | fixed oscillator bank + phi (pcmusic.sensory)
    sensory level

The part above the controls is a `pcmusic.pc.Hierarchy` whose level 0 is the
control state, so its energy, learning and probing come from the generic engine;
`pcmusic.perceive` adds the sensory term and the default structural prior. A
bottom-up amortised encoder (controls -> z2 -> z3 -> top, strided pooling and
convs) proposes the upper latents and is trained to predict the settled ones
(hybrid inference). Precisions are learnable per leaf (log-determinant included).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pcmusic import controls as controls_lib
from pcmusic import intents, pc, perception, priors, sensory, shooting
from pcmusic.errors import PcmusicError
from pcmusic.audio_maps import control_features, encoder_maps, generative_maps, n_control_features

TOP_MAPS = ("tiled", "positional")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Hyper-parameters of the audio hierarchy (hashable: static under jit).

    latent_dims: channels of (z2, z3, top). rate_factors: frame-rate ratios
    (controls : z2, z2 : z3). hidden: channels of the maps' hidden layers.
    control_log_precision: initial log precision of the control-level error for
    log2 f0 (octaves^-2); the other control leaves start at 0 (pi = 1).
    latent_log_precision: log precisions of the errors at z2, z3 and of the top prior.
    learn_latent_precision: learn them (False: they stay fixed). Fixed is the default:
    learned precisions above the controls collapse the hierarchy -- the settled tops
    barely vary across clips, the top precision grows to match, which makes moving the
    top dearer still, and z3 ends up carrying everything; an intent then means nothing.
    With a unit-variance top prior and dearer z2/z3 errors, the top must carry the
    clip-level information. weight_by_audibility: weigh each control's prediction
    error by how audible it is (`pcmusic.controls.audibility`; audible_db: the power,
    in dB re the reference level every clip is scaled to, at which a partial counts
    half). Without it the f0 of silent frames and the amplitudes of inaudible partials, which no sound
    determines, dominate the control-level error: its learned precision falls over
    training until predicting the controls from above is not worth moving the top,
    and the hierarchy collapses (every clip settles on the same top; measured at ~3000
    steps of the demo's configuration). latent_decay: a weak zero-mean prior
    0.5 * latent_decay * ||z||^2 on z2 and z3 (s.d. 10 at 0.01). Without it nothing fixes
    the latents' offset: it drifted (|z2| ~ 20 after 2500 demo-config steps), saturating
    the tanh that reads z2, which then no longer changed the controls, and the hierarchy
    collapsed (the same top for every clip). top_map: "tiled" (default) predicts one z3
    for every phrase frame of a clip, so a top can only say "this held sound" and the
    course of a melody lives in the z3 residuals; "positional" lets the top predict a
    different z3 per phrase frame (`pcmusic.audio_maps.phrase_code`), so one top can stand for a melody.
    """

    controls: controls_lib.ControlSpec = controls_lib.ControlSpec()
    sensory: sensory.SensorySpec = sensory.SensorySpec()
    prior: priors.ControlPrior = priors.ControlPrior()
    latent_dims: tuple[int, int, int] = (32, 32, 16)
    rate_factors: tuple[int, int] = (4, 4)
    hidden: int = 64
    kernel_size: int = 5
    control_log_precision: float = float(np.log(100.0))
    latent_log_precision: tuple[float, float, float] = (float(np.log(10.0)), float(np.log(10.0)), 0.0)
    learn_latent_precision: bool = False
    weight_by_audibility: bool = True
    audible_db: float = -40.0
    latent_decay: float = 0.01
    top_map: str = "tiled"

    def __post_init__(self):
        if self.top_map not in TOP_MAPS:
            raise PcmusicError(f"model.top_map must be one of {TOP_MAPS}; got {self.top_map!r}")
        if len(self.latent_dims) != 3 or len(self.rate_factors) != 2 or len(self.latent_log_precision) != 3:
            raise PcmusicError(f"latent_dims and latent_log_precision need 3 entries (z2, z3, top) and "
                               f"rate_factors 2; got {self.latent_dims}, {self.latent_log_precision}, "
                               f"{self.rate_factors}")
        if self.sensory.sample_rate != self.controls.sample_rate:
            raise PcmusicError(f"sensory sample_rate {self.sensory.sample_rate} != controls "
                               f"sample_rate {self.controls.sample_rate}")

    @property
    def frames_per_top(self) -> int:
        return self.rate_factors[0] * self.rate_factors[1]

    def pad_frames(self, n_frames: int) -> int:
        """Smallest multiple of r1 * r2 frames >= n_frames (levels need whole frames)."""
        k = self.frames_per_top
        return max(k, -(-n_frames // k) * k)

    def bind(self, params: dict) -> "BoundModel":
        return BoundModel(self, params)


def audibility_of_level(controls: dict, step, *, spec: ModelSpec) -> dict:
    """Precision weights of the control-level error (`ModelSpec.weight_by_audibility`):
    the audibility of `controls` at perception's reference level; `step` is unused."""
    del step
    reference_power = perception.REFERENCE_RMS ** 2   # every clip is scaled to this level
    return controls_lib.audibility(controls, spec.controls,
                                   half_power=reference_power * 10 ** (spec.audible_db / 10))


def _latent_decay(z: jax.Array, step, *, scale: float) -> jax.Array:
    """0.5 * scale * ||z||^2 summed over the batch (`ModelSpec.latent_decay`)."""
    del step
    return np.float32(0.5 * scale) * jnp.sum(jnp.square(z))


def upper_shapes(spec: ModelSpec, batch: int, n_frames: int) -> tuple:
    d2, d3, dt = spec.latent_dims
    r1, r2 = spec.rate_factors
    return ((batch, n_frames // r1, d2), (batch, n_frames // (r1 * r2), d3), (batch, 1, dt))


class BoundModel(NamedTuple):
    """A ModelSpec with its params: the functions perception and generation call."""

    spec: ModelSpec
    params: dict

    def hierarchy(self, n_frames: int, *, log_det: bool = True) -> pc.Hierarchy:
        """The pc.Hierarchy above the controls; log_det=False drops the -0.5 log pi terms
        (constants for the latents: the energy is then >= 0, 0 at perfect prediction
        and latent_decay 0)."""
        g, _ = generative_maps(self.spec, n_frames)
        weights = None
        if self.spec.weight_by_audibility:
            weights = (functools.partial(audibility_of_level, spec=self.spec), None, None, None)
        decay = None
        if self.spec.latent_decay > 0:
            prior = functools.partial(_latent_decay, scale=self.spec.latent_decay)
            decay = (None, prior, prior, None)
        return pc.Hierarchy(maps=g, learn_precision=log_det, top_prior=True, error_weights=weights,
                            priors=decay)

    def encoder(self) -> pc.Encoder:
        return pc.Encoder(maps=tuple(m.apply for m in encoder_maps(
            self.spec, n_control_features(self.spec.controls))))

    def init_upper(self, controls: dict, *, n_steps: int = 0, learning_rate: float = 0.01,
                   top: jax.Array | None = None) -> tuple:
        """Initial (z2, z3, top) for controls `[B, ...]`: the amortised encoder's guess, or
        with n_steps > 0 the top found by shooting (below) with z2, z3 its predictions.

        Shooting (`pcmusic.shooting.shoot_upper`) starts from the encoder's top and from
        the intent mean (and from `top` `[B, 1, d_top]` too where given).
        """
        levels = pc.encode(self.encoder(), self.params["encoder"], control_features(controls))
        if n_steps < 1:
            return tuple(levels[1:])
        return shooting.shoot_upper(self, controls, levels[-1], n_steps=n_steps,
                                    learning_rate=learning_rate, top=top)

    def upper_energy(self, controls: dict, upper: tuple, *, step=0, log_det: bool = True):
        """pc energy of [controls, z2, z3, top]: (E, aux) with per-level energies [4]."""
        n_frames = controls["log2_f0"].shape[-1]
        return pc.energy(self.hierarchy(n_frames, log_det=log_det), self.params["pc"],
                         [controls, *upper], step=step)

    def settle_upper(self, controls: dict, upper: tuple, *, n_steps: int, learning_rate: float) -> tuple:
        """(z2, z3, top) settled with the controls clamped: Adam on the upper energy only."""
        if n_steps < 1:
            return tuple(upper)
        n_frames = controls["log2_f0"].shape[-1]
        result = pc.settle(self.hierarchy(n_frames), self.params["pc"], [controls, *upper],
                           optimizer=optax.adam(learning_rate), n_steps=n_steps,
                           clamp=(True, False, False, False))
        return tuple(result.latents[1:])

    def predict_down(self, top: jax.Array, n_frames: int) -> tuple:
        """(controls, z2, z3, top) predicted top-down from `top` `[B, 1, d_top]`."""
        return pc.predict_top_down(self.hierarchy(n_frames), self.params["pc"], top)


class AudioModel(NamedTuple):
    """A trained (or initialised) audio model: static spec plus params pytree."""

    spec: ModelSpec
    params: dict

    @property
    def static(self) -> ModelSpec:
        return self.spec

    def bind(self) -> BoundModel:
        return BoundModel(self.spec, self.params)


def init_model(key: jax.Array, spec: ModelSpec) -> AudioModel:
    """Fresh params for `spec`: {"pc": pc params (maps, log_precision, top_mean), "encoder": ...}."""
    k_maps, k_enc = jax.random.split(key)
    n_frames = spec.frames_per_top
    _, init_g = generative_maps(spec, n_frames)
    example = [controls_lib.zeros(spec.controls, 1, n_frames),
               *[jnp.zeros(s, jnp.float32) for s in upper_shapes(spec, 1, n_frames)]]
    hier = pc.Hierarchy(maps=generative_maps(spec, n_frames)[0], learn_precision=True)
    params = pc.init_params(hier, init_g(k_maps), example)
    log_precision = list(params["log_precision"])
    log_precision[0] = dict(log_precision[0], log2_f0=jnp.float32(spec.control_log_precision))
    for level, value in enumerate(spec.latent_log_precision, start=1):
        log_precision[level] = jax.tree.map(lambda x, v=value: jnp.full_like(x, v), log_precision[level])
    params["log_precision"] = tuple(log_precision)
    enc = encoder_maps(spec, n_control_features(spec.controls))
    enc_params = tuple(m.init(k) for m, k in zip(enc, jax.random.split(k_enc, len(enc))))
    d_top = spec.latent_dims[-1]
    intent = intents.init_intent_params(d_top, spec.latent_log_precision)
    return AudioModel(spec, {"pc": params, "encoder": enc_params, "intent": intent})


def n_params(model: AudioModel) -> int:
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(model.params)))

