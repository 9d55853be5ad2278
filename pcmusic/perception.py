"""Perception as inference: settle the controls (and latents) that explain a sound.

`perceive(audio, sample_rate)` clamps the sensory level to the sound heard and
minimises the free energy over the control level (f0 in Hz, partial amplitudes,
stiffness, noise bands) and, with a trained model, over the latents above it:

    E = pi_s * 0.5 * sum_r w_r ||blur_t(phi_r(x) - phi_r(synth(c)))||^2   sensory
      + prior(c)                                    default structural prior
      + model terms (top-down errors, top prior)    with a trained model

Inference starts from the fixed spectral encoder's proposal (`pcmusic.encoder`, hybrid
inference), optionally from several starts (octave shifts of the proposal, vmapped),
and runs Adam on the latents with a coarse-to-fine schedule: the sensory error is
blurred along frequency by a Gaussian whose width starts at `blur` times the clip's
median f0 and falls to zero over the first half, so f0 first finds the right basin
and then the exact partial positions (RESEARCH.md section 1). The start with the
lowest final energy wins, per clip.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pcmusic import controls as controls_lib
from pcmusic import encoder, pc, priors, sensory
from pcmusic.errors import PcmusicError

REFERENCE_RMS = 0.1   # input is scaled to this RMS before inference (level invariance)
# A voice is unvoiced below -40 dB relative to the normalised input (RMS 0.1), or where
# the noise part of the model carries more power than the voice's partials.
MIN_VOICED_POWER = (REFERENCE_RMS * 1e-2) ** 2


@dataclasses.dataclass(frozen=True)
class InferenceSpec:
    """How perception settles. Learning rates are Adam step sizes at the start of a
    cosine decay: lr_f0 in octaves of log2 f0 (0.004 = 4.8 cents), lr_amp in natural
    log units of amplitude, lr_latent for latents above the controls.
    blur: initial blur s.d. as a fraction of the clip's median f0 (0 disables).
    sensory_precision: pi_s. octave_starts: multi-start octave shifts of the proposal.
    n_upper_steps / lr_upper: with a trained model, the latents above the controls are
    also settled alone (controls clamped; cheap, no synthesis) before and after the
    joint inference, with Adam at lr_upper: deep levels converge far more slowly than
    the controls, and a joint run long enough for them would be all synthesis.
    n_shoot_steps / lr_shoot: before that, the top is found by shooting (Adam on the top
    alone through the top-down maps; `BoundModel.init_upper`); 0 uses the encoder's guess."""

    n_steps: int = 200
    lr_f0: float = 0.004
    lr_amp: float = 0.05
    lr_latent: float = 0.05
    blur: float = 0.05
    sensory_precision: float = 0.01
    octave_starts: tuple[float, ...] = (0.0,)
    n_upper_steps: int = 100
    lr_upper: float = 0.01
    n_shoot_steps: int = 100
    lr_shoot: float = 0.03


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


def _labels(latents: dict) -> dict:
    tree = {"controls": {k: ("f0" if k == "log2_f0" else "amp") for k in latents["controls"]},
            "upper": jax.tree.map(lambda _: "latent", latents["upper"])}
    return tree


def latent_optimizer(latents: dict, spec: InferenceSpec, *, clamp=None) -> optax.GradientTransformation:
    """Adam per group of latents with cosine-decayed step sizes (see InferenceSpec).

    `pc.infer` hands the optimiser the list of free (unclamped) leaves, so the group
    labels are given in that order.
    """
    def adam(peak):
        return optax.adam(optax.cosine_decay_schedule(peak, max(spec.n_steps, 1), alpha=0.01))
    part = pc.partition(clamp, latents)
    labels = [label for label, fixed in zip(jax.tree.leaves(_labels(latents)), part.fixed) if not fixed]
    return optax.multi_transform({"f0": adam(spec.lr_f0), "amp": adam(spec.lr_amp),
                                  "latent": adam(spec.lr_latent)}, labels)


def make_energy_fn(observed: tuple, blur0_hz: jax.Array, *, cspec, sspec, prior, inference,
                   model=None):
    """`(latents, step) -> (E, aux)` for `pc.infer`; aux["energies"] is per level
    (sensory, controls, then the model's upper levels)."""
    def fn(latents, step):
        c = latents["controls"]
        blur_hz = blur0_hz * sensory.blur_fade(step, inference.n_steps)
        e_sens, errors = sensory.sensory_energy(c, observed, blur_hz, cspec=cspec, sspec=sspec,
                                                precision=inference.sensory_precision)
        terms = [jnp.sum(e_sens), jnp.sum(priors.energy(c, prior, cspec))]
        all_errors = [errors, None]
        if model is not None:
            e_up, aux_up = model.upper_energy(c, latents["upper"], step=step)
            terms[1] = terms[1] + aux_up["energies"][0]
            terms += list(aux_up["energies"][1:])
            all_errors[1] = aux_up["errors"][0]
            all_errors += list(aux_up["errors"][1:])
        energies = jnp.stack(terms)
        return jnp.sum(energies), {"energies": energies, "errors": tuple(all_errors)}

    return fn


