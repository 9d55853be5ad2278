"""Perceive sounds: validate, resample, normalise, settle, and read the percept off.

`perceive(audio, sample_rate)` scales the sound to the reference level, settles the
network on it (`pcmusic.perception.settle`) and reports the settled controls in the
input's own units: f0 per voice and frame (NaN where unvoiced), partial amplitudes at
the input's level, inharmonicity, the energy per inference step, and the settled latents.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic import pc
from pcmusic.dsp import audio as audio_lib
from pcmusic.errors import PcmusicError
from pcmusic.model import controls as controls_lib
from pcmusic.model import priors, sensory
from pcmusic.perception.settle import InferenceSpec, resolve_specs, settle_batch

# A voice is unvoiced below -40 dB re the reference level, or where the noise part of the
# model carries more power than the voice's partials.
MIN_VOICED_POWER = (sensory.REFERENCE_RMS * 1e-2) ** 2


class Percept(NamedTuple):
    """What perception settled on (one clip).

    f0_hz: float32 `[n_voices, n_frames]`, NaN where the voice is unvoiced.
    amplitudes: float32 `[n_voices, n_frames, n_harmonics]`, linear peak amplitude of
      each partial, in the input's own scale.
    voiced: bool `[n_voices, n_frames]`. inharmonicity: float32 `[n_voices]` (B; 0 if
      the spec is harmonic). frame_rate_hz: control frames per second (frame n is
      centred on sample n * hop). sample_rate: Hz of the analysis.
    energy: float32 `[n_steps]`, free energy before each inference step (best start).
    latents: the settled state, {"controls": Controls dict, "upper": tuple of levels}
      with a leading batch axis of 1.
    start_energies: float32 `[n_starts]`, final energy of every start.
    """

    f0_hz: np.ndarray
    amplitudes: np.ndarray
    voiced: np.ndarray
    inharmonicity: np.ndarray
    frame_rate_hz: float
    sample_rate: int
    energy: np.ndarray
    latents: dict
    start_energies: np.ndarray


def _prepare(audio, sample_rate, target_rate: int, *, name: str = "audio") -> tuple[np.ndarray, float]:
    """Validate, resample to `target_rate`, scale to the reference level; returns (audio, gain)."""
    x = np.asarray(audio)
    if x.ndim != 1 or x.size == 0:
        raise PcmusicError(f"{name} must be a non-empty 1-D array of samples; got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise PcmusicError(f"{name} must hold float samples in [-1, 1]; got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.isfinite(x))
        raise PcmusicError(f"{name} has {bad.size} NaN/Inf samples (first at index {bad[0]}); "
                           "clean or cut them before perceiving")
    x = x.astype(np.float32)
    if int(sample_rate) != target_rate:
        x = audio_lib.resample(x, int(sample_rate), target_rate)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    gain = sensory.REFERENCE_RMS / rms if rms > 1e-7 else 1.0
    return (x * gain).astype(np.float32), gain


def prepare_batch(audios, sample_rate: int, *, cspec: controls_lib.ControlSpec, model=None
                  ) -> tuple[np.ndarray, list[float], list[int]]:
    """Validate, resample, normalise and zero-pad clips to one batch.

    Returns (float32 `[B, n_frames * hop]`, per-clip gains applied, per-clip frame counts);
    n_frames is the longest clip's, rounded up to whole top-level frames with a model.
    """
    prepared = [_prepare(a, sample_rate, cspec.sample_rate, name=f"audio[{i}]")
                for i, a in enumerate(audios)]
    lengths = [cspec.n_frames(x.shape[0]) for x, _ in prepared]
    n_frames = max(lengths)
    if model is not None:
        n_frames = model.spec.pad_frames(n_frames)
    batch = np.zeros((len(prepared), n_frames * cspec.hop), np.float32)
    for row, (x, _) in zip(batch, prepared):
        row[: x.shape[0]] = x
    return batch, [g for _, g in prepared], lengths


def perceive(audio, sample_rate: int, *, model=None, n_voices: int = 1,
             cspec: controls_lib.ControlSpec | None = None, sspec: sensory.SensorySpec | None = None,
             prior: priors.ControlPrior | None = None, inference: InferenceSpec | None = None,
             voicing_db: float = 30.0, record_stride: int | None = None) -> Percept:
    """Perceive a sound: settle the network's latents on it.

    Args:
      audio: float 1-D array `[n_samples]` in [-1, 1], any length (at least ~20 ms).
      sample_rate: Hz of `audio`; it is resampled to the model's rate (soxr).
      model: a trained `pcmusic.AudioModel`, or None for the untrained default
        prior (pure analysis by synthesis).
      n_voices: simultaneous voices to find (ignored if `cspec` is given).
      cspec / sspec / prior / inference: control, sensory, prior and inference specs
        (defaults: the model's, or the package defaults at 16 kHz).
      voicing_db: a voice is voiced in a frame when its partials' power is within this
        many dB of the loudest frame's, above -40 dB re the input's RMS, and above the
        noise part's power.
      record_stride: also record the trajectory (see `pcmusic.probe`) every k steps.
    Returns:
      a `Percept`; with `record_stride`, `.latents["trajectory"]` holds the record.
    """
    return perceive_batch([audio], sample_rate, model=model, n_voices=n_voices, cspec=cspec,
                          sspec=sspec, prior=prior,
                          inference=inference, voicing_db=voicing_db, record_stride=record_stride)[0]


def perceive_batch(audios, sample_rate: int, *, model=None, n_voices: int = 1,
                   cspec: controls_lib.ControlSpec | None = None,
                   sspec: sensory.SensorySpec | None = None, prior: priors.ControlPrior | None = None,
                   inference: InferenceSpec | None = None, voicing_db: float = 30.0,
                   record_stride: int | None = None) -> list[Percept]:
    """`perceive` for several clips at once (vmapped; clips are zero-padded to the longest).

    audios: a sequence of 1-D float arrays (or a `[B, n_samples]` array). Other
    arguments as in `perceive`. Returns one Percept per clip, each cut to its length.
    """
    cspec, sspec, prior, inference = resolve_specs(model=model, n_voices=n_voices, cspec=cspec,
                                                   sspec=sspec, prior=prior, inference=inference)
    batch, gains, lengths = prepare_batch(audios, sample_rate, cspec=cspec, model=model)
    result = settle_batch(jnp.asarray(batch), model, cspec=cspec, sspec=sspec, prior=prior,
                          inference=inference, record_stride=record_stride)
    result = jax.device_get(result)  # one transfer; the per-clip work below is host-side NumPy
    percepts = []
    for i, (gain, n) in enumerate(zip(gains, lengths)):
        clip = jax.tree.map(lambda a: a[i], result)
        best = int(np.argmin(clip.energy))
        chosen = jax.tree.map(lambda a: a[best], clip)
        pc.check(chosen)
        percepts.append(_percept(chosen, np.asarray(clip.energy), gain=gain, cspec=cspec,
                                 n_frames=n, voicing_db=voicing_db))
    return percepts


def _percept(result, start_energies: np.ndarray, *, gain: float, cspec, n_frames: int,
             voicing_db: float) -> Percept:
    c = jax.tree.map(lambda a: np.asarray(a), result.latents["controls"])
    f0 = np.exp2(c["log2_f0"][0, :, :n_frames])
    amps = np.asarray(controls_lib.amplitudes(result.latents["controls"]))[0, :, :n_frames]
    noise = np.asarray(controls_lib.noise_magnitudes(result.latents["controls"]))[0, :n_frames]
    power = 0.5 * np.sum(np.square(amps), axis=-1)                     # [V, F], normalised level
    noise_power = np.mean(np.square(noise), axis=-1)[None, :]         # white noise of RMS m: m^2
    loudest = power.max() if power.size else 0.0
    voiced = ((power >= loudest * 10 ** (-voicing_db / 10)) & (power >= MIN_VOICED_POWER)
              & (power >= noise_power))
    amps = amps / gain
    inharm = np.exp(c["log_inharm"][0]) if cspec.inharmonic else np.zeros(cspec.n_voices, np.float32)
    latents: dict[str, Any] = dict(result.latents)
    if result.trajectory is not None:
        latents["trajectory"] = result.trajectory
    return Percept(f0_hz=np.where(voiced, f0, np.nan).astype(np.float32),
                   amplitudes=amps.astype(np.float32), voiced=voiced,
                   inharmonicity=np.asarray(inharm, np.float32), frame_rate_hz=cspec.frame_rate_hz,
                   sample_rate=cspec.sample_rate, energy=np.asarray(result.energy_history),
                   latents=latents, start_energies=start_energies)
