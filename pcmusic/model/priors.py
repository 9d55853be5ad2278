"""Structural priors on the control level: the untrained default model's expectations.

With no trained hierarchy above the controls (`perceive(..., model=None)`), these
Gaussian terms are the whole prior: pitch moves smoothly, partial amplitudes change
slowly in time and form a smooth spectral envelope across partials, strings are only
a little stiff. They are precisions on differences, i.e. a linear-Gaussian level that
predicts each frame from its neighbours. A trained model adds its learned top-down
predictions on top (`pcmusic.model.audio_model`). The spectral-envelope term is what tells f0
from f0 / 2: the sub-octave explains the same partials only with every other
amplitude near zero, which a smooth envelope finds improbable.

Optional sensory prior: Sethares roughness between the voices' partials
(`pcmusic.dsp.roughness`), weighted by `roughness`: it pulls chords towards
consonance for the timbre at hand.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.dsp.roughness import roughness as sethares_roughness
from pcmusic.model import controls as controls_lib


@dataclasses.dataclass(frozen=True)
class ControlPrior:
    """Precisions of the default prior (units of the control logs; see pcmusic.model.controls).

    f0_slope / f0_curvature: on the first / second frame difference of log2 f0
      (octaves^-2): 1e6 on the curvature allows vibrato and glides but not jitter.
    amp_time: on the frame difference of log amplitudes (partials and noise bands).
    amp_envelope: on the second difference of log amplitudes across partials.
    inharm_mean / inharm_precision: Gaussian on log B (stiff strings: B ~ 1e-5..1e-3).
    roughness: weight of the Sethares roughness of all partials, summed over frames.
    """

    f0_slope: float = 1e4
    f0_curvature: float = 1e6
    amp_time: float = 1.0
    amp_envelope: float = 1.0
    inharm_mean: float = float(np.log(1e-4))
    inharm_precision: float = 0.25
    roughness: float = 0.0


def _sum_per_sample(x: jax.Array) -> jax.Array:
    return jnp.sum(x, axis=tuple(range(1, x.ndim)))


def energy(controls: dict, prior: ControlPrior, spec: controls_lib.ControlSpec) -> jax.Array:
    """Default-prior energy per batch element: float32 `[B]` (>= 0, 0 for flat controls)."""
    log2_f0, log_amp, log_noise = controls["log2_f0"], controls["log_amp"], controls["log_noise"]
    e = jnp.zeros(log2_f0.shape[:1], jnp.float32)
    if log2_f0.shape[-1] > 1:
        e = e + 0.5 * prior.f0_slope * _sum_per_sample(jnp.square(jnp.diff(log2_f0, axis=-1)))
        e = e + 0.5 * prior.amp_time * (_sum_per_sample(jnp.square(jnp.diff(log_amp, axis=-2)))
                                        + _sum_per_sample(jnp.square(jnp.diff(log_noise, axis=-2))))
    if log2_f0.shape[-1] > 2:
        e = e + 0.5 * prior.f0_curvature * _sum_per_sample(jnp.square(jnp.diff(log2_f0, n=2, axis=-1)))
    if log_amp.shape[-1] > 2:
        e = e + 0.5 * prior.amp_envelope * _sum_per_sample(jnp.square(jnp.diff(log_amp, n=2, axis=-1)))
    if spec.inharmonic:
        e = e + 0.5 * prior.inharm_precision * _sum_per_sample(
            jnp.square(controls["log_inharm"] - prior.inharm_mean))
    if prior.roughness:
        e = e + prior.roughness * roughness(controls, spec)
    return e


def roughness(controls: dict, spec: controls_lib.ControlSpec) -> jax.Array:
    """Sethares roughness of all partials of all voices, summed over frames: `[B]`."""
    freqs = controls_lib.partial_frequencies(controls, spec)        # [B, V, F, H]
    amps = controls_lib.amplitudes(controls)
    freqs = jnp.moveaxis(freqs, 1, 2).reshape(freqs.shape[0], freqs.shape[2], -1)
    amps = jnp.moveaxis(amps, 1, 2).reshape(amps.shape[0], amps.shape[2], -1)
    return jnp.sum(sethares_roughness(freqs, amps), axis=-1)
