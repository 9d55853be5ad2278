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


def sound_names(n: int) -> list[str]:
    """The files `write_sounds` writes for n sounds."""
    return [f"sample_{i}{suffix}" for i in range(n) for suffix in (".wav", "_unrefined.wav", ".png")]


def write_sounds(directory: Path, sounds, trace, sample_rate: int, *, overwrite: bool = False,
                 title: str = "sample") -> list[dict]:
    """Write each generated sound (sample_i.wav), its unrefined render (sample_i_unrefined.wav)
    and its figure (sample_i.png: spectrogram and energy per refinement step) into
    `directory`; returns one record per sound with its energy trace. A WAV whose peak
    exceeds 1 is scaled to peak 0.99 (its record's `gain`), so it plays without clipping."""
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
        energy = [float(e) for e in trace.energy[i]]
        records.append({"wav": f"sample_{i}.wav", "unrefined_wav": f"sample_{i}_unrefined.wav",
                        "png": f"sample_{i}.png", "gain": gain, "unrefined_gain": unrefined_gain,
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
            "energy": rounded(percept.energy, 4)}


PERCEPT_FORMATS = ("json", "csv", "npz")


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
    `[n_steps]`, sample_rate and frame_rate_hz (scalars)."""
    return {"times_s": np.asarray(percept.times_s), "f0_hz": percept.f0_hz,
            "amplitudes": percept.amplitudes, "voiced": percept.voiced,
            "confidence": percept.confidence, "inharmonicity": percept.inharmonicity,
            "energy": percept.energy, "sample_rate": np.asarray(percept.sample_rate),
            "frame_rate_hz": np.asarray(percept.frame_rate_hz)}


def _percept_files(stem: Path, formats, n_voices: int):
    """(path, format, voice) of each file `write_percept` writes (voice None: all voices)."""
    for fmt in formats:
        if fmt == "csv" and n_voices > 1:
            for v in range(n_voices):
                yield stem.with_name(f"{stem.name}.voice{v}.csv"), fmt, v
        else:
            yield stem.with_name(f"{stem.name}.{fmt}"), fmt, 0 if fmt == "csv" else None


def percept_paths(stem: Path, formats, n_voices: int) -> list[Path]:
    """The files `write_percept` writes for `stem` (a path without suffix): stem.json,
    stem.npz, and stem.csv (one voice) or stem.voice<i>.csv (several)."""
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
        else:
            files.write_npz(path, percept_arrays(percept))
        written.append(path)
    return written
