"""Perceive sounds: validate, resample, normalise, settle, and read the percept off.

`perceive(audio, sample_rate)` scales the sound to the reference level, cuts it into
fixed-shape chunks (`pcmusic.perception.chunks`: one compiled program for any length,
bounded memory), settles the network on batches of chunks (`pcmusic.perception.inference`)
and reports the stitched controls in the input's own units: f0 per voice and frame (NaN
where unvoiced), partial amplitudes at the input's level, inharmonicity, a confidence
per frame, the energy per inference step, and the settled latents.

Voicing as in `pcmusic.perception.voicing` (partials within `voicing_db` of the
voice's loudest nearby, above -40 dB re the reference and above the noise part).
Confidence is the harmonic part's share of the modelled power,
P_voice / (P_voice + P_noise), zero where unvoiced.
"""
from __future__ import annotations

import collections
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic import checks, pc
from pcmusic.dsp import audio as audio_lib
from pcmusic.errors import PcmusicError
from pcmusic.model import controls as controls_lib
from pcmusic.model import AudioModel, priors, sensory
from pcmusic.perception import chunks, voicing
from pcmusic.perception import notes as notes_perception
from pcmusic.perception.inference import InferenceSpec, resolve_specs, settle_batch
from pcmusic.perception.notes import NoteInference

SILENT_RMS = 1e-5          # -100 dB re full scale: a clip this quiet is heard as silence
MAX_VOICES = 8             # the pitch proposal unrolls one search per voice
BYTES_PER_SAMPLE = 4096    # working memory per sample of a batch per start (spectra, gradients)
BATCH_SIZES = tuple(2 ** k for k in range(10))   # chunks settled at once (1 .. 512): a few
                                                # compiled shapes serve any count


class Percept(NamedTuple):
    """What perception settled on (one clip).

    f0_hz: float32 `[n_voices, n_frames]`, NaN where the voice is unvoiced.
    amplitudes: float32 `[n_voices, n_frames, n_harmonics]`, linear peak amplitude of
      each partial, in the input's own scale.
    voiced: bool `[n_voices, n_frames]`. confidence: float32 `[n_voices, n_frames]` in
      [0, 1] (module docstring). inharmonicity: float32 `[n_voices]` (B; 0 if the spec is
      harmonic). frame_rate_hz: control frames per second (frame n is centred on sample
      n * hop, at time `times_s[n]` = n / frame_rate_hz). sample_rate: Hz of the analysis.
    energy: float32 `[n_steps]`, free energy before each inference step, summed over the
      chunks (each chunk's best start).
    latents: the settled state: "controls" (Controls dict, batch axis 1, the clip's
      frames), "upper" (the model's z2, z3, top of each chunk: leading axis n_chunks;
      () without a model) and "chunk_starts" (int `[n_chunks]`, first frame of each chunk).
    start_energies: float32 `[n_starts]`, final energy of every start, summed over chunks.
    notes: per voice float64 `[n_notes, 5]` note records, columns
      `pcmusic.model.note_prior.NOTE_COLUMNS` (onset_s, offset_s, f0_hz, loudness_db in dB
      re full scale, confidence in [0, 1]), in onset order; () when notes were not asked for.
    """

    f0_hz: np.ndarray
    amplitudes: np.ndarray
    voiced: np.ndarray
    confidence: np.ndarray
    inharmonicity: np.ndarray
    frame_rate_hz: float
    sample_rate: int
    energy: np.ndarray
    latents: dict
    start_energies: np.ndarray
    notes: tuple = ()

    @property
    def times_s(self) -> np.ndarray:
        """float64 `[n_frames]`: the time of each frame in seconds."""
        return np.arange(self.f0_hz.shape[-1]) / self.frame_rate_hz


