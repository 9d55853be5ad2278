"""Fundamental-frequency recovery by gradient descent through the oscillator bank.

Gradient descent on f0 through sin() alone gets stuck: the spectral loss has
local minima at every misalignment of the partials (ddsp issues 79 and 478; Hayes
et al., ICASSP 2023). This module combines two remedies that keep the method a
plain analysis-by-synthesis fit (the same synth and spectral distance perception
uses), generic over pitch, spectrum and sample rate:

1. Multi-start: candidates spread evenly in log-frequency around the start value
   (`search_semitones` either side), each fitted independently under `vmap`; the
   candidate with the lowest final (unblurred) distance wins.
2. Coarse-to-fine: the log-spectra of model and target are blurred along frequency
   by a Gaussian `blur_fraction` times the candidate's start f0 wide (the spacing
   of its harmonics, so basins have the same relative width at every pitch),
   annealed to zero over the first `anneal_fraction` of the steps
   (`spectral.blur_log_spectrum`).

Each candidate is a steady harmonic tone (constant f0 and harmonic amplitudes over
the clip), f0 parametrised by its log, amplitudes by their logs, both moved by
Adam. Amplitudes start from the target's spectrum read at the candidate's
harmonics. Nothing but the audio and the start value enters the fit.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from pcmusic.dsp import spectral, synth
from pcmusic.errors import PcmusicError
from pcmusic.pc import optim


def candidate_f0s(f0_init_hz, *, n_candidates: int, search_semitones: float) -> jax.Array:
    """`[..., n_candidates]` f0s spaced evenly in log-frequency over
    f0_init * 2^(+-search_semitones / 12)."""
    offsets = np.linspace(-search_semitones, search_semitones, n_candidates) / 12.0
    f0 = jnp.asarray(f0_init_hz, jnp.float32)[..., None]
    ratios = jnp.asarray(2.0 ** offsets, jnp.float32)
    return f0 * ratios.reshape((1,) * (f0.ndim - 1) + (n_candidates,))


def blur_schedule(step, *, n_steps: int, start, anneal_fraction: float):
    """Blur at `step`: a quadratic fall from `start` to 0 at anneal_fraction *
    n_steps, then 0 (step and start may be traced)."""
    progress = jnp.clip(step / jnp.float32(max(anneal_fraction * n_steps, 1.0)), 0.0, 1.0)
    return start * (1.0 - progress) ** 2


def _initial_log_amplitudes(target_log_mag, f0_hz, *, n_harmonics, sample_rate, n_fft):
    """log amplitudes read off the time-averaged target magnitude at k * f0 (a
    sinusoid of amplitude A peaks at A/2 with `spectral.stft`'s scaling)."""
    mag = jnp.mean(jnp.exp(target_log_mag), axis=0)  # [n_bins]
    k = jnp.arange(1, n_harmonics + 1, dtype=jnp.float32)
    position = k * f0_hz * jnp.float32(n_fft / sample_rate)
    return jnp.log(2.0 * jnp.interp(position, jnp.arange(mag.shape[0], dtype=jnp.float32), mag)
                   + 1e-6)


def _fit_one(target, f0_start_hz, *, sample_rate, hop, n_frames, n_harmonics, n_steps,
             resolutions, blur_fraction, anneal_fraction, learning_rate, kind, eps):
    """Fit one candidate to one clip's target log-spectra; returns (f0, distance)."""
    params = {
        "log_f0": jnp.log(f0_start_hz),
        "log_amps": _initial_log_amplitudes(target[0], f0_start_hz, n_harmonics=n_harmonics,
                                            sample_rate=sample_rate, n_fft=resolutions[0]),
    }
    schedule = optax.cosine_decay_schedule(1.0, n_steps, alpha=0.02)
    amp_lr = 5 * learning_rate  # log-amplitudes travel further than log f0
    optimizer = optax.multi_transform(
        {"log_f0": optax.chain(optax.scale_by_adam(),
                               optax.scale_by_schedule(lambda s: -learning_rate * schedule(s))),
         "log_amps": optax.chain(optax.scale_by_adam(),
                                 optax.scale_by_schedule(lambda s: -amp_lr * schedule(s)))},
        {"log_f0": "log_f0", "log_amps": "log_amps"})

    def distance(p, blur):
        f0 = jnp.broadcast_to(jnp.exp(p["log_f0"]), (n_frames,))
        amps = jnp.broadcast_to(jnp.exp(p["log_amps"]), (n_frames, n_harmonics))
        audio = synth.harmonic(f0, amps, sample_rate=sample_rate, hop=hop)
        model = spectral.features(audio, sample_rate=sample_rate, resolutions=resolutions, eps=eps)
        blur_kw = dict(sample_rate=sample_rate)
        model = tuple(spectral.blur_log_spectrum(m, blur, **blur_kw) for m in model)
        blurred = tuple(spectral.blur_log_spectrum(t, blur, **blur_kw) for t in target)
        return spectral.feature_distance(model, blurred, kind=kind)

    def step(carry, i):
        p, state = carry
        blur = blur_schedule(i, n_steps=n_steps, start=blur_fraction * f0_start_hz,
                             anneal_fraction=anneal_fraction)
        p, state = optim.apply(optimizer, jax.grad(distance)(p, blur), state, p)
        return (p, state), None

    (params, _), _ = lax.scan(step, (params, optimizer.init(params)),
                              jnp.arange(n_steps, dtype=jnp.float32))
    return jnp.exp(params["log_f0"]), distance(params, jnp.float32(0.0))


_LEVEL_RMS = 0.1  # clips are scaled to this RMS, so the log floor `eps` is relative


@functools.partial(jax.jit, static_argnames=(
    "sample_rate", "hop", "n_harmonics", "n_steps", "n_candidates", "search_semitones",
    "resolutions", "blur_fraction", "anneal_fraction", "learning_rate", "kind", "eps"))
def fit_f0(audio, f0_init_hz, *, sample_rate, hop: int, n_harmonics: int = 32,
           n_steps: int = 60, n_candidates: int = 7, search_semitones: float = 4.0,
           resolutions=None, blur_fraction: float = 0.25, anneal_fraction: float = 0.6,
           learning_rate: float = 0.02, kind: str = "squared_log", eps: float = 1e-3):
    """Recover the fundamental of a steady harmonic sound near a start value.

    Args:
      audio: float32 `[..., n_samples]`, one clip per leading index.
      f0_init_hz: float32 `[...]`, start value per clip (the answer may lie up to
        about `search_semitones` away).
      sample_rate: Hz. hop: synth frame size (the fit renders n_samples // hop frames).
      n_harmonics: harmonics of the model tone.
      n_steps: Adam steps per candidate. n_candidates, search_semitones: the
        multi-start grid. resolutions: FFT sizes; default the two largest of
        `spectral.default_resolutions` (~128 and ~64 ms), which resolve the
        harmonics of f0 above ~60 Hz; smaller FFTs blend neighbouring partials,
        whose unknown phases then bias the fit.
      blur_fraction, anneal_fraction: initial blur (Gaussian standard deviation as a
        fraction of the candidate's start f0) and when its annealing reaches 0.
      learning_rate: Adam step on log f0 and log amplitudes (cosine-decayed).
      kind: spectral distance, see `spectral.feature_distance`; the squared
        log-magnitude error (the Gaussian sensory error perception minimises).
      eps: log-magnitude floor for clips scaled to RMS 0.1: 1e-3 lies ~40 dB below
        the level of a partial carrying all the power, so the fit attends to the
        partials rather than to sidelobes and phase-dependent leakage.
    Returns:
      (f0_hz float32 `[...]`, distance float32 `[...]`): the best candidate's fitted
      f0 and its final unblurred spectral distance.
    """
    audio = jnp.asarray(audio, jnp.float32)
    f0_init_hz = jnp.asarray(f0_init_hz, jnp.float32)
    if audio.shape[:-1] != f0_init_hz.shape:
        raise PcmusicError(f"f0_init_hz must have audio's leading shape {audio.shape[:-1]}; "
                           f"got {f0_init_hz.shape}")
    n_frames = audio.shape[-1] // hop
    if n_frames < 2:
        raise PcmusicError(f"audio of {audio.shape[-1]} samples is shorter than two hops ({hop})")
    resolutions = tuple(resolutions or spectral.default_resolutions(sample_rate)[:2])
    audio = audio[..., :n_frames * hop]
    rms = jnp.sqrt(jnp.mean(audio ** 2, axis=-1, keepdims=True))
    audio = audio * (_LEVEL_RMS / jnp.maximum(rms, 1e-12))
    fit = functools.partial(
        _fit_one, sample_rate=sample_rate, hop=hop, n_frames=n_frames, n_harmonics=n_harmonics,
        n_steps=n_steps, resolutions=resolutions, blur_fraction=blur_fraction,
        anneal_fraction=anneal_fraction, learning_rate=learning_rate, kind=kind, eps=eps)

    def one_clip(clip, f0_init):
        target = spectral.features(clip, sample_rate=sample_rate, resolutions=resolutions,
                                   eps=eps)
        starts = candidate_f0s(f0_init, n_candidates=n_candidates,
                               search_semitones=search_semitones)
        f0s, dists = jax.vmap(fit, in_axes=(None, 0))(target, starts)
        best = jnp.argmin(dists)
        return f0s[best], dists[best]

    flat_audio = audio.reshape((-1, audio.shape[-1]))
    f0, dist = jax.vmap(one_clip)(flat_audio, f0_init_hz.reshape(-1))
    return f0.reshape(f0_init_hz.shape), dist.reshape(f0_init_hz.shape)
