"""Phrases: intend, draw notes, render them through the oscillator bank, listen, correct.

`generate_phrases(key, prior, n=..., seconds=...)` clamps the note level's top to an
intent (register, tempo, level; drawn fresh from the prior's intent distribution, or
given), draws a phrase of notes from the learned note prior
(`pcmusic.model.note_prior.sample_phrase`: intervals, tuning, rhythm, rests), lets the
notes predict the controls (`pcmusic.model.notes.predict_controls`) and renders them.
Then it listens: it perceives its own sound as it perceives any sound (notes and
all, `pcmusic.perceive`), matches each intended note with the heard note nearest its
onset (within MATCH_ONSET_S), and corrects the action by the error (each note played
lower by what was heard too high) before it plays and listens again. The intended
notes stay what they were: the phrase's pitches are the note level's, and the pitch
error of the last sound heard is reported per note.

With a trained `AudioModel` (`model=`) the phrase is the model's: its notes take the
spectral shape of the sounds the model's hierarchy predicts (`model_timbre`), they are
rendered at the model's control rate, and the model hears them with its own perception
(notes settled under its hierarchy, `pcmusic.perceive(model=...)`). Where the note
prior links the model's intents to phrase intents (a run's own prior,
`pcmusic.model.note_prior.fit(..., tops=)`), generation starts one level higher: it
draws a hierarchy intent as the model's generation does
(`pcmusic.generation.sampling.sample_intent`), and that one intent sets both the
phrase intent (through the link) and the phrase's timbre (the sound it predicts down
the hierarchy, `intent_timbres`).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic import checks
from pcmusic.errors import PcmusicError
from pcmusic.model import AudioModel
from pcmusic.model import controls as controls_lib
from pcmusic.model import note_prior as note_prior_lib
from pcmusic.model import notes as notes_lib

MATCH_ONSET_S = 0.05       # a heard note within this of an intended onset is that note
PARTIAL_SLOPE = 1.0        # the default timbre: partial k at k^-slope of the first


class Phrase(NamedTuple):
    """One generated phrase.

    audio: float32 `[n_samples]` at the control spec's sample rate (the last render).
    intended: float64 `[n, 5]` note records (`NOTE_COLUMNS`) the note level intended.
    heard: float64 `[m, 5]` the notes perceived in `audio` (empty without listening).
    pitch_error_cents: float64 `[n]` heard minus intended pitch per intended note
      (NaN where no heard note matched; all NaN without listening).
    intent: float32 `[3]` register (log2 Hz), tempo (log s), level (dB).
    top: float32 `[d_top]` the hierarchy intent the phrase intent was drawn under
      (empty where none was: a prior without a link, or a given intent).
    """

    audio: np.ndarray
    intended: np.ndarray
    heard: np.ndarray
    pitch_error_cents: np.ndarray
    intent: np.ndarray
    top: np.ndarray = np.zeros(0, np.float32)


def default_timbre(n_harmonics: int, spec: notes_lib.NoteSpec) -> np.ndarray:
    """float32 `[n_timbre]`: the timbre code closest (least squares) to partials at
    k^-PARTIAL_SLOPE, without its mean."""
    basis = notes_lib.timbre_basis(n_harmonics, spec.n_timbre).astype(np.float64)
    target = -PARTIAL_SLOPE * np.log(np.arange(1, n_harmonics + 1))
    design = np.concatenate([np.ones((n_harmonics, 1)), basis.T], axis=1)
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    return coef[1:].astype(np.float32)


def model_timbre(model, key: jax.Array, spec: notes_lib.NoteSpec, *, n: int = 8) -> np.ndarray:
    """float32 `[n_timbre]`: the timbre code of the sounds a trained model makes.

    n intents are drawn as generation draws them and predicted down to the controls
    (temperature 0); the partials' log amplitudes relative to each frame's loudest,
    averaged over frames weighted by power (only partials below Nyquist), are fitted by
    least squares on the note level's cosine basis plus a constant (which the note's
    level takes), each partial's error weighted by its amplitude (the 6-term basis cannot
    follow every partial; the loud ones are heard). Partials the model never sounds keep
    the default slope k^-PARTIAL_SLOPE.
    """
    from pcmusic.generation.sampling import sample_intent

    return intent_timbres(model, sample_intent(model, key, n), spec, pooled=True)[0]


def intent_timbres(model, intents: jax.Array, spec: notes_lib.NoteSpec, *, pooled: bool = False) -> np.ndarray:
    """float32 `[n, n_timbre]`: the timbre code (`model_timbre`'s fit) of the sound each
    hierarchy intent `[n, 1, d_top]` predicts; pooled: one code `[1, n_timbre]` for all."""
    mspec = model.spec
    cspec = mspec.controls
    n_frames = mspec.pad_frames(cspec.n_frames(cspec.sample_rate))
    controls = model.predict_down(intents, n_frames)[0]
    log_amp = np.asarray(controls["log_amp"], np.float64)                    # [n, V, F, H]
    f0 = 2.0 ** np.asarray(controls["log2_f0"], np.float64)                  # [n, V, F]
    harmonics = np.arange(1, cspec.n_harmonics + 1, dtype=np.float64)
    audible = harmonics * f0[..., None] < 0.5 * cspec.sample_rate
    power = np.sum(np.exp(2.0 * np.clip(log_amp, *controls_lib.LOG_AMP_RANGE)) * audible, axis=-1)
    weight = (power / max(float(np.max(power)), 1e-30))[..., None] * audible
    shape = log_amp - np.max(np.where(audible, log_amp, -np.inf), axis=-1, keepdims=True)
    axes = (0, 1, 2) if pooled else (1, 2)
    total = np.sum(weight, axis=axes).reshape(-1, cspec.n_harmonics)                # [n or 1, H]
    mean = (np.sum(np.where(weight > 0, weight * shape, 0.0), axis=axes).reshape(total.shape)
            / np.maximum(total, 1e-30))
    basis = notes_lib.timbre_basis(cspec.n_harmonics, spec.n_timbre).astype(np.float64)
    design = np.concatenate([np.ones((cspec.n_harmonics, 1)), basis.T], axis=1)
    codes = []
    for t, m in zip(total, mean):
        heard = t > 1e-6 * max(float(np.max(t)), 1e-30)
        target = np.where(heard, m, -PARTIAL_SLOPE * np.log(harmonics))
        amplitude = np.exp(target - np.max(target))[:, None]      # loud partials fitted closest
        coef, *_ = np.linalg.lstsq(design * amplitude, target * amplitude[:, 0], rcond=None)
        codes.append(coef[1:])
    return np.asarray(codes, np.float32)


def notes_from_records(voices, *, cspec: controls_lib.ControlSpec, spec: notes_lib.NoteSpec,
                       timbre=None) -> dict:
    """A Notes state `[1, V, max_notes]` from note records per voice (NOTE_COLUMNS; at
    least onset_s, offset_s, f0_hz, loudness_db); each note's level is set so that its
    partials (with `timbre` `[n_timbre]`, default `default_timbre`) have the record's
    loudness in dB re full scale. Notes beyond max_notes are refused."""
    timbre = default_timbre(cspec.n_harmonics, spec) if timbre is None else np.asarray(timbre, np.float32)
    basis = notes_lib.timbre_basis(cspec.n_harmonics, spec.n_timbre).astype(np.float64)
    shape_power = np.log(0.5 * np.sum(np.exp(2.0 * (timbre.astype(np.float64) @ basis))))
    end_s = max([float(np.max(v[:, 1])) for v in voices if len(v)] + [0.0])
    state = {k: np.array(v) for k, v in notes_lib.empty(1, len(voices), spec, end_s=end_s).items()}
    for i, v in enumerate(voices):
        v = np.asarray(v, np.float64)
        if v.shape[0] > spec.max_notes:
            raise PcmusicError(f"voice {i} has {v.shape[0]} notes; the note level holds {spec.max_notes} "
                               "per voice (raise NoteSpec.max_notes or shorten the phrase)")
        k = v.shape[0]
        state["onset_s"][0, i, :k] = v[:, 0]
        state["log_dur"][0, i, :k] = np.log(np.maximum(v[:, 1] - v[:, 0], 1e-3))
        state["log2_f0"][0, i, :k] = np.log2(v[:, 2])
        state["level"][0, i, :k] = 0.5 * (v[:, 3] * np.log(10.0) / 10.0 - shape_power)
        state["timbre"][0, i, :k] = timbre
        state["gate"][0, i, :k] = notes_lib.GATE_ON
        if k:
            state["log2_f0"][0, i, k:] = np.log2(v[-1, 2])
    return {k: jnp.asarray(v, jnp.float32) for k, v in state.items()}


def render_notes(notes: dict, n_frames: int, *, cspec: controls_lib.ControlSpec,
                 spec: notes_lib.NoteSpec, key: jax.Array) -> jax.Array:
    """float32 `[B, n_frames * hop]`: the notes' predicted controls through the oscillator
    bank (the noise part silent)."""
    pred = notes_lib.predict_controls(notes, n_frames, cspec=cspec, spec=spec)
    controls = dict(controls_lib.zeros(cspec, notes["onset_s"].shape[0], n_frames), **pred)
    return controls_lib.render(controls, cspec, key=key)


def _render(records: np.ndarray, n_frames: int, cspec, spec, key, timbre) -> np.ndarray:
    notes = notes_from_records([records], cspec=cspec, spec=spec, timbre=timbre)
    return np.asarray(render_notes(notes, n_frames, cspec=cspec, spec=spec, key=key))[0]


def _match(intended: np.ndarray, heard: np.ndarray) -> np.ndarray:
    """Per intended note, heard minus intended pitch in cents (NaN where none matches)."""
    out = np.full(intended.shape[0], np.nan)
    for i, row in enumerate(intended):
        if heard.shape[0] == 0:
            break
        j = int(np.argmin(np.abs(heard[:, 0] - row[0])))
        if abs(heard[j, 0] - row[0]) <= MATCH_ONSET_S:
            out[i] = 1200.0 * np.log2(heard[j, 2] / row[2])
    return out


def generate_phrases(key: jax.Array, prior: note_prior_lib.NotePrior, *, n: int = 1, seconds: float = 4.0,
                     intent=None, cspec: controls_lib.ControlSpec | None = None,
                     spec: notes_lib.NoteSpec | None = None, listen_steps: int = 2,
                     inference=None, model=None) -> list[Phrase]:
    """Generate n phrases from a note prior (module docstring).

    Args:
      key: PRNG key (intents, phrases, render noise).
      prior: a `NotePrior` (`pcmusic.model.note_prior.fit` on a corpus).
      n: phrases (ignored when `intent` is given). seconds: length of each.
      intent: optional float `[n, 3]` (register log2 Hz, tempo log s, level dB); None:
        drawn from the prior, under the model's own intents where the prior links them.
      cspec / spec: control and note specs (defaults: the model's controls or 16 kHz,
        one voice; NoteSpec with max_notes raised to hold the phrase).
      listen_steps: how often it hears itself (0: render once, do not listen; 1: hear
        the render and report; each further one first corrects the action by the
        last errors and plays again).
      inference: the listener's `InferenceSpec` (default: perception's).
      model: a trained `AudioModel` whose phrases these are (module docstring); None:
        partials at k^-PARTIAL_SLOPE, heard by the untrained default perception.
    Returns:
      a list of `Phrase`.
    """
    from pcmusic.perception import perceive

    checks.real(seconds, "seconds", minimum=0.0, strict_minimum=True)
    checks.integer(listen_steps, "listen_steps", minimum=0)
    if model is not None and not isinstance(model, AudioModel):
        raise PcmusicError(f"model must be an AudioModel (pcmusic.load_model); got {type(model).__name__}")
    cspec = dataclasses.replace(cspec or (model.spec.controls if model is not None else controls_lib.ControlSpec()),
                                n_voices=1)
    k_intent, k_phrase, k_render, k_timbre = jax.random.split(key, 4)
    tops = np.zeros((0, 0), np.float32)
    linked = intent is None and model is not None and note_prior_lib.has_link(prior)
    if intent is None:
        checks.integer(n, "n", minimum=1)
        if linked:          # one hierarchy intent sets the phrase intent and the timbre
            from pcmusic.generation.sampling import sample_intent

            k_top, k_intent = jax.random.split(k_intent)
            drawn = sample_intent(model, k_top, n)                          # [n, 1, d_top]
            intent = note_prior_lib.sample_intent(k_intent, prior, n, top=drawn[:, 0])
            tops = np.asarray(drawn[:, 0])
        else:
            intent = note_prior_lib.sample_intent(k_intent, prior, n)
    intent = np.asarray(intent, np.float32).reshape(-1, 3)
    if not np.all(np.isfinite(intent)):
        raise PcmusicError("intent holds NaN/Inf; give finite [n, 3] intents (register log2 Hz, tempo log s, "
                           "level dB)")
    n_frames = cspec.n_frames(int(np.ceil(seconds * cspec.sample_rate)))
    if linked:
        timbres = intent_timbres(model, drawn, spec or notes_lib.NoteSpec())
    else:
        timbre = None if model is None else model_timbre(model, k_timbre, spec or notes_lib.NoteSpec())
        timbres = [timbre] * len(intent)
    phrases = []
    for i, (k_p, k_r) in enumerate(zip(jax.random.split(k_phrase, len(intent)),
                                       jax.random.split(k_render, len(intent)))):
        intended = note_prior_lib.sample_phrase(k_p, prior, jnp.asarray(intent[i]), seconds=seconds,
                                                f0_min_hz=cspec.f0_min_hz, f0_max_hz=cspec.f0_max_hz)
        nspec = spec or notes_lib.NoteSpec(max_notes=max(notes_lib.NoteSpec().max_notes, intended.shape[0]))
        played = intended.copy()
        heard, errors = np.zeros((0, 5)), np.full(intended.shape[0], np.nan)
        audio = _render(played, n_frames, cspec, nspec, k_r, timbres[i])
        for step in range(listen_steps):
            if step:          # correct the action by what was heard, and play again
                played[:, 2] = played[:, 2] * 2.0 ** (-np.nan_to_num(errors) / 1200.0)
                audio = _render(played, n_frames, cspec, nspec, k_r, timbres[i])
            percept = perceive(audio, cspec.sample_rate, inference=inference, model=model,
                               cspec=cspec if model is None else None)    # a model hears with its own
            voices = [v for v in percept.notes if len(v)] or [np.zeros((0, 5))]
            heard = np.concatenate(voices)
            heard = heard[np.argsort(heard[:, 0], kind="stable")]
            errors = _match(intended, heard)
        phrases.append(Phrase(audio=audio.astype(np.float32), intended=intended, heard=heard,
                              pitch_error_cents=errors, intent=intent[i],
                              top=tops[i] if linked else np.zeros(0, np.float32)))
    return phrases