def _prepare(audio, sample_rate: int, cspec: controls_lib.ControlSpec, *, name: str = "audio"
             ) -> tuple[np.ndarray, float]:
    """Validate, resample to the model's rate, scale to the reference level; returns
    (audio, gain). A clip below SILENT_RMS stays as it is (gain 1): it is heard as silence."""
    x = np.asarray(audio)
    if x.ndim != 1 or x.size == 0:
        raise PcmusicError(f"{name} must be a non-empty 1-D array of samples; got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise PcmusicError(f"{name} must hold float samples in [-1, 1]; got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.isfinite(x))
        raise PcmusicError(f"{name} has {bad.size} NaN/Inf samples (first at index {bad[0]}); "
                           "clean or cut them before perceiving")
    peak = float(np.max(np.abs(x)))
    if peak > float(np.finfo(np.float32).max):
        raise PcmusicError(f"{name} peaks at {peak:.3g}, beyond float32's range; scale it to [-1, 1] "
                           "first, e.g. audio / np.abs(audio).max()")
    x = x.astype(np.float32)
    if sample_rate != cspec.sample_rate:
        x = audio_lib.resample(x, sample_rate, cspec.sample_rate)
    shortest_s = min_seconds(cspec)
    if x.shape[0] < shortest_s * cspec.sample_rate:
        raise PcmusicError(f"{name} lasts {x.shape[0] / cspec.sample_rate:.4g} s; perception needs at least "
                           f"{shortest_s:.3g} s (two periods of f0_min_hz = {cspec.f0_min_hz:g} Hz)")
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    gain = sensory.REFERENCE_RMS / rms if rms >= SILENT_RMS else 1.0
    return (x * gain).astype(np.float32), gain


def min_seconds(cspec: controls_lib.ControlSpec) -> float:
    """The shortest clip perception accepts: two periods of the lowest f0 it looks for
    (and at least 30 ms)."""
    return max(0.03, 2.0 / cspec.f0_min_hz)


def prepare_batch(audios, sample_rate: int, *, cspec: controls_lib.ControlSpec, model=None
                  ) -> tuple[np.ndarray, list[float], list[int]]:
    """Validate, resample, normalise and zero-pad clips to one batch.

    Returns (float32 `[B, n_frames * hop]`, per-clip gains applied, per-clip frame counts);
    n_frames is the longest clip's, rounded up to whole top-level frames with a model.
    """
    sample_rate = audio_lib.check_sample_rate(sample_rate)
    prepared = [_prepare(a, sample_rate, cspec, name=f"audio[{i}]") for i, a in enumerate(audios)]
    lengths = [cspec.n_frames(x.shape[0]) for x, _ in prepared]
    n_frames = max(lengths)
    if model is not None:
        n_frames = model.spec.pad_frames(n_frames)
    batch = np.zeros((len(prepared), n_frames * cspec.hop), np.float32)
    for row, (x, _) in zip(batch, prepared):
        row[: x.shape[0]] = x
    return batch, [g for _, g in prepared], lengths


def perceive(audio, sample_rate: int, *, model=None, n_voices: int | None = None,
             cspec: controls_lib.ControlSpec | None = None, sspec: sensory.SensorySpec | None = None,
             prior: priors.ControlPrior | None = None, inference: InferenceSpec | None = None,
             voicing_db: float = 30.0, batch_size: int = 4,
             notes: NoteInference | bool = True, note_prior=None) -> Percept:
    """Perceive a sound: settle the network's latents on it.

    Args:
      audio: float 1-D array `[n_samples]` in [-1, 1], any length of at least
        `min_seconds` (40 ms at the defaults).
      sample_rate: Hz of `audio` (an integer); it is resampled to the model's rate (soxr).
      model: a trained `pcmusic.AudioModel`, or None for the untrained default
        prior (pure analysis by synthesis).
      n_voices: simultaneous voices to find, 1..MAX_VOICES (default 1, or the model's;
        a model hears its own number of voices, and `cspec` sets it when given).
      cspec / sspec / prior / inference: control, sensory, prior and inference specs
        (defaults: the model's, or the package defaults at 16 kHz).
      voicing_db: a voice is voiced in a frame when its partials' power is within this
        many dB of the loudest frame's, above -40 dB re the input's RMS, and above the
        noise part's power.
      batch_size: chunks settled at once (memory grows with it; one of BATCH_SIZES is
        used, the smallest that holds the chunks, up to this).
      notes: settle the note level too (`pcmusic.perception.notes`): True for the
        default `NoteInference`, one to set it, False for frame-level controls only.
      note_prior: a `pcmusic.model.note_prior.NotePrior` (a learned tuning); None: flat.
    Returns:
      a `Percept`. To record the inference trajectory, use `pcmusic.probe`.
    """
    return perceive_batch([audio], sample_rate, model=model, n_voices=n_voices, cspec=cspec,
                          sspec=sspec, prior=prior, inference=inference, voicing_db=voicing_db,
                          batch_size=batch_size, notes=notes, note_prior=note_prior)[0]


