"""The audio hierarchy's neural maps, top-down (g2, g3, g_top) and bottom-up (the
amortised encoder), as flax nnx modules joined to the PC engine by `pcmusic.pc.maps.from_flax`.

Every map is a module from one level's array to another's, batch first:

    g2     z2 [B, F / r1, d2]            -> control features [B, F, n_control_outputs]
    g3     z3 [B, F / (r1 r2), d3]       -> z2 [B, F / r1, d2]
    top    top tiled [B, F / (r1 r2), dt] -> z3 [B, F / (r1 r2), d3]
    e2     control_features [B, F, n_control_features] -> z2
    e3     z2 -> z3
    e_top  z3 -> top [B, 1, dt]

F control frames (a multiple of r1 r2), (r1, r2) = `ModelSpec.rate_factors`, (d2, d3, dt)
= `ModelSpec.latent_dims`. g2's features are the controls less fixed offsets, one channel
per control value in the order of `control_outputs` (`controls_of_features`); the top map
sees the clip's top repeated over its phrase frames, so it may give each frame its own z3
(`phrase_code`). `UserMaps` replaces any of them with the user's own flax modules.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pcmusic.errors import PcmusicError
from pcmusic.model import controls as controls_lib
from pcmusic.pc import maps

F0_CENTRE_HZ = 220.0   # heads start predicting this f0 (log2 offset 0)
AMP_BIAS = -6.0        # and this log amplitude (-52 dB): quiet until learned
PHRASE_PERIODS = (2, 4, 8, 16, 32)   # phrase frames; sin and cos of each: `phrase_code`

# N(0, 1 / fan_in) weights (fan_in = inputs x kernel width), zero biases.
_KERNEL_INIT = nnx.initializers.variance_scaling(1.0, "fan_in", "normal")
_BIAS_INIT = nnx.initializers.zeros_init()


# ---------------------------------------------------------------- fixed operations

def upsample_linear(x: jax.Array, factor: int) -> jax.Array:
    """Linear interpolation in time: `[B, F, C]` -> `[B, F * factor, C]`.

    Fine frame t sits at coarse position t / factor (frame n of every level starts at
    the same sample), the last coarse frame is held. A fixed interpolation keeps the
    predicted controls smooth: a learned transposed convolution leaves a period-
    `factor` ripple (checkerboard) that the structural f0 prior punishes hard.
    """
    n = x.shape[1]
    pos = np.arange(n * factor, dtype=np.float64) / factor
    lo = np.minimum(np.floor(pos).astype(np.int32), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = jnp.asarray((pos - lo).astype(np.float32)).reshape(1, -1, 1)
    return x[:, lo, :] * (1.0 - frac) + x[:, hi, :] * frac


def pool(x: jax.Array, factor: int) -> jax.Array:
    """Mean over non-overlapping windows of `factor` frames: [B, F, C] -> [B, F / factor, C]."""
    b, f, ch = x.shape
    return jnp.mean(x.reshape(b, f // factor, factor, ch), axis=2)


def phrase_code(n_phrase_frames: int) -> np.ndarray:
    """Position code of the phrase frames of a clip: float32 `[1, n, 2 * len(PHRASE_PERIODS)]`,
    sin and cos of 2 pi k / P for frame k and each period P (in phrase frames, ~8 Hz by
    default). Periodic, so a clip longer than any met in training repeats its phrase."""
    k = np.arange(n_phrase_frames, dtype=np.float64)[:, None] / np.asarray(PHRASE_PERIODS)
    code = np.concatenate([np.sin(2 * np.pi * k), np.cos(2 * np.pi * k)], axis=-1)
    return code[None].astype(np.float32)


def with_phrase_code(x: jax.Array) -> jax.Array:
    """`[B, n, C]` -> `[B, n, C + 2 * len(PHRASE_PERIODS)]`: each frame with its position code."""
    code = jnp.asarray(phrase_code(x.shape[1]))
    return jnp.concatenate([x, jnp.broadcast_to(code, (x.shape[0], *code.shape[1:]))], axis=-1)


def control_outputs(cspec: controls_lib.ControlSpec) -> dict[str, int]:
    """Channels of g2's features per control, in their order: log2_f0 (V), log_amp
    (V x H, voice-major), log_noise (NB), and log_inharm (V) if inharmonic."""
    sizes = {"log2_f0": cspec.n_voices, "log_amp": cspec.n_voices * cspec.n_harmonics,
             "log_noise": cspec.n_noise_bands}
    if cspec.inharmonic:
        sizes["log_inharm"] = cspec.n_voices
    return sizes


def n_control_outputs(cspec: controls_lib.ControlSpec) -> int:
    """Channels of g2's output features for a control spec."""
    return sum(control_outputs(cspec).values())


