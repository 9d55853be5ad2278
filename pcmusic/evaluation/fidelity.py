"""Does refinement bring a generated sound closer to what was intended?

`refinement_fidelity` generates sounds from clamped intents, then asks the model what
intent it hears in each output, refined and unrefined: the intent it would bank for
that sound in training (`pcmusic.perception.intent`: settle as training does, then
the top shot from the settled top, the one whose top-down prediction best reproduces
the settled controls). Refinement serves the intent where the refined output's
perceived intent lies nearer the clamped one than the unrefined output's.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic import generation
from pcmusic.errors import PcmusicError
from pcmusic.perception import InferenceSpec, perceive_intents


class Fidelity(NamedTuple):
    """Per sample (n): distance (Euclidean, top space) from the clamped intent to the
    intent perceived in the refined / unrefined output: `refined`, `unrefined` float
    `[n]`. energy: mean F over the batch per refinement step, `[refine_steps + 1]`.
    intents: the clamped intents `[n, d_top]`; perceived_refined / perceived_unrefined
    `[n, d_top]`. spread: mean distance of the intents from their mean (a scale).
    listen_energy: mean heard energy over the batch per listening step `[steps + 1]`
    (`pcmusic.generation.listening`), None without listening; "refined" is then after
    listening."""

    refined: np.ndarray
    unrefined: np.ndarray
    energy: np.ndarray
    intents: np.ndarray
    perceived_refined: np.ndarray
    perceived_unrefined: np.ndarray
    spread: float
    listen_energy: np.ndarray | None = None

    @property
    def fraction_closer(self) -> float:
        """Share of samples whose refined output is perceived nearer the intent."""
        return float(np.mean(self.refined < self.unrefined))

    @property
    def energy_ratio(self) -> float:
        """Final over initial mean energy."""
        return float(self.energy[-1] / self.energy[0])

    @property
    def energy_nonincreasing(self) -> bool:
        return bool(np.all(np.diff(self.energy) <= 1e-6 * abs(self.energy[0])))

    def summary(self) -> dict:
        return {"n": int(self.refined.shape[0]), "fraction_closer": self.fraction_closer,
                "energy_ratio": self.energy_ratio, "energy_nonincreasing": self.energy_nonincreasing,
                "mean_distance_refined": float(self.refined.mean()),
                "mean_distance_unrefined": float(self.unrefined.mean()),
                "intent_spread": self.spread,
                "energy_first_last": [float(self.energy[0]), float(self.energy[-1])],
                "listen_energy_first_last": None if self.listen_energy is None else
                [float(self.listen_energy[0]), float(self.listen_energy[-1])]}


def perceived_intents(model, audio, *, inference: InferenceSpec,
                      intent_shoot_steps: int, batch_size: int = 32) -> np.ndarray:
    """The intents `[n, d_top]` the model hears in float audio `[n, n_samples]` (at its
    sample rate; n_samples a multiple of hop * frames_per_top), in batches."""
    audio = np.asarray(audio, np.float32)
    out = [np.asarray(perceive_intents(model, jnp.asarray(audio[i:i + batch_size]),
                                       inference=inference, intent_shoot_steps=intent_shoot_steps))
           for i in range(0, audio.shape[0], batch_size)]
    tops = np.concatenate(out)
    if not np.all(np.isfinite(tops)):
        bad = np.flatnonzero(~np.all(np.isfinite(tops), axis=-1))
        raise PcmusicError(f"perceiving generated sounds {bad.tolist()} diverged (NaN/Inf energy): "
                           "the model's params or its inference settings do not fit these sounds")
    return tops


def refinement_fidelity(model, key: jax.Array, *, n: int = 32, seconds: float = 0.5,
                        refine_steps: int = 40, temperature: float = 1.0,
                        inference: InferenceSpec | None = None,
                        intent_shoot_steps: int = 200, refine: generation.RefineSpec | None = None,
                        hearing: generation.Hearing | None = None,
                        listen: generation.Listening | None = None) -> Fidelity:
    """Generate n sounds of `seconds` from intents sampled as `pcmusic.generate` does,
    refine each for `refine_steps`, and compare the intents perceived in the refined and
    the unrefined outputs with the clamped ones (see the module docstring).

    inference: how the model settles what it hears (the run's `[inference]`; default
    InferenceSpec()). intent_shoot_steps: shooting steps of the perceived intent (the
    run's train.intent_shoot_steps; 0 takes the settled top). listen: listening after
    refinement (`pcmusic.Listening`; None: none)."""
    if n < 2:
        raise PcmusicError(f"refinement_fidelity needs n >= 2 sounds to compare; got n={n}")
    inference = inference or InferenceSpec()
    k_intent, k_gen = jax.random.split(key)
    intents = generation.sample_intent(model, k_intent, n)
    audio, trace = generation.generate(model, k_gen, intent=intents, seconds=seconds,
                                       refine_steps=refine_steps, temperature=temperature,
                                       refine=refine, hearing=hearing, listen=listen)
    kw = dict(inference=inference, intent_shoot_steps=intent_shoot_steps)
    refined = perceived_intents(model, audio, **kw)
    unrefined = perceived_intents(model, trace.unrefined_audio, **kw)
    clamped = np.asarray(intents)[:, 0]
    return Fidelity(refined=np.linalg.norm(refined - clamped, axis=1),
                    unrefined=np.linalg.norm(unrefined - clamped, axis=1),
                    energy=trace.energy.mean(0), intents=clamped, perceived_refined=refined,
                    perceived_unrefined=unrefined,
                    spread=float(np.linalg.norm(clamped - clamped.mean(0), axis=1).mean()),
                    listen_energy=None if trace.listened is None else trace.listened.energy.mean(0))
