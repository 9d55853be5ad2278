"""Listening: the network hears its own output as it hears any sound, and corrects its action.

Refinement (`pcmusic.generation.refinement`) predicts the model's own render by an
efference copy, so the sound of the controls it sends is no surprise *as a sound*. What
the network *perceives* in a sound, though, is what its perception settles on (the pitch
proposal and a few tens of inference steps: `pcmusic.perception.settle`, as training
does), and that is not exactly the controls that made it. Listening closes the loop
through that perception. Each step renders the action a, hears it (`Hearing`),
perceives it as controls h(a), and moves the action against the error between what it
heard and what its beliefs predict (pred = g2(z2)):

    a <- a - eta * w * (h(a) - pred)

with w the audibility of the predicted controls (`pcmusic.model.controls.audibility`: an
inaudible partial's amplitude is not heard, so it is not moved). This is a
Gauss-Newton step (dh/da ~ I) on the heard control-level energy E(a), the model's
own control-level term with h(a) in place of the controls; where perception is biased,
h(a) = a + b, it converges to a = pred - b: a sound heard as intended. Perception is
not differentiated through (it is tens of synthesis steps); a step that does not lower a
sample's E is rejected and that sample's eta halves, so E never rises. h is compared
with the action at the level of the sound heard: perception scales every clip to one
reference level, so the amplitudes it hears are shifted back by the level of the sound
it heard, both in the step and in E (the step then makes up for a quieter room with the
action, where refinement only explains it by its beliefs).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.errors import PcmusicError
from pcmusic.model import controls as controls_lib
from pcmusic.model import sensory
from pcmusic.perception import InferenceSpec, settle

LEVEL_KEYS = ("log_amp", "log_noise")   # log magnitudes: shifted by the level of the sound


@dataclasses.dataclass(frozen=True)
class Listening:
    """How generation listens to itself after refinement (`pcmusic.generate(listen=...)`).

    steps: listening steps (each one perception of the batch). step_size: eta, the
    fraction of the heard error an accepted step removes (halved per rejected step).
    inference: how the model perceives (the run's `[inference]`, as in training: the
    intents it banks are perceived so); None takes `InferenceSpec()`."""

    steps: int = 4
    step_size: float = 0.7
    inference: InferenceSpec | None = None

    def __post_init__(self):
        if self.steps < 0 or not 0.0 < self.step_size <= 1.0:
            raise PcmusicError(f"Listening needs steps >= 0 and 0 < step_size <= 1; got steps="
                               f"{self.steps}, step_size={self.step_size}")


class Listened(NamedTuple):
    """action: the final controls (batch n). energy: float32 `[n, steps + 1]`, the heard
    control-level energy before each step and after the last (never rising). accepted:
    bool `[n, steps]`. heard: the controls perceived in the final action's sound."""

    action: dict
    energy: np.ndarray
    accepted: np.ndarray
    heard: dict


def corrective_step(action: dict, heard: dict, pred: dict, weights: dict, step_size: jax.Array) -> dict:
    """a - eta * w * (h - pred) per control (every leaf `[n, ...]`; step_size `[n]`)."""
    def one(a, h, p, w):
        eta = step_size.reshape((-1,) + (1,) * (a.ndim - 1))
        return a - eta * w * (h - p)
    return {k: one(action[k], heard[k], pred[k], weights[k]) for k in action}


def listen_loop(action: dict, pred: dict, weights: dict, hear: Callable, *, steps: int,
                step_size: float) -> Listened:
    """The listening iteration for any `hear(action) -> (heard controls, energy [n])`.

    action, pred, weights: Controls-shaped dicts with batch n. Rejected steps (energy not
    lower, or not finite) leave a sample's action and halve its step size."""
    heard, energy = hear(action)
    energy = np.asarray(energy, np.float32)
    history, accepted = [energy], []
    eta = np.full(energy.shape, step_size, np.float32)
    for _ in range(steps):
        proposal = corrective_step(action, heard, pred, weights, jnp.asarray(eta))
        heard_p, energy_p = hear(proposal)
        energy_p = np.asarray(energy_p, np.float32)
        ok = np.isfinite(energy_p) & (energy_p <= energy)
        take = functools.partial(_select, jnp.asarray(ok))
        action, heard = jax.tree.map(take, proposal, action), jax.tree.map(take, heard_p, heard)
        energy, eta = np.where(ok, energy_p, energy), np.where(ok, eta, 0.5 * eta)
        history.append(energy)
        accepted.append(ok)
    acc = np.stack(accepted, 1) if accepted else np.zeros((energy.shape[0], 0), bool)
    return Listened(action=action, energy=np.stack(history, 1), accepted=acc, heard=heard)


def _select(ok, new, old):
    return jnp.where(ok.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)


@functools.partial(jax.jit, static_argnames=("inference", "hearing"))
def _hear(model, action, upper, intent, noise_keys, hear_keys, *, inference, hearing):
    """Render, hear, perceive: (heard controls at the sound's level, energy `[n]`)."""
    cspec = model.spec.controls
    hear_one = lambda x, k: hearing.apply(x[None], sample_rate=cspec.sample_rate, key=k)[0]  # noqa: E731
    audio = jax.vmap(hear_one)(render(action, noise_keys, cspec=cspec), hear_keys)
    gain = sensory.reference_gain(audio)
    heard = settle(audio * gain, inference=inference, model=model).latents["controls"]
    level = -jnp.log(gain)[:, 0]   # what the normalisation took off
    at_level = {k: v + level.reshape((-1,) + (1,) * (v.ndim - 1)) if k in LEVEL_KEYS else v
                for k, v in heard.items()}

    def energy(h, z2, z3, top):     # the model's control-level term, this sample alone
        batch1 = lambda v: v[None]  # noqa: E731
        _, aux = model.upper_energy(jax.tree.map(batch1, h), (z2[None], z3[None], top[None]),
                                    log_det=False)
        return aux["energies"][0]

    e = jax.vmap(energy)(at_level, *upper, intent)
    return at_level, e


@functools.partial(jax.jit, static_argnames=("cspec",))
def render(action: dict, noise_keys: jax.Array, *, cspec) -> jax.Array:
    """Each sample's sound `[n, n_samples]` as generation renders it: its own noise key `[n]`."""
    one = lambda a, k: controls_lib.render(jax.tree.map(lambda v: v[None], a), cspec, key=k)[0]  # noqa: E731
    return jax.vmap(one)(action, noise_keys)


def listen(model, action: dict, upper: tuple, intent: jax.Array, noise_keys: jax.Array,
           hear_keys: jax.Array, *, hearing, listening: Listening) -> Listened:
    """Listen to generated sounds and correct their actions (module docstring).

    model: a `pcmusic.AudioModel`. action: Controls (batch n) the oscillator bank plays.
    upper: the beliefs (z2 `[n, ...]`, z3 `[n, ...]`) whose prediction g2(z2) is what the
    sound should be heard as.
    intent `[n, 1, d_top]`. noise_keys, hear_keys `[n]`: the keys each sample's render
    noise and hearing were drawn with (its sound stays the same function of its action).
    """
    pred = model.predict_controls(upper[0])
    hear = functools.partial(_hear, model, upper=tuple(upper), intent=intent,
                             noise_keys=noise_keys, hear_keys=hear_keys,
                             inference=listening.inference or InferenceSpec(), hearing=hearing)
    return listen_loop(action, pred, model.audibility(pred), hear, steps=listening.steps,
                       step_size=listening.step_size)