def controls_of_features(features: jax.Array, spec) -> dict:
    """g2's features `[B, F, n_control_outputs]` as controls (`pcmusic.model.controls`).

    log2_f0 = f + log2(F0_CENTRE_HZ), log_amp and log_noise = f + AMP_BIAS (so zero
    features predict a quiet 220 Hz), log_inharm = the mean over frames of f plus the
    prior's mean: the offsets start every map at a plausible sound.
    """
    c = spec.controls
    sizes = control_outputs(c)
    cuts = np.cumsum(list(sizes.values()))[:-1]
    out = dict(zip(sizes, jnp.split(features, cuts, axis=-1)))
    b, f = features.shape[:2]
    pred = {"log2_f0": jnp.moveaxis(out["log2_f0"], -1, 1) + np.float32(np.log2(F0_CENTRE_HZ)),
            "log_amp": jnp.moveaxis(out["log_amp"].reshape(b, f, c.n_voices, c.n_harmonics), 2, 1)
            + np.float32(AMP_BIAS),
            "log_noise": out["log_noise"] + np.float32(AMP_BIAS)}
    if c.inharmonic:
        pred["log_inharm"] = jnp.mean(out["log_inharm"], axis=1) + np.float32(spec.prior.inharm_mean)
    return pred


def control_features(controls: dict) -> jax.Array:
    """Controls as one frame-wise feature array `[B, F, C]` for the encoder."""
    b, v, f = controls["log2_f0"].shape
    parts = [jnp.moveaxis(controls["log2_f0"], 1, 2) - np.float32(np.log2(F0_CENTRE_HZ)),
             jnp.moveaxis(controls["log_amp"], 1, 2).reshape(b, f, -1) * 0.1,
             controls["log_noise"] * 0.1]
    return jnp.concatenate(parts, axis=-1)


def n_control_features(c: controls_lib.ControlSpec) -> int:
    """Channels of `control_features` for a control spec."""
    return c.n_voices + c.n_voices * c.n_harmonics + c.n_noise_bands


# ---------------------------------------------------------------- the built-in modules

def _conv(n_in: int, n_out: int, kernel_size: int, rngs: nnx.Rngs) -> nnx.Conv:
    """'Same'-padded 1-D convolution over frames, `[B, F, n_in]` -> `[B, F, n_out]`."""
    return nnx.Conv(n_in, n_out, kernel_size=(kernel_size,), padding="SAME",
                    kernel_init=_KERNEL_INIT, bias_init=_BIAS_INIT, rngs=rngs)


def _linear(n_in: int, n_out: int, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(n_in, n_out, kernel_init=_KERNEL_INIT, bias_init=_BIAS_INIT, rngs=rngs)


class ControlsMap(nnx.Module):
    """g2: `[B, n, n_in]` -> `[B, n * factor, n_out]`: a tanh convolution, a linear
    head, then linear interpolation to the control rate (`upsample_linear`)."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, kernel_size: int, factor: int,
                 rngs: nnx.Rngs):
        self.trunk = _conv(n_in, n_hidden, kernel_size, rngs)
        self.head = _linear(n_hidden, n_out, rngs)
        self.factor = factor

    def hidden(self, z: jax.Array) -> jax.Array:
        return jnp.tanh(self.trunk(z))

    def __call__(self, z: jax.Array) -> jax.Array:
        return upsample_linear(self.head(self.hidden(z)), self.factor)


class UpsamplingMap(nnx.Module):
    """g3: `[B, n, n_in]` -> `[B, n * factor, n_out]`: linear interpolation, then a tanh
    convolution and a linear one."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, kernel_size: int, factor: int,
                 rngs: nnx.Rngs):
        self.trunk = _conv(n_in, n_hidden, kernel_size, rngs)
        self.out = _conv(n_hidden, n_out, kernel_size, rngs)
        self.factor = factor

    def hidden(self, z: jax.Array) -> jax.Array:
        return jnp.tanh(self.trunk(upsample_linear(z, self.factor)))

    def __call__(self, z: jax.Array) -> jax.Array:
        return self.out(self.hidden(z))