def perceive_batch(audios, sample_rate: int, *, model=None, n_voices: int | None = None,
                   cspec: controls_lib.ControlSpec | None = None,
                   sspec: sensory.SensorySpec | None = None, prior: priors.ControlPrior | None = None,
                   inference: InferenceSpec | None = None, voicing_db: float = 30.0,
                   batch_size: int = 4, progress=None, notes: NoteInference | bool = True,
                   note_prior=None) -> list[Percept]:
    """`perceive` for several clips: their chunks are settled together, `batch_size` at a
    time, whatever their lengths.

    audios: a sequence of 1-D float arrays (or a `[B, n_samples]` array). progress: an
    optional callable, called with the number of chunks settled after each batch.
    Other arguments as in `perceive`. Returns one Percept per clip.
    """
    n_voices = check_request(model, n_voices, cspec, voicing_db=voicing_db)
    batch_size = checks.integer(batch_size, "batch_size", minimum=1)
    cspec, sspec, prior, inference = resolve_specs(model=model, n_voices=n_voices, cspec=cspec,
                                                   sspec=sspec, prior=prior, inference=inference)
    sample_rate = audio_lib.check_sample_rate(sample_rate)
    prepared = [_prepare(a, sample_rate, cspec, name=f"audio[{i}]") for i, a in enumerate(audios)]
    multiple = 1 if model is None else model.spec.frames_per_top
    plans = [chunks.plan(cspec.n_frames(x.shape[0]), multiple=multiple) for x, _ in prepared]
    largest = max(BATCH_SIZES[0], *[b for b in BATCH_SIZES if b <= batch_size])
    checks.check_memory(largest * max(p.chunk_frames for p in plans) * cspec.hop
                        * len(inference.octave_starts) * cspec.n_voices * BYTES_PER_SAMPLE,
                        f"perceiving with batch_size {batch_size}", "a smaller batch_size")
    pieces = [chunks.cut(x, p, hop=cspec.hop) for (x, _), p in zip(prepared, plans)]
    note_inference = _note_inference(notes)
    settled = _settle_chunks(pieces, model, largest, progress, note_inference, note_prior, voicing_db,
                             cspec=cspec, sspec=sspec, prior=prior, inference=inference)
    return [percept_of(results, p, gain=gain, cspec=cspec, voicing_db=voicing_db, note_inference=note_inference)
            for results, p, (_, gain) in zip(settled, plans, prepared)]


def _note_inference(notes) -> NoteInference | None:
    if notes is True:
        return NoteInference()
    if notes is False or notes is None:
        return None
    if not isinstance(notes, NoteInference):
        raise PcmusicError(f"notes must be True, False or a NoteInference; got {type(notes).__name__}")
    checks.integer(notes.n_steps, "notes.n_steps", minimum=1)
    return notes


