"""Generation: intend, predict, render, refine, listen.

`generate(model, key, n=..., seconds=..., refine_steps=...)` clamps the top level to an
intent (sampled from those the model met in training, or given), samples every level
below it around its prediction (`pcmusic.generation.sampling`; temperature 0 gives the
top-down mean), renders the controls (the unrefined sound), refines them by descending
the free energy of what it hears of its own render (`pcmusic.generation.refinement`)
and, optionally, listens: it perceives each refined sound as it perceives any sound and
corrects the action until the sound is heard as its beliefs predict
(`pcmusic.generation.listening`).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic import checks
from pcmusic.errors import PcmusicError
from pcmusic.generation import listening as listening_lib
from pcmusic.generation.listening import Listened, Listening
from pcmusic.generation.refinement import Hearing, RefineSpec, refine_batch
from pcmusic.generation.sampling import sample_intent
from pcmusic.model import AudioModel

BYTES_PER_SAMPLE = 1024   # working memory per output sample (renders, spectra, listening)


class Trace(NamedTuple):
    """What refinement did, per sample.

    energy: float32 `[n, refine_steps + 1]`, F before each step and after the last.
    energies: float32 `[n, refine_steps + 1, n_levels]` (sensory, controls, z2, z3, top).
    intent: float32 `[n, 1, d_top]`. controls: the final action (Controls dict, batch n).
    unrefined_audio: float32 `[n, n_samples]`, the top-down render before refinement.
    listened: None without listening, else `Listened` (its energy
    `[n, steps + 1]`: the heard control-level energy per listening step).
    """

    energy: np.ndarray
    energies: np.ndarray
    intent: np.ndarray
    controls: dict
    unrefined_audio: np.ndarray
    listened: Listened | None = None


def generate(model, key: jax.Array, *, n: int = 1, seconds: float = 1.0, refine_steps: int = 50,
             intent=None, temperature: float = 1.0, hearing: Hearing | None = None,
             refine: RefineSpec | None = None, listen: Listening | None = None):
    """Generate n sounds from a model, refined by listening to itself.

    Args:
      model: a `pcmusic.AudioModel` (trained for meaningful output).
      key: PRNG key (intents, render noise, hearing noise). n: samples (ignored when
        `intent` is given). seconds: length (rounded up to whole top-level frames).
      refine_steps: perception-action steps after the top-down render (0: none).
      intent: optional float `[n, 1, d_top]` (or `[n, d_top]`) clamped at the top.
      temperature: scale of the ancestral sampling noise below the intent (0: the
        top-down mean; 1: the model's own uncertainty).
      hearing: perturbation of what the network hears (default: none).
      listen: after refinement, listen to each sound with the model's own perception and
        correct the action until it is heard as the beliefs predict (`Listening`;
        pass the run's `[inference]` in it); None: no listening.
    Returns:
      (audio float32 `[n, n_samples]` at model.spec.controls.sample_rate, Trace).
    """
    if not isinstance(model, AudioModel):
        raise PcmusicError(f"model must be an AudioModel (pcmusic.load_model or pcmusic.init_model); "
                           f"got {type(model).__name__}")
    spec = model.spec
    key = checks.prng_key(key)
    seconds = checks.real(seconds, "seconds", minimum=0.0, strict_minimum=True)
    refine_steps = checks.integer(refine_steps, "refine_steps", minimum=0)
    temperature = checks.real(temperature, "temperature", minimum=0.0)
    d_top = spec.latent_dims[-1]
    if intent is None:
        n = checks.integer(n, "n", minimum=1)
    else:
        intent = np.asarray(intent, np.float32)
        if intent.ndim == 2:
            intent = intent[:, None, :]
        if intent.ndim != 3 or intent.shape[1:] != (1, d_top) or intent.shape[0] < 1:
            raise PcmusicError(f"intent must be [n, {d_top}] or [n, 1, {d_top}]; got {intent.shape}")
        if not np.all(np.isfinite(intent)):
            raise PcmusicError("intent holds NaN/Inf values; give finite intents")
        n = intent.shape[0]
    n_frames = spec.pad_frames(spec.controls.n_frames(round(seconds * spec.sample_rate)))
    checks.check_memory(n * n_frames * spec.controls.hop * BYTES_PER_SAMPLE,
                        f"generate n={n} x {seconds:g} s", "fewer or shorter sounds")
    k_intent, k_run = jax.random.split(key)
    if intent is None:
        intent = sample_intent(model, k_intent, n)
    intent = jnp.asarray(intent, jnp.float32)
    keys = jax.random.split(k_run, intent.shape[0])
    hearing = hearing or Hearing()
    audio, unrefined, action, history, terms, diverged, upper, k_noise, k_hear = refine_batch(
        model, intent, keys, n_frames=n_frames, refine_steps=refine_steps,
        hearing=hearing, refine=refine or RefineSpec(), temperature=temperature)
    if bool(jnp.any(diverged)):
        raise PcmusicError(f"the energy of samples {np.flatnonzero(np.asarray(diverged))} is not finite "
                           "before refinement (NaN/Inf in the top-down prediction): the model's "
                           "params hold NaN/Inf or the intent is far outside what it met in training")
    listened = None
    if listen is not None and listen.steps > 0:
        listened = listening_lib.listen(model, action, upper, intent, k_noise, k_hear,
                                        hearing=hearing, listening=listen)
        action = listened.action
        audio = listening_lib.render(action, k_noise, cspec=spec.controls)
        listened = listened._replace(action=jax.tree.map(np.asarray, action),
                                     heard=jax.tree.map(np.asarray, listened.heard))
    trace = Trace(energy=np.asarray(history), energies=np.asarray(terms), intent=np.asarray(intent),
                  controls=jax.tree.map(np.asarray, action), unrefined_audio=np.asarray(unrefined),
                  listened=listened)
    return np.asarray(audio), trace
