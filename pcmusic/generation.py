"""Generation with self-refinement: intend, predict, render, listen, refine.

`generate(model, key, n=..., seconds=..., refine_steps=...)` clamps the top level to
an intent (sampled from the intents the model met in training, `pcmusic.intents`, or
given), samples every level below it around its prediction (ancestral sampling with
the residual spread met in training; `temperature` 0 gives the top-down mean
prediction), and renders the controls (the unrefined sound). Then it
refines, as active inference: the network holds beliefs b = (controls c, z2, z3)
under the clamped intent and an action a (the controls it sends to the oscillator
bank, initially c). Each refinement step it renders a, *hears* it (through an
optional perturbation: gain, low-pass "room", additive noise), compares what it
heard with what its beliefs predict, and takes one gradient step on the joint
free energy

    F(a, b) = pi_s * 0.5 * sum_r w_r ||phi_r(hear(synth(a))) - phi_r(synth(c))||^2
            + 0.5 * pi_m * ||a - c||^2         (proprioceptive: the action follows belief)
            + prior(c - g2(z2)) + top-down errors(c, z2, z3 | intent)

in b (perception: infer what it heard) and in a (action: change the sound so what
is heard matches what is intended). phi_r(synth(c)) is an efference copy: the model
predicts its own render with the noise it drew, so it is surprised only by what hearing
did. The steps run in residual coordinates (each level's departure from its top-down
prediction, `RefineSpec.coordinates`), where F's minimum, the top-down mean, is reached
in tens of steps; in the beliefs themselves the chain is stiff. The structural prior scores the beliefs'
departure from the top-down prediction (`RefineSpec.structural_prior`), and F leaves
out the constant -0.5 log pi terms, so F >= 0 (0 for a sound that is exactly what
the intent predicts, up to the weak prior of `ModelSpec.latent_decay`). The noise of
a render is drawn once per sample so F is a deterministic function of (a, b), and it
never rises: a step that would raise it is retried at half the size
(`pcmusic.pc.descent`), so the step sizes need not be tuned to each model's scale. The
trace records F and its per-level terms at every step.

Then, optionally (`listen=Listening(...)`), it listens: it perceives each refined sound
as it perceives any sound (the run's inference, not an efference copy) and corrects the
action until the sound is heard as its beliefs predict (`pcmusic.listening`).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pcmusic import controls as controls_lib
from pcmusic import intents, listening, pc, priors, sensory, topdown
from pcmusic.hearing import Hearing
from pcmusic.listening import Listening  # noqa: F401 -- public here too
from pcmusic.topdown import sample_down  # noqa: F401 -- public here too
from pcmusic.errors import PcmusicError


@dataclasses.dataclass(frozen=True)
class RefineSpec:
    """How refinement steps: step sizes for beliefs (as perception's InferenceSpec) and action.

    coordinates: what the steps move. "residual" (default): each level's departure from
    its top-down prediction, z3 = g(intent) + u3 / sqrt(pi3), z2 = g3(z3) + u2 / sqrt(pi2),
    c = g2(z2) + e_c, a = c + e_a, and moving u2 carries c and a with it. The whitened
    residuals u take plain gradient steps of size lr_latent: their own levels' terms
    are 0.5 ||u||^2, whose gradient is u, so each step removes that fraction of a
    residual no error below it defends, whatever its scale (Adam would move every unit
    by about lr_latent a step, too slowly for large residuals, and jitter small ones).
    "direct": Adam steps (lr_latent 0.001 suits them) on the beliefs and action themselves,
    where the chain is stiff (moving z2 opens an error at the precise control level that c,
    held by what is heard, closes step by step): measured on a trained model, 40 direct
    steps left an ancestral sample's f0 ~90 cents from the top-down mean where residual
    steps bring it to ~20. F is the same.
    efference: True (default) predicts the model's own render with the noise it drew
    (`pcmusic.sensory.sensory_energy`'s noise_key): what it hears of its own sound
    differs from its prediction only by what hearing does; False predicts the noise in
    expectation, and the realisation's random spectral fluctuations then give F a rough
    floor that steps descend by moving pitch around.

    motor_precision scales the proprioceptive term 0.5 * pi_c * ||a - c||^2 that ties
    the action a to the believed controls c (pi_c: the model's control-level
    precisions). It lets the action follow a belief across the non-convex spectral
    landscape while the sensory term pulls it to undo what hearing does to the sound
    (weakly at these precisions: under a 6 dB gain cut the sensory error falls mostly by
    the beliefs moving, the action's amplitudes barely). The f0 steps are small because Adam's first steps are sign-like: every
    frame's f0 moving by the full step roughens the prediction, so a too-large step is
    rejected and retried smaller (F never rises); the steps ramp up linearly over
    warmup_steps. blur: initial spectral blur as in perception (0: none, so F is one
    fixed function of the state; a blur that fades makes F change under a still
    state). structural_prior: see `_prior_energy`."""

    lr_f0: float = 0.0002
    lr_amp: float = 0.02
    lr_latent: float = 0.2
    lr_action_f0: float = 0.0002
    lr_action_amp: float = 0.02
    sensory_precision: float = 0.01
    motor_precision: float = 1.0
    blur: float = 0.0
    structural_prior: str = "residual"
    warmup_steps: int = 10
    coordinates: str = "residual"
    efference: bool = True

    def __post_init__(self):
        if self.structural_prior not in ("residual", "controls", "none"):
            raise PcmusicError(f"RefineSpec.structural_prior must be 'residual', 'controls' or 'none'; "
                               f"got {self.structural_prior!r}")
        if self.coordinates not in ("residual", "direct"):
            raise PcmusicError(f"RefineSpec.coordinates must be 'residual' or 'direct'; "
                               f"got {self.coordinates!r}")


def _prior_energy(c: dict, departure: dict, spec, refine: RefineSpec) -> jax.Array:
    """Structural prior of the believed controls during refinement: `[B]`.

    "controls": on the controls c themselves (as perception). "residual" (default): on
    their departure c - g2(z2) from the top-down prediction (the control-level error of
    the upper energy, `departure`): the trained hierarchy already
    predicts the controls, and a prediction that is rougher than the default prior
    (piecewise-linear in time) would otherwise be smoothed away, taking what the
    intent asked for with it; the prior keeps the corrections smooth. "none": off.
    """
    if refine.structural_prior == "none":
        return jnp.zeros(c["log2_f0"].shape[:1], jnp.float32)
    if refine.structural_prior == "controls":
        return priors.energy(c, spec.prior, spec.controls)
    return priors.energy(departure, dataclasses.replace(spec.prior, inharm_precision=0.0), spec.controls)


class Trace(NamedTuple):
    """What refinement did, per sample.

    energy: float32 `[n, refine_steps + 1]`, F before each step and after the last.
    energies: float32 `[n, refine_steps + 1, n_levels]` (sensory, controls, z2, z3, top).
    intent: float32 `[n, 1, d_top]`. controls: the final action (Controls dict, batch n).
    unrefined_audio: float32 `[n, n_samples]`, the top-down render before refinement.
    listened: None without listening, else `pcmusic.listening.Listened` (its energy
    `[n, steps + 1]`: the heard control-level energy per listening step).
    """

    energy: np.ndarray
    energies: np.ndarray
    intent: np.ndarray
    controls: dict
    unrefined_audio: np.ndarray
    listened: listening.Listened | None = None


def sample_intent(model, key: jax.Array, n: int) -> jax.Array:
    """Draw n intents `[n, 1, d_top]` like those the model met in training
    (`pcmusic.intents.sample_intents`: a kernel density estimate over the settled tops
    it kept, else a Gaussian with their running mean and s.d.; the top prior
    N(top_mean, 1/pi_top) for params without either). PC learning settles the tops far
    inside the unit-variance inference prior, so prior samples would be intents the
    model has never met."""
    return intents.sample_intents(model.params, key, n)


def _group_optimizer(spec: RefineSpec, labels: list) -> optax.GradientTransformation:
    groups = {"f0": spec.lr_f0, "amp": spec.lr_amp, "latent": spec.lr_latent,
              "act_f0": spec.lr_action_f0, "act_amp": spec.lr_action_amp}
    def adam(lr):   # a linear warm-up: Adam's first steps are sign-like, full-size in every unit.
        # It starts above 0: a step of size 0 can score an ulp above the state it leaves (the
        # proposal's energy is computed by another program), be rejected, and as a rejected
        # step does not advance the schedule, every later one would be of size 0 too.
        n = spec.warmup_steps
        return optax.adam(optax.linear_schedule(lr / (n + 1), lr, n) if n else lr)
    transforms = {g: adam(lr) for g, lr in groups.items()}
    if spec.coordinates == "residual":   # whitened residuals: their own term's gradient is u itself
        transforms["latent"] = optax.sgd(spec.lr_latent)
    return optax.multi_transform(transforms, labels)


def _labels(state: dict) -> list:
    def control_labels(c, prefix):
        return {k: prefix + ("f0" if k == "log2_f0" else "amp") for k in c}
    tree = {"action": control_labels(state["action"], "act_"),
            "beliefs": {"controls": control_labels(state["beliefs"]["controls"], ""),
                        "upper": jax.tree.map(lambda _: "latent", state["beliefs"]["upper"])}}
    return jax.tree.leaves(tree)


def _generate_one(params, intent, key, *, spec, n_frames, refine_steps, hearing, refine, temperature):
    """One sample (intent `[1, 1, d_top]`): (audio, unrefined, action, F history, terms, diverged,
    the beliefs' (z2, z3), the render's and hearing's keys)."""
    model = spec.bind(params)
    cspec, sspec = spec.controls, spec.sensory
    k_noise, k_hear, k_sample = jax.random.split(key, 3)
    c0, z2, z3 = sample_down(model, intent, k_sample, n_frames=n_frames, temperature=temperature)
    c0 = dict(c0, log2_f0=jnp.clip(c0["log2_f0"], np.log2(cspec.f0_min_hz), np.log2(cspec.f0_max_hz)))

    def heard(action):
        audio = controls_lib.render(action, cspec, key=k_noise)
        return audio, hearing.apply(audio, sample_rate=cspec.sample_rate, key=k_hear)

    blur0 = sensory.initial_blur_hz(c0, refine.blur)

    def energy_fn(state, step):
        _, x = heard(state["action"])
        c = state["beliefs"]["controls"]
        e_sens, errors = sensory.sensory_energy(
            c, sensory.observe(x, sspec), blur0 * sensory.blur_fade(step, refine_steps),
            cspec=cspec, sspec=sspec, precision=refine.sensory_precision,
            noise_key=k_noise if refine.efference else None)
        e_sens = jnp.sum(e_sens)
        e_up, aux = model.upper_energy(c, (*state["beliefs"]["upper"], intent), step=step, log_det=False)
        e_prior = jnp.sum(_prior_energy(c, aux["errors"][0], spec, refine))
        # Proprioceptive error: the action is predicted by the belief about the controls,
        # with the model's own control-level precision (motor noise = prediction noise).
        motor = jax.tree.map(jnp.subtract, state["action"], c)
        e_motor = pc.gaussian_term(motor, jax.lax.stop_gradient(model.params["pc"]["log_precision"][0]),
                                   scale=jnp.float32(refine.motor_precision))
        energies = jnp.stack([e_sens + e_motor, e_prior + aux["energies"][0], *aux["energies"][1:]])
        return jnp.sum(energies), {"energies": energies, "errors": (errors, *aux["errors"])}

    if refine.coordinates == "residual":   # the same F, descended in residual coordinates
        state, to_direct = topdown.residual_coordinates(model, intent, c0, z2, z3)
    else:
        state = {"action": c0, "beliefs": {"controls": c0, "upper": (z2, z3)}}
        to_direct = lambda s: s  # noqa: E731
    unrefined, _ = heard(c0)
    if refine_steps == 0:
        e, aux = energy_fn(to_direct(state), jnp.int32(0))
        return (unrefined, unrefined, c0, e[None], aux["energies"][None], jnp.bool_(False), (z2, z3),
                k_noise, k_hear)
    result = pc.monotone_descent(lambda s, step: energy_fn(to_direct(s), step), state,
                                 n_steps=refine_steps, optimizer=_group_optimizer(refine, _labels(state)))
    final = to_direct(result.latents)
    audio, _ = heard(final["action"])
    return (audio, unrefined, final["action"], result.energy_history, result.terms, result.diverged,
            final["beliefs"]["upper"], k_noise, k_hear)


@functools.partial(jax.jit, static_argnames=("spec", "n_frames", "refine_steps", "hearing", "refine",
                                             "temperature"))
def _generate(params, intents, keys, **static):
    """vmap of `_generate_one` over intents `[n, 1, d_top]` and keys `[n]`; batch axes squeezed."""
    out = jax.vmap(lambda i, k: _generate_one(params, i[None], k, **static))(intents, keys)
    audio, unrefined, action, history, terms, diverged, upper, k_noise, k_hear = out
    squeeze = lambda a: a[:, 0]  # noqa: E731
    return (squeeze(audio), squeeze(unrefined), jax.tree.map(squeeze, action), history, terms,
            diverged, jax.tree.map(squeeze, upper), k_noise, k_hear)


def generate(model, key: jax.Array, *, n: int = 1, seconds: float = 1.0, refine_steps: int = 50,
             intent=None, temperature: float = 1.0, hearing: Hearing | None = None,
             refine: RefineSpec | None = None, listen: Listening | None = None):
    """Generate n sounds from a model, refined by listening to itself.

    Args:
      model: a `pcmusic.model.AudioModel` (trained for meaningful output).
      key: PRNG key (intents, render noise, hearing noise). n: samples (ignored when
        `intent` is given). seconds: length (rounded up to whole top-level frames).
      refine_steps: perception-action steps after the top-down render (0: none).
      intent: optional float `[n, 1, d_top]` (or `[n, d_top]`) clamped at the top.
      temperature: scale of the ancestral sampling noise below the intent (0: the
        top-down mean; 1: the model's own uncertainty).
      hearing: perturbation of what the network hears (default: none).
      listen: after refinement, listen to each sound with the model's own perception and
        correct the action until it is heard as the beliefs predict (`pcmusic.listening`;
        pass the run's `[inference]` in it); None: no listening.
    Returns:
      (audio float32 `[n, n_samples]` at model.spec.controls.sample_rate, Trace).
    """
    spec = model.spec
    if seconds <= 0 or refine_steps < 0 or n < 1:
        raise PcmusicError(f"need seconds > 0, refine_steps >= 0 and n >= 1; got {seconds}, "
                           f"{refine_steps}, {n}")
    k_intent, k_run = jax.random.split(key)
    d_top = spec.latent_dims[-1]
    if intent is None:
        intent = sample_intent(model, k_intent, n)
    intent = jnp.asarray(intent, jnp.float32)
    if intent.ndim == 2:
        intent = intent[:, None, :]
    if intent.ndim != 3 or intent.shape[1:] != (1, d_top):
        raise PcmusicError(f"intent must be [n, {d_top}] or [n, 1, {d_top}]; got {intent.shape}")
    n_frames = spec.pad_frames(spec.controls.n_frames(round(seconds * spec.controls.sample_rate)))
    keys = jax.random.split(k_run, intent.shape[0])
    hearing = hearing or Hearing()
    audio, unrefined, action, history, terms, diverged, upper, k_noise, k_hear = _generate(
        model.params, intent, keys, spec=spec, n_frames=n_frames, refine_steps=refine_steps,
        hearing=hearing, refine=refine or RefineSpec(), temperature=float(temperature))
    if bool(jnp.any(diverged)):
        raise PcmusicError(f"the energy of samples {np.flatnonzero(np.asarray(diverged))} is not finite "
                           "before refinement (NaN/Inf in the top-down prediction): the model's "
                           "params hold NaN/Inf or the intent is far outside what it met in training")
    listened = None
    if listen is not None and listen.steps > 0:
        listened = listening.listen(model, action, upper, intent, k_noise, k_hear, hearing=hearing,
                                    listening=listen)
        action = listened.action
        audio = listening.render(action, k_noise, cspec=spec.controls)
        listened = listened._replace(action=jax.tree.map(np.asarray, action),
                                     heard=jax.tree.map(np.asarray, listened.heard))
    trace = Trace(energy=np.asarray(history), energies=np.asarray(terms), intent=np.asarray(intent),
                  controls=jax.tree.map(np.asarray, action), unrefined_audio=np.asarray(unrefined),
                  listened=listened)
    return np.asarray(audio), trace