def _settle_chunks(pieces: list, model, largest: int, progress, note_inference, note_prior, voicing_db,
                   **specs) -> list[list]:
    """Settle every chunk of every clip (`pieces`: `[n_chunks, chunk_samples]` per clip) in
    batches of one length; returns per clip the list of its chunks' results (host numpy),
    each with a leading axis over octave starts, and, with `note_inference`, the notes
    settled from each chunk's best start (`pcmusic.perception.notes`) in
    `latents["notes"]`."""
    jobs = [(i, k) for i, clip in enumerate(pieces) for k in range(clip.shape[0])]
    by_length: dict[int, list] = {}
    for job in jobs:
        by_length.setdefault(pieces[job[0]].shape[1], []).append(job)
    out = [[None] * clip.shape[0] for clip in pieces]

    def dispatched():
        for length, group in by_length.items():
            for first in range(0, len(group), largest):
                part = group[first:first + largest]
                size = next(b for b in BATCH_SIZES if b >= len(part)) if len(part) < largest else largest
                batch = np.zeros((size, length), np.float32)
                for row, (i, k) in zip(batch, part):
                    row[:] = pieces[i][k]
                yield part, batch, settle_batch(jnp.asarray(batch), model, **specs)

    def finish(part, batch, settled):
        result = jax.device_get(settled)
        if note_inference is not None:
            result, _ = with_notes(batch, result, model, note_inference=note_inference,
                                   note_prior=note_prior, voicing_db=voicing_db, **specs)
        for j, (i, k) in enumerate(part):
            out[i][k] = jax.tree.map(lambda a, j=j: a[j], result)
        if progress is not None:
            progress(len(part))

    # On an accelerator one batch is dispatched ahead, computed while the last is fetched and
    # finished on the host (its notes, its percept); on the CPU host and device share the
    # cores, so nothing would overlap and a batch in flight would only cost memory.
    ahead = 0 if jax.default_backend() == "cpu" else 1
    in_flight: collections.deque = collections.deque()
    for item in dispatched():
        in_flight.append(item)
        if len(in_flight) > ahead:
            finish(*in_flight.popleft())
    while in_flight:
        finish(*in_flight.popleft())
    return out


def with_notes(batch: np.ndarray, result, model, *, note_inference: NoteInference, note_prior, voicing_db,
               record_stride=None, **specs):
    """(result, the note level's InferenceResult): `result` of `settle_batch` on chunks
    `batch` (leading axes [chunks, starts]) with the notes settled from each chunk's best
    start (`pcmusic.perception.notes`) in latents["notes"] (`[chunks, starts, V, N]`
    leaves, repeated over starts); specs: cspec, sspec, prior, inference."""
    best = np.argmin(result.energy, axis=1)
    pick = lambda a: np.stack([a[j, b, 0] for j, b in enumerate(best)])   # noqa: E731  (batch of 1)
    controls = jax.tree.map(pick, result.latents["controls"])
    upper = jax.tree.map(pick, result.latents["upper"])
    cspec = specs["cspec"]
    proposals = [notes_perception.propose(jax.tree.map(lambda a, j=j: a[j], controls), cspec=cspec,
                                          spec=note_inference.spec, voicing_db=voicing_db,
                                          audio=batch[j])
                 for j in range(batch.shape[0])]
    notes0 = jax.tree.map(lambda *a: np.concatenate(a), *proposals)
    settled = jax.device_get(notes_perception.settle_notes_batch(
        jnp.asarray(batch), controls, notes0, upper, model, note_prior, note_inference=note_inference,
        record_stride=record_stride, **specs))
    n_starts = result.energy.shape[1]
    repeat = lambda a: np.repeat(np.asarray(a)[:, None], n_starts, axis=1)   # noqa: E731
    latents = dict(result.latents, notes=jax.tree.map(repeat, settled.latents["notes"]))
    return result._replace(latents=latents), settled


