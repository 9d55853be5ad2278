"""The control level: oscillator controls in physical units, and their rendering.

This is the "symbolic" level of the hierarchy, in Hz rather than note numbers. A
`Controls` state is a dict of float32 arrays with a leading batch axis:

    "log2_f0":    [B, n_voices, n_frames]               log2 of f0 in Hz
    "log_amp":    [B, n_voices, n_frames, n_harmonics]  natural log of each partial's
                                                        linear amplitude (peak, not RMS)
    "log_noise":  [B, n_frames, n_noise_bands]          natural log of the linear noise
                                                        magnitude per band (0..Nyquist)
    "log_inharm": [B, n_voices]                         natural log of the stiff-string
                                                        coefficient B (only if inharmonic)

Logs keep every quantity positive and make gradient steps scale-free: an optimiser
step of 0.001 on log2_f0 is 1.2 cents at any pitch (frequency gradients in Hz are
what trap DDSP-style fitting: Turian & Henry 2020; Hayes et al. 2023). Partial k of a
voice sounds at k * f0 * sqrt(1 + B k^2) (Fletcher 1964); B = 0 is harmonic. Frame n
holds at sample n * hop, linearly interpolated to frame n + 1 (`pcmusic.dsp.synth`'s
convention).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.dsp import synth
from pcmusic.errors import PcmusicError

# Amplitude logs are clipped before exp: e^2 = 7.4 is far above full scale, e^-18
# (-156 dB) far below float32 audio noise; the clip only guards against overflow.
LOG_AMP_RANGE = (-18.0, 2.0)
# An unused voice or band sits at this log amplitude (-87 dB): silent but finite.
SILENT_LOG_AMP = -10.0


@dataclasses.dataclass(frozen=True)
class ControlSpec:
    """Static shape and units of the control level (hashable; pass to jit as static).

    sample_rate: Hz of the rendered audio. hop: samples per control frame (the control
    rate is sample_rate / hop: 125 Hz at the defaults). n_voices: simultaneous
    harmonic voices. n_harmonics: partials per voice. n_noise_bands: bands of the
    filtered-noise part, evenly spaced 0..Nyquist. inharmonic: add a per-voice
    stiffness B (rendered with free sinusoids; costs more than the harmonic bank).
    f0_min_hz / f0_max_hz: the range perception searches and generation is kept in.
    """

    sample_rate: int = 16000
    hop: int = 128
    n_voices: int = 1
    n_harmonics: int = 40
    n_noise_bands: int = 24
    inharmonic: bool = False
    f0_min_hz: float = 30.0
    f0_max_hz: float = 2500.0

    def __post_init__(self):
        if self.sample_rate <= 0 or self.hop <= 0:
            raise PcmusicError(f"sample_rate and hop must be > 0, got {self.sample_rate}, {self.hop}")
        if min(self.n_voices, self.n_harmonics, self.n_noise_bands) < 1:
            raise PcmusicError("n_voices, n_harmonics and n_noise_bands must each be >= 1; got "
                               f"{self.n_voices}, {self.n_harmonics}, {self.n_noise_bands}")
        if not 0 < self.f0_min_hz < self.f0_max_hz < self.sample_rate / 2:
            raise PcmusicError(f"need 0 < f0_min_hz < f0_max_hz < Nyquist ({self.sample_rate / 2} Hz); "
                               f"got {self.f0_min_hz}, {self.f0_max_hz}")

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate / self.hop

    def n_frames(self, n_samples: int) -> int:
        """Control frames covering `n_samples` audio samples (the last one padded)."""
        return max(1, -(-int(n_samples) // self.hop))


def zeros(spec: ControlSpec, batch: int, n_frames: int, *, f0_hz: float = 220.0) -> dict:
    """A silent control state `[batch, ...]` with every voice at `f0_hz`."""
    shape = (batch, spec.n_voices, n_frames)
    out = {
        "log2_f0": jnp.full(shape, np.log2(f0_hz), jnp.float32),
        "log_amp": jnp.full(shape + (spec.n_harmonics,), SILENT_LOG_AMP, jnp.float32),
        "log_noise": jnp.full((batch, n_frames, spec.n_noise_bands), SILENT_LOG_AMP, jnp.float32),
    }
    if spec.inharmonic:
        out["log_inharm"] = jnp.full((batch, spec.n_voices), np.log(1e-5), jnp.float32)
    return out


def f0_hz(controls: dict) -> jax.Array:
    """float32 `[B, n_voices, n_frames]`, Hz."""
    return jnp.exp2(controls["log2_f0"])


def amplitudes(controls: dict) -> jax.Array:
    """float32 `[B, n_voices, n_frames, n_harmonics]`, linear peak amplitudes."""
    return jnp.exp(jnp.clip(controls["log_amp"], *LOG_AMP_RANGE))


def noise_magnitudes(controls: dict) -> jax.Array:
    """float32 `[B, n_frames, n_noise_bands]`, linear band magnitudes."""
    return jnp.exp(jnp.clip(controls["log_noise"], *LOG_AMP_RANGE))


def audibility(controls: dict, spec: ControlSpec, *, half_power: float) -> dict:
    """Weights in [0, 1] per control unit: the controls' structure and shapes.

    A partial of amplitude a (power p = a^2 / 2) weighs p / (p + half_power); a partial
    above Nyquist weighs 0. A voice's f0 weighs by the summed power of its partials, a
    noise band by its power. Stiffness (one value per clip) weighs 1. half_power: the
    power (same units as a^2 / 2 of the normalised signal) that counts half.
    """
    p_half = np.float32(half_power)
    freqs = partial_frequencies(controls, spec)
    power = jnp.where(freqs < 0.5 * spec.sample_rate, 0.5 * jnp.square(amplitudes(controls)), 0.0)
    voice = jnp.sum(power, axis=-1)
    noise = jnp.square(noise_magnitudes(controls))
    out = {"log2_f0": voice / (voice + p_half), "log_amp": power / (power + p_half),
           "log_noise": noise / (noise + p_half)}
    if "log_inharm" in controls:
        out["log_inharm"] = jnp.ones_like(controls["log_inharm"])
    return out


def partial_frequencies(controls: dict, spec: ControlSpec) -> jax.Array:
    """float32 `[B, n_voices, n_frames, n_harmonics]`: k f0 sqrt(1 + B k^2), Hz."""
    inharm = None
    if spec.inharmonic:
        inharm = jnp.exp(controls["log_inharm"])[..., None]  # [B, V, 1] over frames
    return synth.harmonic_frequencies(f0_hz(controls), spec.n_harmonics, inharmonicity=inharm)


def render_partials(controls: dict, spec: ControlSpec) -> jax.Array:
    """The deterministic (partial) part of the sound: float32 `[B, n_frames * hop]`."""
    if spec.inharmonic:
        audio = synth.sinusoids(partial_frequencies(controls, spec), amplitudes(controls),
                                sample_rate=spec.sample_rate, hop=spec.hop)
    else:
        audio = synth.harmonic(f0_hz(controls), amplitudes(controls),
                               sample_rate=spec.sample_rate, hop=spec.hop)
    return jnp.sum(audio, axis=1)  # sum the voices


def render(controls: dict, spec: ControlSpec, *, key: jax.Array) -> jax.Array:
    """Render controls to audio through the oscillator bank.

    Args:
      controls: a Controls dict (module docstring), batch B, n_frames F.
      spec: the ControlSpec it was built for.
      key: PRNG key for the filtered-noise part.
    Returns:
      float32 `[B, F * hop]` at spec.sample_rate.
    """
    noise = synth.filtered_noise(noise_magnitudes(controls), hop=spec.hop, key=key)
    return render_partials(controls, spec) + noise


def check(controls: dict, spec: ControlSpec) -> None:
    """Raise PcmusicError unless `controls` has the keys and shapes `spec` implies."""
    keys = {"log2_f0", "log_amp", "log_noise"} | ({"log_inharm"} if spec.inharmonic else set())
    if set(controls) != keys:
        raise PcmusicError(f"controls must have keys {sorted(keys)}; got {sorted(controls)}")
    b, v, f = controls["log2_f0"].shape
    want = {"log_amp": (b, v, f, spec.n_harmonics), "log_noise": (b, f, spec.n_noise_bands)}
    if spec.inharmonic:
        want["log_inharm"] = (b, v)
    for name, shape in want.items():
        if tuple(controls[name].shape) != shape:
            raise PcmusicError(f"controls[{name!r}] has shape {tuple(controls[name].shape)}; "
                               f"expected {shape} for this spec")
    if v != spec.n_voices:
        raise PcmusicError(f"controls have {v} voices; the spec says {spec.n_voices}")
