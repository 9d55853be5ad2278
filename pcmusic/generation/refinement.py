"""Refinement: render, hear, and descend the free energy of what was intended.

Under a clamped intent the network holds beliefs b = (controls c, z2, z3) and an action
a (the controls it sends to the oscillator bank, initially c). Each refinement step it
renders a, hears it through a `Hearing` (identity by default; a level change, a
muffling room, added noise), and takes one gradient step on the joint free energy

    F(a, b) = pi_s * 0.5 * sum_r w_r ||phi_r(hear(synth(a))) - phi_r(synth(c))||^2
            + 0.5 * pi_m * ||a - c||^2          (proprioceptive: the action follows belief)
            + prior(c - g2(z2)) + E_up(c, z2, z3 | intent)

in b (perception: infer what it heard) and in a (action: change the sound so what is
heard matches what is intended). phi_r(synth(c)) is an efference copy: the model predicts
its own render with the noise it drew, so it is surprised only by what hearing did. The
structural prior scores the beliefs' departure c - g2(z2) from the top-down prediction
(the prediction is the model's; the prior keeps corrections to it smooth), and F leaves
out the constant -0.5 log pi terms, so F >= 0, and 0 for a sound that is exactly what the
intent predicts (up to the weak latent decay).

The steps run in residual coordinates: each belief is its top-down prediction plus a
whitened residual, z3 = g_top(intent) + s3 u3, z2 = g3(z3) + s2 u2, c = g2(z2) + e_c,
a = c + e_a, s_l = 1/sqrt(pi_l), so level l's own term is 0.5 ||u_l||^2, whose gradient is
u_l itself: a plain gradient step of size lr_latent removes that fraction of a residual no
error below defends. Moving u2 carries c and a with it; in the beliefs themselves the
chain is stiff. The noise of a render is drawn once per sample so F is a deterministic
function of the state, and F never rises: a step that would raise it is retried at half
the size (`pcmusic.pc.monotone_descent`).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pcmusic import pc
from pcmusic.model import controls as controls_lib
from pcmusic.model import priors, sensory
from pcmusic.generation.sampling import sample_down


@dataclasses.dataclass(frozen=True)
class Hearing:
    """How the network hears its own output (identity by default).

    gain_db: level change in dB. lowpass_hz: a first-order low-pass ("a muffling room"),
    None for none. noise_db: white noise at this level in dB re the sensory reference
    level (`pcmusic.model.sensory.REFERENCE_RMS`), None for none."""

    gain_db: float = 0.0
    lowpass_hz: float | None = None
    noise_db: float | None = None

    def apply(self, audio: jax.Array, *, sample_rate: int, key: jax.Array) -> jax.Array:
        """Perturb float32 audio `[B, n]` (differentiable; the noise is fixed by `key`)."""
        out = audio * jnp.float32(10 ** (self.gain_db / 20))
        if self.lowpass_hz is not None:
            freqs = jnp.fft.rfftfreq(audio.shape[-1], 1.0 / sample_rate).astype(jnp.float32)
            ratio = freqs / jnp.float32(self.lowpass_hz)
            response = jax.lax.complex(1.0 / (1.0 + ratio ** 2), -ratio / (1.0 + ratio ** 2))
            out = jnp.fft.irfft(jnp.fft.rfft(out, axis=-1) * response[None],
                                n=audio.shape[-1], axis=-1)
        if self.noise_db is not None:
            level = sensory.REFERENCE_RMS * 10 ** (self.noise_db / 20)
            out = out + jnp.float32(level) * jax.random.normal(key, audio.shape, jnp.float32)
        return out


@dataclasses.dataclass(frozen=True)
class RefineSpec:
    """How refinement steps.

    lr_f0 / lr_amp: Adam step sizes of the control departures e_c and e_a (log2 f0 in
    octaves; log amplitudes in nepers); their steps ramp up linearly over warmup_steps,
    because Adam's first steps are sign-like (every frame's f0 moving by a full step
    roughens the prediction). lr_latent: plain gradient step on the whitened residuals
    u2, u3 (module docstring). sensory_precision: pi_s. motor_precision: scales the
    proprioceptive term 0.5 pi_c ||a - c||^2 (pi_c: the model's control-level
    precisions). blur: initial spectral blur as in perception (0: none, so F is one fixed
    function of the state)."""

    lr_f0: float = 0.0002
    lr_amp: float = 0.02
    lr_latent: float = 0.2
    sensory_precision: float = 0.01
    motor_precision: float = 1.0
    blur: float = 0.0
    warmup_steps: int = 10


def residual_coordinates(model, intent, c0, z2, z3):
    """(coordinates, to_direct) of refinement's state -- action c0, beliefs (c0, z2, z3)
    under a clamped intent `[B, 1, d_top]` -- in residual coordinates (module docstring),
    and the map back to {"action", "beliefs": {"controls", "upper": (z2, z3)}}."""
    n_frames = c0["log2_f0"].shape[-1]
    scale = [jnp.exp(-0.5 * model.params["pc"]["log_precision"][level]) for level in (1, 2)]
    z3_pred = model.predict(2, intent, n_frames)
    coords = {"action": jax.tree.map(jnp.zeros_like, c0),
              "beliefs": {"controls": jax.tree.map(jnp.subtract, c0, model.predict_controls(z2)),
                          "upper": ((z2 - model.predict(1, z3, n_frames)) / scale[0],
                                    (z3 - z3_pred) / scale[1])}}

    def to_direct(coords):
        u2, u3 = coords["beliefs"]["upper"]
        z3_ = z3_pred + scale[1] * u3
        z2_ = model.predict(1, z3_, n_frames) + scale[0] * u2
        c = jax.tree.map(jnp.add, model.predict_controls(z2_), coords["beliefs"]["controls"])
        return {"action": jax.tree.map(jnp.add, c, coords["action"]),
                "beliefs": {"controls": c, "upper": (z2_, z3_)}}
    return coords, to_direct


def _optimizer(spec: RefineSpec, labels: list) -> optax.GradientTransformation:
    def adam(lr):   # a linear warm-up from above 0: a step of size 0 can score an ulp above the
        # state it leaves, be rejected, and a rejected step does not advance the schedule.
        n = spec.warmup_steps
        return optax.adam(optax.linear_schedule(lr / (n + 1), lr, n) if n else lr)
    return optax.multi_transform({"f0": adam(spec.lr_f0), "amp": adam(spec.lr_amp),
                                  "latent": optax.sgd(spec.lr_latent)}, labels)


def _labels(state: dict) -> list:
    def control_labels(c):
        return {k: "f0" if k == "log2_f0" else "amp" for k in c}
    tree = {"action": control_labels(state["action"]),
            "beliefs": {"controls": control_labels(state["beliefs"]["controls"]),
                        "upper": jax.tree.map(lambda _: "latent", state["beliefs"]["upper"])}}
    return jax.tree.leaves(tree)


def _refine_one(model, intent, key, *, n_frames, refine_steps, hearing, refine, temperature):
    """One sample (intent `[1, 1, d_top]`): (audio, unrefined, action, F history, terms,
    diverged, the beliefs' (z2, z3), the render's and hearing's keys)."""
    spec = model.spec
    cspec, sspec = spec.controls, spec.sensory
    k_noise, k_hear, k_sample = jax.random.split(key, 3)
    c0, z2, z3 = sample_down(model, intent, k_sample, n_frames=n_frames, temperature=temperature)
    c0 = dict(c0, log2_f0=jnp.clip(c0["log2_f0"], np.log2(cspec.f0_min_hz), np.log2(cspec.f0_max_hz)))
    smooth = dataclasses.replace(spec.prior, inharm_precision=0.0)

    def heard(action):
        audio = controls_lib.render(action, cspec, key=k_noise)
        return audio, hearing.apply(audio, sample_rate=cspec.sample_rate, key=k_hear)

    blur0 = sensory.initial_blur_hz(c0, refine.blur)

    def energy_fn(state, step):
        _, x = heard(state["action"])
        c = state["beliefs"]["controls"]
        e_sens, errors = sensory.annealed_sensory_energy(
            c, sensory.observe(x, sspec), blur0, step, n_steps=refine_steps, blurred=refine.blur != 0,
            cspec=cspec, sspec=sspec, precision=refine.sensory_precision, noise_key=k_noise)
        e_sens = jnp.sum(e_sens)
        e_up, aux = model.upper_energy(c, (*state["beliefs"]["upper"], intent), step=step, log_det=False)
        e_prior = jnp.sum(priors.energy(aux["errors"][0], smooth, cspec))
        # Proprioceptive error: the action is predicted by the belief about the controls,
        # with the model's own control-level precision (motor noise = prediction noise).
        motor = jax.tree.map(jnp.subtract, state["action"], c)
        e_motor = pc.gaussian_term(motor, jax.lax.stop_gradient(model.params["pc"]["log_precision"][0]),
                                   scale=jnp.float32(refine.motor_precision))
        energies = jnp.stack([e_sens + e_motor, e_prior + aux["energies"][0], *aux["energies"][1:]])
        return jnp.sum(energies), {"energies": energies, "errors": (errors, *aux["errors"])}

    state, to_direct = residual_coordinates(model, intent, c0, z2, z3)
    unrefined, _ = heard(c0)
    if refine_steps == 0:
        e, aux = energy_fn(to_direct(state), jnp.int32(0))
        return (unrefined, unrefined, c0, e[None], aux["energies"][None], jnp.bool_(False), (z2, z3),
                k_noise, k_hear)
    result = pc.monotone_descent(lambda s, step: energy_fn(to_direct(s), step), state,
                                 n_steps=refine_steps, optimizer=_optimizer(refine, _labels(state)))
    final = to_direct(result.latents)
    audio, _ = heard(final["action"])
    return (audio, unrefined, final["action"], result.energy_history, result.terms, result.diverged,
            final["beliefs"]["upper"], k_noise, k_hear)


@functools.partial(jax.jit, static_argnames=("n_frames", "refine_steps", "hearing", "refine",
                                             "temperature"))
def refine_batch(model, intents, keys, **static):
    """Sample below and refine each of intents `[n, 1, d_top]` with its key of `keys` `[n]`
    (vmapped): (audio `[n, n_samples]`, unrefined audio, final action, F history `[n, K+1]`,
    per-level terms `[n, K+1, 4]`, diverged `[n]`, beliefs (z2, z3), noise keys, hearing keys)."""
    out = jax.vmap(lambda i, k: _refine_one(model, i[None], k, **static))(intents, keys)
    audio, unrefined, action, history, terms, diverged, upper, k_noise, k_hear = out
    squeeze = lambda a: a[:, 0]  # noqa: E731
    return (squeeze(audio), squeeze(unrefined), jax.tree.map(squeeze, action), history, terms,
            diverged, jax.tree.map(squeeze, upper), k_noise, k_hear)