class PhraseMap(nnx.Module):
    """g_top on the tiled top `[B, n, n_in]` -> `[B, n, n_out]`: one linear map of the
    top for every frame, or (positional) a tanh layer of the top and each frame's
    `phrase_code`, then a linear one."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, positional: bool, rngs: nnx.Rngs):
        self.positional = positional
        if positional:
            self.trunk = _linear(n_in + 2 * len(PHRASE_PERIODS), n_hidden, rngs)
        self.out = _linear(n_hidden if positional else n_in, n_out, rngs)

    def hidden(self, top: jax.Array) -> jax.Array:
        return jnp.tanh(self.trunk(with_phrase_code(top)))

    def __call__(self, top: jax.Array) -> jax.Array:
        return self.out(self.hidden(top) if self.positional else top)


class PoolingEncoder(nnx.Module):
    """e2, e3: `[B, n, n_in]` -> `[B, n / factor, n_out]`: a tanh convolution, mean
    pooling over `factor` frames (`pool`), a linear map."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, kernel_size: int, factor: int,
                 rngs: nnx.Rngs):
        self.trunk = _conv(n_in, n_hidden, kernel_size, rngs)
        self.out = _linear(n_hidden, n_out, rngs)
        self.factor = factor

    def hidden(self, x: jax.Array) -> jax.Array:
        return jnp.tanh(self.trunk(x))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(pool(self.hidden(x), self.factor))