def check_request(model, n_voices, cspec, *, voicing_db) -> int:
    """The number of voices asked for, after checking every option (before any work)."""
    if model is not None and not isinstance(model, AudioModel):
        raise PcmusicError(f"model must be an AudioModel (pcmusic.load_model) or None; "
                           f"got {type(model).__name__}")
    checks.real(voicing_db, "voicing_db", minimum=0.0, strict_minimum=True)
    if n_voices is None:
        return 1
    n_voices = checks.integer(n_voices, "n_voices", minimum=1, maximum=MAX_VOICES)
    fixed = model.spec.controls.n_voices if model is not None else (cspec.n_voices if cspec else None)
    if fixed is not None and n_voices != fixed:
        source = "the model hears" if model is not None else "cspec holds"
        raise PcmusicError(f"n_voices = {n_voices}, but {source} {fixed} voice(s); leave n_voices out "
                           "or use another model")
    return n_voices


def percept_of(results: list, chunk_plan: chunks.Plan, *, gain: float, cspec, voicing_db: float,
               note_inference: NoteInference | None = None) -> Percept:
    """The Percept of one clip from its chunks' settle results (leading axis: starts;
    with `note_inference`, their latents hold the chunk's settled notes)."""
    best = []
    for r in results:
        chosen = jax.tree.map(lambda a, i=int(np.argmin(r.energy)): a[i], r)
        pc.check(chosen)
        best.append(chosen)
    chunk_controls = [jax.tree.map(lambda a: np.asarray(a)[0], b.latents["controls"]) for b in best]
    orders = chunks.voice_orders(chunk_controls)
    controls = chunks.stitch(chunk_controls, chunk_plan, orders)
    f0 = np.exp2(controls["log2_f0"][0])
    amps = np.asarray(controls_lib.amplitudes(controls))[0]
    noise = np.asarray(controls_lib.noise_magnitudes(controls))[0]
    power = 0.5 * np.sum(np.square(amps), axis=-1)                     # [V, F], normalised level
    noise_power = np.mean(np.square(noise), axis=-1)[None, :]         # white noise of RMS m: m^2
    voiced = voicing.voiced_frames(power, noise_power, voicing_db=voicing_db,
                                   frame_rate_hz=cspec.frame_rate_hz)
    confidence = np.where(voiced, power / np.maximum(power + noise_power, 1e-30), 0.0)
    inharm = np.exp(controls["log_inharm"][0]) if cspec.inharmonic else np.zeros(cspec.n_voices, np.float32)
    upper = tuple(np.stack(levels) for levels in zip(*[tuple(np.asarray(u)[0] for u in b.latents["upper"])
                                                      for b in best]))
    latents: dict[str, Any] = {"controls": controls, "upper": upper,
                               "chunk_starts": np.asarray(chunk_plan.starts)}
    note_records: tuple = ()
    if note_inference is not None:
        rate = cspec.frame_rate_hz
        per_chunk = [[recs[v] for v in order] for recs, order in zip(
            (notes_perception.records(b.latents["notes"], start_s=start / rate, gain=gain,
                                      spec=note_inference.spec, n_harmonics=cspec.n_harmonics)
             for b, start in zip(best, chunk_plan.starts)), orders)]
        bounds = [((start + a) / rate, (start + b) / rate) for start, (a, b) in zip(chunk_plan.starts,
                                                                                 chunk_plan.keep)]
        joined = notes_perception.join(per_chunk, bounds)
        note_records = tuple(notes_perception.note_confidence(r, conf_v, rate)
                             for r, conf_v in zip(joined, confidence))
        latents["notes"] = [jax.tree.map(lambda a, order=order: np.asarray(a)[list(order)], b.latents["notes"])
                            for b, order in zip(best, orders)]
    return Percept(f0_hz=np.where(voiced, f0, np.nan).astype(np.float32),
                   amplitudes=(amps / gain).astype(np.float32), voiced=voiced,
                   confidence=confidence.astype(np.float32),
                   inharmonicity=np.asarray(inharm, np.float32), frame_rate_hz=cspec.frame_rate_hz,
                   sample_rate=cspec.sample_rate,
                   energy=np.sum([np.asarray(b.energy_history) for b in best], axis=0),
                   latents=latents,
                   start_energies=np.sum([np.asarray(r.energy) for r in results], axis=0),
                   notes=note_records)