def initial_controls(audio: jax.Array, *, cspec: controls_lib.ControlSpec, n_frames: int) -> dict:
    """Encoder proposal for one clip: audio `[n]` -> Controls with batch 1."""
    f0 = encoder.propose(audio, sample_rate=cspec.sample_rate, hop=cspec.hop, n_frames=n_frames,
                         n_voices=cspec.n_voices, f0_min_hz=cspec.f0_min_hz, f0_max_hz=cspec.f0_max_hz)
    amps = encoder.read_amplitudes(audio, f0, sample_rate=cspec.sample_rate, hop=cspec.hop,
                                   n_harmonics=cspec.n_harmonics) / cspec.n_voices
    c = controls_lib.zeros(cspec, 1, n_frames)
    c["log2_f0"] = jnp.log2(f0)[None]
    c["log_amp"] = jnp.log(amps + 1e-5)[None]
    c["log_noise"] = jnp.full_like(c["log_noise"], np.log(1e-3))
    return c


def _settle_upper(model, controls: dict, inference: InferenceSpec, *, top=None) -> tuple:
    """(z2, z3, top) for clamped controls: shooting for the top (also from `top` where
    given), then the upper levels settled together."""
    upper = model.init_upper(controls, n_steps=inference.n_shoot_steps,
                             learning_rate=inference.lr_shoot, top=top)
    return model.settle_upper(controls, upper, n_steps=inference.n_upper_steps,
                              learning_rate=inference.lr_upper)


def settle(audio, *, cspec, sspec, prior, inference, model=None, shift=0.0,
           record_stride: int | None = None) -> pc.InferenceResult:
    """Encode and settle normalised clips `[B, n_frames * hop]` jointly (traceable).

    The encoder proposes each clip's controls (shifted by `shift` octaves), the model
    (a `BoundModel`, or None for the default prior) proposes the upper latents, and
    one inference over the batch settles them. Returns the InferenceResult (latents
    {"controls", "upper"} with leading batch axis B; the energy sums over the batch).
    """
    n_frames = audio.shape[-1] // cspec.hop
    c = jax.vmap(lambda x: initial_controls(x, cspec=cspec, n_frames=n_frames))(audio)
    c = jax.tree.map(lambda a: a[:, 0], c)   # drop the per-clip batch axis of 1
    c = dict(c, log2_f0=c["log2_f0"] + shift)
    observed = sensory.observe(audio, sspec)
    blur0 = sensory.initial_blur_hz(c, inference.blur)
    upper = ()
    if model is not None:
        upper = _settle_upper(model, c, inference)
    latents = {"controls": c, "upper": upper}
    fn = make_energy_fn(observed, blur0, cspec=cspec, sspec=sspec, prior=prior,
                        inference=inference, model=model)
    result = pc.infer(fn, latents, optimizer=latent_optimizer(latents, inference),
                      n_steps=inference.n_steps, record_stride=record_stride)
    if model is None:
        return result
    c = result.latents["controls"]
    upper = _settle_upper(model, c, inference, top=result.latents["upper"][-1])
    latents = {"controls": c, "upper": upper}
    energy, aux = fn(latents, jnp.int32(inference.n_steps))
    return result._replace(latents=latents, energy=energy, aux=aux)


def _settle_clip(audio, model_params, *, cspec, sspec, prior, inference, record_stride, model_static):
    """One clip `[n_frames * hop]`, every octave start (vmapped): leading axis n_starts."""
    model = None if model_static is None else model_static.bind(model_params)

    def one_start(shift):
        return settle(audio[None], cspec=cspec, sspec=sspec, prior=prior, inference=inference,
                      model=model, shift=shift, record_stride=record_stride)

    return jax.vmap(one_start)(jnp.asarray(inference.octave_starts, jnp.float32))


@functools.partial(jax.jit, static_argnames=("cspec", "sspec", "prior", "inference", "record_stride",
                                             "model_static"))
def settle_batch(audio, model_params, *, cspec, sspec, prior, inference, record_stride=None,
                 model_static=None) -> pc.InferenceResult:
    """Encode and settle normalised clips `[B, n_frames * hop]` from every octave start.

    Returns an InferenceResult with leading axes [B, n_starts].
    """
    return jax.vmap(lambda x: _settle_clip(x, model_params, cspec=cspec, sspec=sspec, prior=prior,
                                           inference=inference, record_stride=record_stride,
                                           model_static=model_static))(audio)


def _prepare(audio, sample_rate, target_rate: int, *, name: str = "audio") -> tuple[np.ndarray, float]:
    """Validate, resample to `target_rate`, scale to REFERENCE_RMS; returns (audio, gain)."""
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
        from pcmusic import audio as audio_lib
        x = audio_lib.resample(x, int(sample_rate), target_rate)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    gain = REFERENCE_RMS / rms if rms > 1e-7 else 1.0
    return (x * gain).astype(np.float32), gain


def resolve_specs(*, model=None, n_voices: int = 1, cspec=None, sspec=None, prior=None,
                  inference=None) -> tuple:
    """(cspec, sspec, prior, inference): the model's where given, else the defaults."""
    if model is not None:
        cspec, sspec = model.spec.controls, model.spec.sensory
        prior = prior or model.spec.prior
    cspec = cspec or controls_lib.ControlSpec(n_voices=n_voices)
    sspec = sspec or sensory.SensorySpec(sample_rate=cspec.sample_rate)
    return cspec, sspec, prior or priors.ControlPrior(), inference or InferenceSpec()


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
      model: a trained `pcmusic.model.AudioModel`, or None for the untrained default
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
    result = settle_batch(jnp.asarray(batch), None if model is None else model.params,
                          cspec=cspec, sspec=sspec, prior=prior, inference=inference,
                          record_stride=record_stride,
                          model_static=None if model is None else model.static)
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