class TopEncoder(nnx.Module):
    """e_top: z3 `[B, n, n_in]` -> top `[B, 1, n_out]`: the mean over frames, then a
    linear map; or (positional) a tanh layer of each frame and its `phrase_code` (so
    the guess can tell melodies apart), the mean, a linear map."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, positional: bool, rngs: nnx.Rngs):
        self.positional = positional
        if positional:
            self.trunk = _linear(n_in + 2 * len(PHRASE_PERIODS), n_hidden, rngs)
        self.out = _linear(n_hidden if positional else n_in, n_out, rngs)

    def hidden(self, z: jax.Array) -> jax.Array:
        return jnp.tanh(self.trunk(with_phrase_code(z)))

    def __call__(self, z: jax.Array) -> jax.Array:
        h = self.hidden(z) if self.positional else z
        return self.out(jnp.mean(h, axis=1, keepdims=True))


def builtin_modules(spec) -> dict:
    """The built-in maps of `spec` as functions `rngs -> nnx.Module`, keyed g2, g3, top,
    e2, e3, e_top (`from_flax` builds them from `init_model`'s key)."""
    d2, d3, dt = spec.latent_dims
    r1, r2 = spec.rate_factors
    h, k, positional = spec.hidden, spec.kernel_size, spec.top_map == "positional"
    n_out, n_in = n_control_outputs(spec.controls), n_control_features(spec.controls)
    return {
        "g2": lambda rngs: ControlsMap(d2, h, n_out, kernel_size=k, factor=r1, rngs=rngs),
        "g3": lambda rngs: UpsamplingMap(d3, h, d2, kernel_size=k, factor=r2, rngs=rngs),
        "top": lambda rngs: PhraseMap(dt, h, d3, positional=positional, rngs=rngs),
        "e2": lambda rngs: PoolingEncoder(n_in, h, d2, kernel_size=k, factor=r1, rngs=rngs),
        "e3": lambda rngs: PoolingEncoder(d2, h, d3, kernel_size=k, factor=r2, rngs=rngs),
        "e_top": lambda rngs: TopEncoder(d3, h, dt, positional=positional, rngs=rngs),
    }


# ---------------------------------------------------------------- user maps

MAP_NAMES = ("g2", "g3", "top", "e2", "e3", "e_top")


@dataclasses.dataclass(frozen=True, eq=False)
class UserMaps:
    """The user's own maps in place of built-in ones (any left None stays built in).

    Each is anything `pcmusic.pc.maps.from_flax` takes (an nnx module, a function
    `rngs -> nnx.Module`, a linen module, an equinox module) or a `pcmusic.pc.Map`, and
    maps float32 arrays, batch first, with F control frames (a multiple of r1 r2):

        g2       z2 [B, F/r1, d2]          -> features [B, F, n_control_outputs(spec.controls)]
        g3       z3 [B, F/(r1 r2), d3]     -> z2 [B, F/r1, d2]
        top      top tiled over the phrase frames [B, F/(r1 r2), dt] -> z3 [B, F/(r1 r2), d3]
        encoder  (e2, e3, e_top): control_features(controls) [B, F, n_control_features]
                 -> z2, z2 -> z3, z3 -> top [B, 1, dt]

    g2's features are the controls less fixed offsets (`controls_of_features`: log2 f0
    relative to 220 Hz, voice-major partial log amplitudes + 6, noise-band log amplitudes
    + 6, and, for inharmonic controls, V stiffness channels averaged over frames).
    `upsample_linear`, `pool` and `with_phrase_code` are there to build them from.
    Compared by identity (static under jit): build it once and reuse it.
    """

    g2: Any = None
    g3: Any = None
    top: Any = None
    encoder: tuple | None = None

    @classmethod
    def of(cls, maps) -> UserMaps | None:
        """`maps` as UserMaps: None, a UserMaps, or a dict with its field names."""
        if maps is None or isinstance(maps, UserMaps):
            return maps
        if isinstance(maps, dict):
            unknown = sorted(set(maps) - {f.name for f in dataclasses.fields(cls)})
            if unknown:
                raise PcmusicError(f"maps: unknown keys {unknown}; expected g2, g3, top, encoder")
            return cls(**maps)
        raise PcmusicError(f"maps must be a UserMaps or a dict; got a {type(maps).__name__}")


class ModelMaps(NamedTuple):
    """A model's maps as `pcmusic.pc.Map`s: params plain nested dicts."""

    g2: maps.Map
    g3: maps.Map
    top: maps.Map
    encoder: tuple


def _as_map(module, example: jax.Array) -> maps.Map:
    return module if isinstance(module, maps.Map) else maps.from_flax(module, example)


def _check_shapes(spec, found: ModelMaps) -> None:
    """Every user map's output shape, on a two-phrase-frame example, or a PcmusicError."""
    d2, d3, dt = spec.latent_dims
    r1, r2 = spec.rate_factors
    f = 2 * r1 * r2
    n_in = n_control_features(spec.controls)
    cases = {"g2": (found.g2, (1, f // r1, d2), (1, f, n_control_outputs(spec.controls))),
             "g3": (found.g3, (1, 2, d3), (1, f // r1, d2)),
             "top": (found.top, (1, 2, dt), (1, 2, d3)),
             "e2": (found.encoder[0], (1, f, n_in), (1, f // r1, d2)),
             "e3": (found.encoder[1], (1, f // r1, d2), (1, 2, d3)),
             "e_top": (found.encoder[2], (1, 2, d3), (1, 1, dt))}
    for name, (m, shape_in, wanted) in cases.items():
        x = jax.ShapeDtypeStruct(shape_in, jnp.float32)
        try:
            out = jax.eval_shape(lambda k, x, m=m: m.apply(m.init(k), x), jax.random.key(0), x)
        except Exception as err:   # a user's module may raise anything
            raise PcmusicError(f"maps: {name} fails on an input of shape {shape_in}: "
                               f"{type(err).__name__}: {err}") from None
        if not hasattr(out, "shape") or tuple(out.shape) != wanted:
            got = getattr(out, "shape", type(out).__name__)
            raise PcmusicError(f"maps: {name} maps {shape_in} to {got}; the model needs {wanted} "
                               "(see pcmusic.model.UserMaps)")


@functools.lru_cache(maxsize=64)
def model_maps(spec, user: UserMaps | None = None) -> ModelMaps:
    """The maps of a model of `spec`: the user's where given, the built-in ones elsewhere."""
    d2, d3, dt = spec.latent_dims
    r1, r2 = spec.rate_factors
    f = r1 * r2
    # numpy, not jax: a linen map keeps its example, and this may run inside a trace
    shapes = {"g2": (1, r2, d2), "g3": (1, 1, d3), "top": (1, 1, dt),
              "e2": (1, f, n_control_features(spec.controls)), "e3": (1, r2, d2), "e_top": (1, 1, d3)}
    examples = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    chosen = builtin_modules(spec)
    if user is not None:
        if user.encoder is not None and len(user.encoder) != 3:
            raise PcmusicError(f"maps.encoder must be (e2, e3, e_top); got {len(user.encoder)} maps")
        given = {"g2": user.g2, "g3": user.g3, "top": user.top,
                 **dict(zip(("e2", "e3", "e_top"), user.encoder or (None,) * 3))}
        chosen.update({name: m for name, m in given.items() if m is not None})
    with jax.ensure_compile_time_eval():
        made = {name: _as_map(chosen[name], examples[name]) for name in MAP_NAMES}
    found = ModelMaps(made["g2"], made["g3"], made["top"], (made["e2"], made["e3"], made["e_top"]))
    if user is not None:
        _check_shapes(spec, found)
    return found


def generative_maps(spec, n_frames: int, user: UserMaps | None = None):
    """(g2, g3, g_top) for a clip of `n_frames` control frames, and their init(key).

    g2 returns controls (`controls_of_features`); g_top takes the top `[B, 1, dt]` and
    tiles it over the clip's phrase frames before its module sees it.
    """
    found = model_maps(spec, user)
    n_top_frames = n_frames // spec.frames_per_top

    def g2(p, z2):
        return controls_of_features(found.g2.apply(p, z2), spec)

    def g_top(p, t):
        return found.top.apply(p, jnp.broadcast_to(t, (t.shape[0], n_top_frames, t.shape[-1])))

    def init(key):
        k = jax.random.split(key, 3)
        return (found.g2.init(k[0]), found.g3.init(k[1]), found.top.init(k[2]))

    return (g2, found.g3.apply, g_top), init


def encoder_maps(spec, user: UserMaps | None = None) -> tuple:
    """The amortised encoder's maps (e2, e3, e_top) as `pcmusic.pc.Map`s."""
    return model_maps(spec, user).encoder
