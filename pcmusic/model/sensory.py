"""The sensory level: what the network hears (phi(x)) and what it predicts (phi(synth(c))).

phi is a tuple of log-magnitude spectrograms at several FFT sizes (hop n_fft // 4,
Hann, `pcmusic.dsp.spectral` scaling, log floor eps). The prediction renders the partials
of the controls through the oscillator bank and adds the filtered-noise part *in
expectation*: its power per bin is the band magnitude squared times the window's
noise gain sum(w^2) / sum(w)^2. A sampled noise render would add random spectral
fluctuations that no latent can explain; the expectation is the noise model's
prediction proper, and it is deterministic and smooth in the controls.

The sensory error of resolution r is weighted by hop_r / hop (its frames per control
frame), so every resolution counts per unit of time alike and the energy of a clip
grows with its length.

The network hears every clip at one reference level: it is scaled to RMS
REFERENCE_RMS before anything else (`normalise`), so perception is level-invariant
and the precisions, the log floor eps and the audibility of a partial are stated
relative to that level.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.dsp import spectral
from pcmusic.dsp.synth import band_to_bin_matrix
from pcmusic.errors import PcmusicError
from pcmusic.model import controls as controls_lib

DEFAULT_EPS = spectral.DEFAULT_EPS
REFERENCE_RMS = 0.1   # every clip is heard at this RMS (level invariance)


def reference_gain(audio: jax.Array) -> jax.Array:
    """The gain `[B, 1]` that scales each clip of float32 audio `[B, n_samples]` to
    REFERENCE_RMS (1 for silent clips: they stay silent). Traceable."""
    rms = jnp.sqrt(jnp.mean(jnp.square(audio), axis=-1, keepdims=True))
    return jnp.where(rms > 1e-7, REFERENCE_RMS / jnp.maximum(rms, 1e-7), 1.0)


def normalise(audio: jax.Array) -> jax.Array:
    """Each clip of `[B, n_samples]` scaled to REFERENCE_RMS (silent clips stay silent)."""
    return audio * reference_gain(audio)


def default_resolutions(sample_rate: int) -> tuple[int, ...]:
    """FFT sizes from ~128 ms down to ~16 ms (powers of two) for `sample_rate`.

    Shorter windows than 16 ms resolve no harmonics of the pitches we model; the
    longest resolves partials 40 Hz apart, for low notes.
    """
    return tuple(n for n in spectral.default_resolutions(sample_rate) if n >= 0.012 * sample_rate)


@dataclasses.dataclass(frozen=True)
class SensorySpec:
    """resolutions: FFT sizes of phi (() picks `default_resolutions` for the model's
    sample rate: see `resolve`). eps: log floor (linear magnitude), relative to audio
    at REFERENCE_RMS. The sample rate is the control spec's (`ControlSpec.sample_rate`)."""

    resolutions: tuple[int, ...] = ()
    eps: float = DEFAULT_EPS


def resolve(spec: SensorySpec, sample_rate: int) -> SensorySpec:
    """`spec` with its resolutions filled in for `sample_rate` (Hz) where it leaves them out."""
    if spec.resolutions:
        return spec
    return dataclasses.replace(spec, resolutions=default_resolutions(sample_rate))


def _resolutions(spec: SensorySpec) -> tuple[int, ...]:
    if not spec.resolutions:
        raise PcmusicError("SensorySpec has no resolutions: resolve it for the sample rate first "
                           "(pcmusic.model.sensory.resolve(spec, sample_rate); a ModelSpec does it)")
    return spec.resolutions


def n_feature_frames(n_samples: int, n_fft: int) -> int:
    return 1 + n_samples // (n_fft // 4)


