"""The audio hierarchy: learned levels above the oscillator controls, and its one model type.

Levels, top to bottom, with frame rates falling with height:

    top   [B, 1, d_top]               clip-level intent (prior N(top_mean, 1/pi_top))
      | g_top: dense, tiled over the phrase frames ("tiled"), or an MLP of the
      |        top and a code of each phrase frame's position ("positional")
    z3    [B, F / (r1 r2), d3]        phrase level
      | g3: linear interpolation (x r2), conv (tanh), conv
    z2    [B, F / r1, d2]             event level
      | g2: conv (tanh), linear heads, linear interpolation (x r1)
    controls (`pcmusic.model.controls`) f0 in Hz (as log2), partial amplitudes, noise, stiffness
      | fixed oscillator bank + phi (`pcmusic.model.sensory`)
    sensory level

The part above the controls is a `pcmusic.pc.Hierarchy` whose level 0 is the control
state, so its energy, learning and probing come from the generic engine:

    E_up = sum_k 0.5 pi_c,k w_k (c_k - g2(z2)_k)^2 - 0.5 log pi_c,k         control level
         + 0.5 pi_2 ||z2 - g3(z3)||^2 + 0.5 pi_3 ||z3 - g_top(top)||^2    (+ log-dets)
         + 0.5 pi_top ||top - top_mean||^2
         + 0.5 lambda (||z2||^2 + ||z3||^2)                                latent decay

w_k is the audibility of control k (`pcmusic.model.controls.audibility` at the sensory
reference level, half weight at `audible_db`): f0 of a silent frame and the amplitude
of an inaudible partial are not determined by any sound, so they do not set the
control-level precision. The precisions above the controls are fixed; the control
precisions and top_mean are learned. A bottom-up amortised encoder (controls -> z2 ->
z3 -> top) proposes the upper latents (hybrid inference).

The maps are flax modules (`pcmusic.model.maps`); `init_model(key, spec, maps=UserMaps(...))`
puts the user's own in place of any of them.

`AudioModel` (spec, params, maps) is a pytree whose params are the leaves and whose spec
and user maps are static, so it passes through `jax.jit` and `jax.vmap` as it is.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pcmusic import pc
from pcmusic.errors import PcmusicError
from pcmusic.model import controls as controls_lib
from pcmusic.model import intents, priors, sensory
from pcmusic.model.maps import UserMaps, control_features, encoder_maps, generative_maps

TOP_MAPS = ("tiled", "positional")
LEVEL_NAMES = ("controls", "z2", "z3", "top")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Hyper-parameters of the audio hierarchy (hashable: static under jit).

    controls / sensory / prior: the control level, the sensory level and the
      structural prior; `controls.sample_rate` is the model's one sample rate.
    latent_dims: channels of (z2, z3, top). rate_factors: frame-rate ratios
      (controls : z2, z2 : z3). hidden: channels of the maps' hidden layers;
      kernel_size: their convolutions' width in frames.
    control_log_precision: initial log precision of the control-level error for log2 f0
      (octaves^-2); the other control leaves start at 0 (pi = 1).
    latent_log_precision: fixed log precisions of the errors at z2, z3 and of the top prior.
    audible_db: power, in dB re the sensory reference level, at which a partial's
      prediction error counts half (the audibility weight w above).
    latent_decay: lambda of the zero-mean prior 0.5 lambda ||z||^2 on z2 and z3
      (s.d. 10 at 0.01): it fixes the latents' offset, which the energy leaves free.
    top_map: "tiled" predicts one z3 for every phrase frame of a clip (a top stands for
      a held sound); "positional" predicts a different z3 per phrase frame from the top
      and a code of the frame's position (`pcmusic.model.maps.phrase_code`), so one top
      can stand for a melody.
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
        object.__setattr__(self, "sensory", sensory.resolve(self.sensory, self.controls.sample_rate))

    @property
    def sample_rate(self) -> int:
        """Hz of everything the model hears and renders."""
        return self.controls.sample_rate

    @property
    def frames_per_top(self) -> int:
        return self.rate_factors[0] * self.rate_factors[1]

    def pad_frames(self, n_frames: int) -> int:
        """Smallest multiple of r1 * r2 frames >= n_frames (levels need whole frames)."""
        k = self.frames_per_top
        return max(k, -(-n_frames // k) * k)

    def upper_shapes(self, batch: int, n_frames: int) -> tuple:
        """Shapes of (z2, z3, top) for `batch` clips of `n_frames` control frames."""
        d2, d3, dt = self.latent_dims
        r1, r2 = self.rate_factors
        return ((batch, n_frames // r1, d2), (batch, n_frames // (r1 * r2), d3), (batch, 1, dt))


def _latent_decay(z: jax.Array, step, *, scale: float) -> jax.Array:
    """0.5 * scale * ||z||^2 summed over the batch."""
    del step
    return np.float32(0.5 * scale) * jnp.sum(jnp.square(z))


@functools.partial(jax.tree_util.register_dataclass, data_fields=["params"], meta_fields=["spec", "maps"])
@dataclasses.dataclass(frozen=True)
class AudioModel:
    """A model: its static `spec` (`ModelSpec`), its `params` pytree
    {"pc": maps, log_precision, top_mean; "encoder": amortised encoder; "intent": what
    it met in training (`pcmusic.model.intents`)}, and the user's maps (`UserMaps`,
    static; None: the built-in ones). The params of a map are a plain nested dict.

    Controls are dicts of arrays with a leading batch axis B (`pcmusic.model.controls`);
    z2, z3, top are float32 `[B, frames, channels]` (`ModelSpec.upper_shapes`).
    """

    spec: ModelSpec
    params: dict
    maps: UserMaps | None = None

    def hierarchy(self, n_frames: int, *, log_det: bool = True) -> pc.Hierarchy:
        """The `pc.Hierarchy` above the controls for clips of `n_frames` control frames;
        log_det=False drops the -0.5 log pi terms (constants for the latents: the energy
        is then >= 0, and 0 at a perfect prediction with latent_decay 0)."""
        g, _ = generative_maps(self.spec, n_frames, self.maps)
        prior = functools.partial(_latent_decay, scale=self.spec.latent_decay)
        decay = (None, prior, prior, None) if self.spec.latent_decay > 0 else None
        weights = (lambda c, step: self.audibility(c), None, None, None)
        return pc.Hierarchy(maps=g, learn_precision=log_det, top_prior=True, error_weights=weights,
                            priors=decay)

    def audibility(self, controls: dict) -> dict:
        """Weights of the control-level error: the audibility of `controls` at the
        sensory reference level (`pcmusic.model.controls.audibility`)."""
        reference_power = sensory.REFERENCE_RMS ** 2
        return controls_lib.audibility(controls, self.spec.controls,
                                       half_power=reference_power * 10 ** (self.spec.audible_db / 10))

    def encoder(self) -> pc.Encoder:
        """The amortised encoder (controls -> z2 -> z3 -> top) as a `pc.Encoder`."""
        return pc.Encoder(maps=encoder_maps(self.spec, self.maps))

    def encode_upper(self, controls: dict) -> tuple:
        """The amortised guess of (z2, z3, top) for controls `[B, ...]`."""
        levels = pc.encode(self.encoder(), self.params["encoder"], control_features(controls))
        return tuple(levels[1:])

    def upper_energy(self, controls: dict, upper: tuple, *, step=0, log_det: bool = True):
        """The energy E_up of [controls, z2, z3, top] summed over the batch: (E, aux),
        aux["energies"] per level `[4]` and aux["errors"] per level (`pc.energy`)."""
        n_frames = controls["log2_f0"].shape[-1]
        return pc.energy(self.hierarchy(n_frames, log_det=log_det), self.params["pc"],
                         [controls, *upper], step=step)

    def settle_upper(self, controls: dict, upper: tuple, *, n_steps: int, learning_rate: float) -> tuple:
        """(z2, z3, top) settled with the controls clamped: n_steps of Adam on E_up."""
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

    def predict(self, level: int, above, n_frames: int):
        """The prediction of level `level` (0 controls, 1 z2, 2 z3) from the level above
        it, `above`, for clips of `n_frames` control frames."""
        maps = self.hierarchy(n_frames).maps
        return maps[level](self.params["pc"]["maps"][level], above)

    def predict_controls(self, z2: jax.Array) -> dict:
        """g2(z2): the controls `[B, ...]` predicted by z2 `[B, F / r1, d2]`."""
        return self.predict(0, z2, z2.shape[1] * self.spec.rate_factors[0])

    @property
    def n_params(self) -> int:
        """Number of scalars in params."""
        return int(sum(math.prod(x.shape) for x in jax.tree.leaves(self.params)))


def init_model(key: jax.Array, spec: ModelSpec, *, maps: UserMaps | dict | None = None) -> AudioModel:
    """A fresh model for `spec`: maps initialised from `key`, control log precisions at
    `spec.control_log_precision` (log2 f0) and 0, upper ones at `spec.latent_log_precision`,
    an encoder, and empty intent statistics.

    maps: the user's own maps in place of built-in ones, a `UserMaps` or a dict with its
    keys (g2, g3, top, encoder): flax modules, each mapping one level's array to
    another's (shapes in `UserMaps`); checked on an example clip here. Keep the model
    (or the UserMaps) to use them again: training (`pcmusic.training.train_step(...,
    maps=)`) and `load_model(..., maps=)` need the same object.
    """
    user = UserMaps.of(maps)
    k_maps, k_enc = jax.random.split(key)
    n_frames = spec.frames_per_top
    g, init_g = generative_maps(spec, n_frames, user)
    example = [controls_lib.zeros(spec.controls, 1, n_frames),
               *[jnp.zeros(s, jnp.float32) for s in spec.upper_shapes(1, n_frames)]]
    params = pc.init_params(pc.Hierarchy(maps=g, learn_precision=True), init_g(k_maps), example)
    log_precision = list(params["log_precision"])
    log_precision[0] = dict(log_precision[0], log2_f0=jnp.float32(spec.control_log_precision))
    for level, value in enumerate(spec.latent_log_precision, start=1):
        log_precision[level] = jax.tree.map(lambda x, v=value: jnp.full_like(x, v), log_precision[level])
    params["log_precision"] = tuple(log_precision)
    enc = encoder_maps(spec, user)
    enc_params = tuple(m.init(k) for m, k in zip(enc, jax.random.split(k_enc, len(enc))))
    intent = intents.init_intent_params(spec.latent_dims[-1], spec.latent_log_precision)
    return AudioModel(spec, {"pc": params, "encoder": enc_params, "intent": intent}, user)
