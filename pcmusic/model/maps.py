"""The audio hierarchy's neural maps: top-down (g2, g3, g_top) and the bottom-up encoder.

`generative_maps(spec, n_frames)` builds the maps of `pcmusic.model.audio_model`'s
hierarchy for a clip (1-D convolutions, fixed linear interpolation between frame rates,
control heads in physical units); `encoder_maps` the amortised encoder's (controls ->
z2 -> z3 -> top).
`spec` is a `pcmusic.model.ModelSpec`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.model import controls as controls_lib
from pcmusic.pc import maps

F0_CENTRE_HZ = 220.0   # heads start predicting this f0 (log2 offset 0)
AMP_BIAS = -6.0        # and this log amplitude (-52 dB): quiet until learned
PHRASE_PERIODS = (2, 4, 8, 16, 32)   # phrase frames; sin and cos of each: `phrase_code`


def _control_heads(spec):
    c = spec.controls
    sizes = {"log2_f0": c.n_voices, "log_amp": c.n_voices * c.n_harmonics, "log_noise": c.n_noise_bands}
    if c.inharmonic:
        sizes["log_inharm"] = c.n_voices
    return sizes


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


def phrase_code(n_phrase_frames: int) -> np.ndarray:
    """Position code of the phrase frames of a clip: float32 `[1, n, 2 * len(PHRASE_PERIODS)]`,
    sin and cos of 2 pi k / P for frame k and each period P (in phrase frames, ~8 Hz by
    default). Periodic, so a clip longer than any met in training repeats its phrase."""
    k = np.arange(n_phrase_frames, dtype=np.float64)[:, None] / np.asarray(PHRASE_PERIODS)
    code = np.concatenate([np.sin(2 * np.pi * k), np.cos(2 * np.pi * k)], axis=-1)
    return code[None].astype(np.float32)


def _with_phrase_code(x: jax.Array) -> jax.Array:
    """`[B, n, C]` -> `[B, n, C + 2 * len(PHRASE_PERIODS)]`: each frame with its position code."""
    code = jnp.asarray(phrase_code(x.shape[1]))
    return jnp.concatenate([x, jnp.broadcast_to(code, (x.shape[0], *code.shape[1:]))], axis=-1)


def generative_maps(spec, n_frames: int):
    """(g2, g3, g_top) for a clip of `n_frames` control frames.

    g2 computes its control heads at the event rate and interpolates them linearly to
    the control rate; g3 interpolates z3 to the event rate before two convolutions.
    """
    d2, d3, dt = spec.latent_dims
    r1, r2 = spec.rate_factors
    n_top_frames = n_frames // (r1 * r2)
    c = spec.controls
    trunk2 = maps.conv1d(d2, spec.hidden, kernel_size=spec.kernel_size, activation=jnp.tanh)
    heads = {name: maps.dense(spec.hidden, n) for name, n in _control_heads(spec).items()}
    trunk3 = maps.compose(maps.conv1d(d3, spec.hidden, kernel_size=spec.kernel_size, activation=jnp.tanh),
                          maps.conv1d(spec.hidden, d2, kernel_size=spec.kernel_size))
    n_code = 2 * len(PHRASE_PERIODS)
    if spec.top_map == "tiled":
        top = maps.dense(dt, d3)
    else:
        top = maps.compose(maps.dense(dt + n_code, spec.hidden, activation=jnp.tanh),
                           maps.dense(spec.hidden, d3))

    def g2(p, z2):
        h = trunk2.apply(p["trunk"], z2)                       # [B, F / r1, hidden]
        out = {name: upsample_linear(m.apply(p["heads"][name], h), r1) for name, m in heads.items()}
        b, f = out["log2_f0"].shape[:2]
        pred = {"log2_f0": jnp.moveaxis(out["log2_f0"], -1, 1) + np.float32(np.log2(F0_CENTRE_HZ)),
                "log_amp": jnp.moveaxis(out["log_amp"].reshape(b, f, c.n_voices, c.n_harmonics), 2, 1)
                + np.float32(AMP_BIAS),
                "log_noise": out["log_noise"] + np.float32(AMP_BIAS)}
        if c.inharmonic:
            pred["log_inharm"] = jnp.mean(out["log_inharm"], axis=1) + np.float32(spec.prior.inharm_mean)
        return pred

    def g3(p, z3):
        return trunk3.apply(p, upsample_linear(z3, r2))

    def g_top(p, t):
        if spec.top_map == "tiled":
            return jnp.broadcast_to(top.apply(p, t), (t.shape[0], n_top_frames, d3))
        tiled = jnp.broadcast_to(t, (t.shape[0], n_top_frames, dt))
        return top.apply(p, _with_phrase_code(tiled))

    def init(key):
        k = jax.random.split(key, 4 + len(heads))
        p2 = {"trunk": trunk2.init(k[0]),
              "heads": {name: m.init(kk) for (name, m), kk in zip(heads.items(), k[4:])}}
        return (p2, trunk3.init(k[1]), top.init(k[2]))

    return (g2, g3, g_top), init


def _pool(x: jax.Array, factor: int) -> jax.Array:
    """Mean over non-overlapping windows of `factor` frames: [B, F, C] -> [B, F / factor, C]."""
    b, f, ch = x.shape
    return jnp.mean(x.reshape(b, f // factor, factor, ch), axis=2)


def control_features(controls: dict) -> jax.Array:
    """Controls as one frame-wise feature array `[B, F, C]` for the encoder."""
    b, v, f = controls["log2_f0"].shape
    parts = [jnp.moveaxis(controls["log2_f0"], 1, 2) - np.float32(np.log2(F0_CENTRE_HZ)),
             jnp.moveaxis(controls["log_amp"], 1, 2).reshape(b, f, -1) * 0.1,
             controls["log_noise"] * 0.1]
    return jnp.concatenate(parts, axis=-1)


def encoder_maps(spec, n_features: int):
    d2, d3, dt = spec.latent_dims
    r1, r2 = spec.rate_factors
    e2 = maps.compose(maps.conv1d(n_features, spec.hidden, kernel_size=spec.kernel_size,
                                  activation=jnp.tanh),
                      maps.pointwise(lambda x: _pool(x, r1)), maps.dense(spec.hidden, d2))
    e3 = maps.compose(maps.conv1d(d2, spec.hidden, kernel_size=spec.kernel_size, activation=jnp.tanh),
                      maps.pointwise(lambda x: _pool(x, r2)), maps.dense(spec.hidden, d3))
    mean = maps.pointwise(lambda x: jnp.mean(x, axis=1, keepdims=True))
    if spec.top_map == "tiled":
        et = maps.compose(mean, maps.dense(d3, dt))
    else:   # where in the phrase each z3 frame lies, so the guess can tell melodies apart
        et = maps.compose(maps.pointwise(_with_phrase_code),
                          maps.dense(d3 + 2 * len(PHRASE_PERIODS), spec.hidden, activation=jnp.tanh),
                          mean, maps.dense(spec.hidden, dt))
    return (e2, e3, et)


def n_control_features(c: controls_lib.ControlSpec) -> int:
    """Channels of `control_features` for a control spec."""
    return c.n_voices + c.n_voices * c.n_harmonics + c.n_noise_bands