def observe(audio, spec: SensorySpec) -> tuple[jax.Array, ...]:
    """phi(x): float32 audio `[B, n_samples]` -> tuple of `[B, frames_r, n_fft_r // 2 + 1]`."""
    audio = jnp.asarray(audio, jnp.float32)
    return tuple(spectral.log_magnitude(spectral.stft(audio, n_fft=n, hop=n // 4), eps=spec.eps)
                 for n in _resolutions(spec))


def _frame_interpolation(n_out: int, hop_out: int, n_in: int, hop_in: int) -> np.ndarray:
    """[n_out, n_in] linear interpolation from frames at m*hop_in to frames at m*hop_out."""
    position = np.minimum(np.arange(n_out) * hop_out / hop_in, n_in - 1)
    matrix = np.zeros((n_out, n_in), np.float32)
    if n_in == 1:
        matrix[:, 0] = 1.0
        return matrix
    lower = np.minimum(np.floor(position).astype(int), n_in - 2)
    frac = position - lower
    matrix[np.arange(n_out), lower] = 1.0 - frac
    matrix[np.arange(n_out), lower + 1] += frac
    return matrix


def expected_noise_power(noise_mag: jax.Array, *, n_fft: int, n_samples: int, hop: int) -> jax.Array:
    """Expected STFT power of the filtered-noise part at one resolution.

    noise_mag: float32 `[B, n_frames, n_bands]` linear band magnitudes (control rate).
    Returns float32 `[B, frames_r, n_fft // 2 + 1]` (the `spectral.stft` scaling).
    """
    n_frames, n_bands = noise_mag.shape[-2:]
    window = spectral.get_window("hann", n_fft).astype(np.float64)
    gain = np.float32((window ** 2).sum() / window.sum() ** 2)
    in_time = _frame_interpolation(n_feature_frames(n_samples, n_fft), n_fft // 4, n_frames, hop)
    to_bins = band_to_bin_matrix(n_bands, n_fft // 2 + 1)
    mag = jnp.einsum("tf,bfk,kn->btn", jnp.asarray(in_time), noise_mag, jnp.asarray(to_bins))
    return gain * jnp.square(mag)


def predict(controls: dict, cspec: controls_lib.ControlSpec, spec: SensorySpec) -> tuple[jax.Array, ...]:
    """phi(synth(c)) with the noise part in expectation; same structure as `observe`."""
    partials = controls_lib.render_partials(controls, cspec)
    noise = controls_lib.noise_magnitudes(controls)
    n_samples = partials.shape[-1]
    out = []
    for n in _resolutions(spec):
        power = spectral.power(spectral.stft(partials, n_fft=n, hop=n // 4))
        power = power + expected_noise_power(noise, n_fft=n, n_samples=n_samples, hop=cspec.hop)
        out.append(0.5 * jnp.log(power + jnp.float32(spec.eps) ** 2))
    return tuple(out)


def resolution_weights(spec: SensorySpec, hop: int) -> tuple[float, ...]:
    """Per-resolution error weights hop_r / hop (frames of resolution r per control frame)."""
    return tuple((n // 4) / hop for n in _resolutions(spec))


def blur(errors: tuple, blur_hz, *, sample_rate: int) -> tuple:
    """Blur each resolution's log-spectral error along frequency (coarse-to-fine).

    Blurring the error is blurring both the heard and the predicted spectra (blur is
    linear), which widens the basin of each partial so gradient descent on f0 is not
    trapped between harmonics. blur_hz may be traced (annealed inside scan).
    """
    return tuple(spectral.blur_log_spectrum(e, blur_hz, sample_rate=sample_rate) for e in errors)


def weighted_square_error(errors: tuple, spec: SensorySpec, hop: int) -> jax.Array:
    """0.5 * sum_r w_r * sum(e_r^2) per batch element: float32 `[B]`."""
    total = 0.0
    for e, w in zip(errors, resolution_weights(spec, hop)):
        total = total + jnp.float32(0.5 * w) * jnp.sum(jnp.square(e), axis=tuple(range(1, e.ndim)))
    return total


def initial_blur_hz(controls: dict, blur: float) -> jax.Array:
    """Width (Hz) `[B]` of the coarse-to-fine spectral blur at step 0: `blur` times each
    sample's median first-voice f0 (controls `log2_f0` `[B, V, F]`)."""
    return blur * jnp.median(jnp.exp2(controls["log2_f0"][:, 0]), axis=-1)


def blur_fade(step: jax.Array, n_steps: int) -> jax.Array:
    """Blur schedule: 1 at step 0 falling linearly to 0 at half of `n_steps`, then 0."""
    return jnp.maximum(0.0, 1.0 - 2.0 * step.astype(jnp.float32) / max(n_steps, 1))


def sensory_energy(controls: dict, observed: tuple, blur_hz: jax.Array, *, cspec, sspec,
                   precision: float, noise_key: jax.Array | None = None) -> tuple[jax.Array, tuple]:
    """Per-sample sensory energy `[B]` and the (unblurred) errors phi(x) - phi(synth(c)):
    `observed` is `observe(x)`, blurred by `blur_hz` `[B]` before weighting (None: not
    blurred, the same as a width of 0 Hz without the blur's FFTs); perception,
    generation's refinement and the probe's replay share it. noise_key: None predicts the
    noise part in expectation (`predict`, for sound from elsewhere); a key predicts the
    render of the controls with that noise drawn (an efference copy, for sound the model
    made itself with that key: its own noise is no surprise)."""
    if noise_key is None:
        predicted = predict(controls, cspec, sspec)
    else:
        predicted = observe(controls_lib.render(controls, cspec, key=noise_key), sspec)
    errors = tuple(o - p for o, p in zip(observed, predicted))
    blurred = errors if blur_hz is None else \
        jax.vmap(lambda e, b: blur(e, b, sample_rate=cspec.sample_rate))(errors, blur_hz)
    return precision * weighted_square_error(blurred, sspec, cspec.hop), errors


def annealed_sensory_energy(controls: dict, observed: tuple, blur0_hz: jax.Array, step: jax.Array, *,
                            n_steps: int, blurred: bool, cspec, sspec, precision: float,
                            noise_key: jax.Array | None = None) -> tuple[jax.Array, tuple]:
    """`sensory_energy` under the coarse-to-fine schedule of a settle of n_steps: blurred by
    blur0_hz `[B]` * blur_fade(step, n_steps). The blur's FFTs are skipped where it is off
    (`blurred` False, static) and, by a `lax.cond` on the step, once it has faded out (half
    the steps on); both give the unblurred energy to float rounding."""
    sense = functools.partial(sensory_energy, controls, observed, cspec=cspec, sspec=sspec,
                              precision=precision, noise_key=noise_key)
    if not blurred:
        return sense(None)
    fade = blur_fade(step, n_steps)
    return jax.lax.cond(fade > 0, lambda: sense(blur0_hz * fade), lambda: sense(None))
