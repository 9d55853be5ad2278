"""What runs and commands write: whole files, metrics logs, generated sounds, percepts as JSON.

Every file is written to a temporary name in its directory and renamed when complete,
so a killed process leaves the old file or the new one, never half of one.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import jax
import numpy as np

from pcmusic import files
from pcmusic.errors import PcmusicError


def write_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = files.mkstemp_beside(path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl (a line cut short by a kill is skipped)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLog:
    """metrics.jsonl and TensorBoard scalars (process 0 only), cut back to `start` on resume."""

    def __init__(self, workdir: Path, start: int):
        self.path, self.records = workdir / "metrics.jsonl", []
        self.active = jax.process_index() == 0
        if not self.active:
            return
        if self.path.exists():
            self.records = [r for r in read_metrics(self.path) if r["step"] <= start]
            write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in self.records))
        from tensorboardX import SummaryWriter
        # purge_step hides events a killed run wrote after the step this run starts from.
        self.tb = SummaryWriter(str(workdir / "tb"), purge_step=start + 1)

    def write(self, step: int, split: str, metrics: dict) -> None:
        if not self.active:
            return
        # JSON has no NaN: a non-finite value (a diverged batch) is written as null.
        clean = {k: (v if isinstance(v, (bool, int)) or math.isfinite(v) else None)
                 for k, v in metrics.items()}
        record = {"step": step, "split": split, **clean}
        self.records.append(record)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        for k, v in clean.items():
            if v is not None and not isinstance(v, bool):
                self.tb.add_scalar(f"{split}/{k}", v, step)

    def close(self) -> None:
        if self.active:
            self.tb.close()


SOUND_SUFFIXES = (".wav", "_unrefined.wav", ".png", "_intent.npz", "_controls.npz")


def sound_names(n: int) -> list[str]:
    """The files `write_sounds` writes for n sounds."""
    return [f"sample_{i}{suffix}" for i in range(n) for suffix in SOUND_SUFFIXES]


def write_intent(path: str | Path, intent) -> Path:
    """Write intents float32 `[n, 1, d_top]` as the array `intent` of an .npz at `path`
    (atomically): the file `read_intent` and `pcmusic generate --intent` read."""
    return files.write_npz(path, {"intent": np.asarray(intent, np.float32)})


def read_intent(path: str | Path, *, d_top: int) -> np.ndarray:
    """The intents float32 `[n, 1, d_top]` in the array `intent` of the .npz at `path`,
    stored as `[n, 1, d_top]`, `[n, d_top]` or one `[d_top]` (as `write_intent`, `pcmusic
    generate` and `pcmusic perceive --intent-out` write them). PcmusicError naming the
    file, the value and the fix for anything else."""
    path = Path(path)
    fix = "give an .npz written by pcmusic generate or pcmusic perceive --intent-out"
    try:
        f = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise PcmusicError(f"{path}: no such file; check the path (cwd is {Path.cwd()})") from None
    except IsADirectoryError:
        raise PcmusicError(f"{path}: is a folder; {fix}") from None
    except (OSError, ValueError) as err:   # neither .npz nor .npy, or pickled objects
        raise PcmusicError(f"{path}: not a readable .npz of arrays ({err}); {fix}") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise PcmusicError(f"{path} holds one bare array, not named arrays; {fix}, or save one "
                           "with numpy.savez(path, intent=...)")
    with f:
        if "intent" not in f.files:
            raise PcmusicError(f"{path} holds no array 'intent' (it holds: {', '.join(f.files) or 'nothing'}); "
                               f"{fix}, or save one with numpy.savez(path, intent=...)")
        try:
            intent = f["intent"]
        except ValueError as err:          # an object array (pickled)
            raise PcmusicError(f"{path}: its 'intent' is not a plain array ({err}); {fix}") from None
    shapes = f"[n, 1, {d_top}], [n, {d_top}] or [{d_top}] (the model's top has {d_top} channels)"
    if not (np.issubdtype(intent.dtype, np.floating) or np.issubdtype(intent.dtype, np.integer)):
        raise PcmusicError(f"{path}: intent has dtype {intent.dtype}; expected float {shapes}")
    if intent.ndim in (1, 2, 3) and intent.shape[-1] != d_top:
        raise PcmusicError(f"{path}: intent has d_top {intent.shape[-1]} (shape {list(intent.shape)}) but the "
                           f"model's top has {d_top}; use intents of this model (pcmusic perceive --ckpt "
                           "with --intent-out, or pcmusic generate with its --ckpt)")
    intent = intent.reshape(1, 1, -1) if intent.ndim == 1 else intent
    intent = intent[:, None, :] if intent.ndim == 2 else intent
    if intent.ndim != 3 or intent.shape[1] != 1 or intent.shape[0] < 1:
        raise PcmusicError(f"{path}: intent has shape {list(intent.shape)}; expected {shapes}")
    bad = np.flatnonzero(~np.all(np.isfinite(intent), axis=(1, 2)))
    if bad.size:
        raise PcmusicError(f"{path}: intent rows {bad[:8].tolist()} hold NaN/Inf; give finite intents")
    return intent.astype(np.float32)


def write_sounds(directory: Path, sounds, trace, sample_rate: int, *, overwrite: bool = False,
                 title: str = "sample") -> list[dict]:
    """Write each generated sound (sample_i.wav), its unrefined render (sample_i_unrefined.wav),
    its figure (sample_i.png: spectrogram and energy per refinement step), its intent
    (sample_i_intent.npz: `intent` `[1, 1, d_top]`, `write_intent`) and its final controls
    (sample_i_controls.npz: the Controls arrays with a batch axis of 1, `log2_f0` `[1,
    n_voices, n_frames]` ...) into `directory`; returns one record per sound with its
    energy trace. A WAV whose peak exceeds 1 is scaled to peak 0.99 (its record's `gain`),
    so it plays without clipping."""
    from pcmusic import plots
    from pcmusic.dsp import audio

    def playable(x):
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        gain = 0.99 / peak if peak > 1.0 else 1.0
        return x * np.float32(gain), gain

    records = []
    for i, sound in enumerate(sounds):
        refined, gain = playable(np.asarray(sound))
        unrefined, unrefined_gain = playable(np.asarray(trace.unrefined_audio[i]))
        audio.save(directory / f"sample_{i}.wav", refined, sample_rate, overwrite=overwrite)
        audio.save(directory / f"sample_{i}_unrefined.wav", unrefined, sample_rate, overwrite=overwrite)
        listened = None if trace.listened is None else trace.listened.energy[i]
        plots.save_sample(directory / f"sample_{i}.png", sound, sample_rate, energy=trace.energy[i],
                          title=f"{title} {i}", listen_energy=listened)
        write_intent(directory / f"sample_{i}_intent.npz", trace.intent[i:i + 1])
        files.write_npz(directory / f"sample_{i}_controls.npz",
                        {k: np.asarray(v[i:i + 1]) for k, v in trace.controls.items()})
        energy = [float(e) for e in trace.energy[i]]
        records.append({"wav": f"sample_{i}.wav", "unrefined_wav": f"sample_{i}_unrefined.wav",
                        "png": f"sample_{i}.png", "intent": f"sample_{i}_intent.npz",
                        "controls": f"sample_{i}_controls.npz",
                        "gain": gain, "unrefined_gain": unrefined_gain,
                        "energy": energy, "energy_ratio": energy[-1] / energy[0] if energy[0] else None,
                        "listen_energy": None if listened is None else [float(e) for e in listened]})
    return records


def percept_json(percept, audio) -> dict:
    """A Percept as JSON: the time of each frame (s), f0 per voice and frame in Hz (null where
    unvoiced), the confidence per voice and frame, per voice the
    mean linear amplitude of each partial over its voiced frames and the RMS of its partials,
    the input's RMS, and the free energy per inference step."""
    def rounded(x, digits):
        return [None if not np.isfinite(v) else round(float(v), digits) for v in x]

    voices = []
    for v in range(percept.f0_hz.shape[0]):
        voiced = percept.voiced[v]
        amps = percept.amplitudes[v][voiced]                 # [voiced frames, n_harmonics]
        mean = amps.mean(axis=0) if len(amps) else np.zeros(amps.shape[1])
        # a partial of peak amplitude a has RMS a / sqrt(2)
        rms = float(np.sqrt(np.mean(np.sum(amps ** 2, axis=-1) / 2))) if len(amps) else 0.0
        voices.append({"voiced_fraction": round(float(np.mean(voiced)), 4),
                       "mean_partial_amplitudes": [round(float(a), 7) for a in mean],
                       "rms": round(rms, 7)})
    audio_rms = float(np.sqrt(np.mean(np.square(np.asarray(audio), dtype=np.float64))))
    return {"sample_rate": int(percept.sample_rate), "frame_rate_hz": float(percept.frame_rate_hz),
            "n_voices": int(percept.f0_hz.shape[0]),
            "times_s": rounded(percept.times_s, 6),
            "f0_hz": [rounded(track, 3) for track in percept.f0_hz],
            "confidence": [rounded(track, 4) for track in percept.confidence],
            "amplitudes": {"audio_rms": round(audio_rms, 7), "voices": voices},
            "energy": rounded(percept.energy, 4),
            "notes": notes_json(percept)}


PERCEPT_FORMATS = ("json", "csv", "npz", "notes", "mid")
def note_lines(records) -> str:
    """Note records `[n, >=3]` as CSV lines `onset_s,offset_s,f0_hz` without a header, the
    layout mir_eval reads (`mir_eval.io.load_valued_intervals`)."""
    return "".join(f"{on:.4f},{off:.4f},{f0:.3f}\n" for on, off, f0 in np.asarray(records)[:, :3])


def notes_csv(percept, voice: int) -> str:
    """One voice's notes as `note_lines`; loudness and confidence are in the JSON and .npz
    outputs."""
    return note_lines(percept.notes[voice] if percept.notes else np.zeros((0, 5)))


def notes_json(percept) -> list[list[dict]]:
    """Per voice, the notes as {onset_s, offset_s, f0_hz, loudness_db, confidence}."""
    from pcmusic.model.note_prior import NOTE_COLUMNS

    digits = (4, 4, 3, 2, 3)
    return [[{name: round(float(x), d) for name, x, d in zip(NOTE_COLUMNS, row, digits)} for row in voice]
            for voice in percept.notes]


def percept_csv(percept, voice: int) -> str:
    """One voice of a Percept as CSV lines `time_s,f0_hz,confidence` without a header, the
    layout mir_eval (`mir_eval.io.load_time_series`) and Sonic Visualiser read; f0_hz is 0
    where the voice is unvoiced (mir_eval's convention)."""
    f0 = np.nan_to_num(percept.f0_hz[voice], nan=0.0)
    rows = (f"{t:.6f},{f:.3f},{c:.4f}" for t, f, c in zip(percept.times_s, f0, percept.confidence[voice]))
    return "\n".join(rows) + "\n"


def percept_arrays(percept) -> dict[str, np.ndarray]:
    """A Percept's arrays for an .npz file: times_s `[F]`, f0_hz `[V, F]` (NaN unvoiced),
    amplitudes `[V, F, H]`, voiced and confidence `[V, F]`, inharmonicity `[V]`, energy
    `[n_steps]`, sample_rate and frame_rate_hz (scalars), and per voice v its notes
    `notes_voice<v>` `[n, 5]` (columns `pcmusic.model.note_prior.NOTE_COLUMNS`)."""
    return {"times_s": np.asarray(percept.times_s), "f0_hz": percept.f0_hz,
            "amplitudes": percept.amplitudes, "voiced": percept.voiced,
            "confidence": percept.confidence, "inharmonicity": percept.inharmonicity,
            "energy": percept.energy, "sample_rate": np.asarray(percept.sample_rate),
            "frame_rate_hz": np.asarray(percept.frame_rate_hz),
            **{f"notes_voice{v}": np.asarray(n, np.float64) for v, n in enumerate(percept.notes)}}


def _percept_files(stem: Path, formats, n_voices: int):
    """(path, format, voice) of each file `write_percept` writes (voice None: all voices)."""
    for fmt in formats:
        suffix = {"notes": "notes.csv"}.get(fmt, fmt)
        if fmt in ("csv", "notes") and n_voices > 1:
            for v in range(n_voices):
                yield stem.with_name(f"{stem.name}.voice{v}.{suffix}"), fmt, v
        else:
            yield stem.with_name(f"{stem.name}.{suffix}"), fmt, 0 if fmt in ("csv", "notes") else None


def percept_paths(stem: Path, formats, n_voices: int) -> list[Path]:
    """The files `write_percept` writes for `stem` (a path without suffix): stem.json,
    stem.npz, stem.mid, and stem.csv / stem.notes.csv (one voice) or
    stem.voice<i>.csv / stem.voice<i>.notes.csv (several)."""
    return [path for path, _, _ in _percept_files(stem, formats, n_voices)]


def write_percept(stem: Path, percept, audio, formats, *, source: str) -> list[Path]:
    """Write a Percept in each of `formats` (PERCEPT_FORMATS) beside `stem`, each file
    atomically; returns the paths written."""
    written = []
    for path, fmt, voice in _percept_files(stem, formats, percept.f0_hz.shape[0]):
        if fmt == "json":
            write_atomic(path, json.dumps({"audio": source, **percept_json(percept, audio)}) + "\n")
        elif fmt == "csv":
            write_atomic(path, percept_csv(percept, voice))
        elif fmt == "notes":
            write_atomic(path, notes_csv(percept, voice))
        elif fmt == "mid":
            from pcmusic import midi
            midi.write(path, percept.notes, overwrite=True)
        else:
            files.write_npz(path, percept_arrays(percept))
        written.append(path)
    return written
