"""Transcription benchmark: notes of rendered melodies and chords, scored with mir_eval.

Material: random melodies of 6-10 notes (E3-A5, steps of 1-5 semitones, 0.15-0.6 s
notes, legato with probability 0.3, rests of 0.1-0.3 s with probability 0.25) and
sequences of three two-note chords (a third to an octave apart), written as MIDI
(`pcmusic.midi`) and rendered by FluidSynth on General MIDI instruments of TimGM6mb
(dry at 16 kHz, and with FluidSynth's reverb at 44.1 kHz: material nothing was tuned
on). A 5-TET set (melodies in five equal steps per octave, written with pitch bends)
checks that the notes are heard in Hz, not snapped to keys; a set of melodies in which
each note repeats the last one's pitch with probability REPEAT_PROBABILITY checks that a
note struck again is heard again.

Score: `mir_eval.transcription.precision_recall_f1_overlap` with onsets within 50 ms
and pitches within 50 cents, offsets ignored, pooled over all voices of a clip;
precision, recall and F1 are means over clips. pcmusic perceives with its defaults
(one voice for melodies, `n_voices=2` for chords). mir_eval is a benchmark-only tool
(`pip install mir_eval`).

Anchor: `python -m pcmusic.bench.transcribe --renders DIR` writes every render (NAME.wav)
and its reference (NAME.ref.csv) without perceiving; another tool writes its notes beside
them as NAME.<tool>.csv (onset_s,offset_s,f0_hz; `experiments/anchors/basic_pitch_notes.py`
in basic-pitch's own venv); then `PCMUSIC_BENCH_RENDERS=DIR pcmusic bench --only
transcribe` scores pcmusic and every such tool on the same renders, in the same table.
`PCMUSIC_BENCH_SOUNDFONT=FILE.sf2` renders with another soundfont (its name then tags the
sets and the renders).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from pcmusic.data import fluid

PROGRAMS = {"piano": 0, "guitar": 24, "violin": 40, "trumpet": 56, "clarinet": 71, "flute": 73}
ONSET_TOLERANCE_S = 0.05
PITCH_TOLERANCE_CENTS = 50.0
REPEAT_PROBABILITY = 0.4      # the repeated-notes set: each note repeats the last pitch this often
SOUNDFONT_ENV = "PCMUSIC_BENCH_SOUNDFONT"


def melody(rng: np.random.Generator, *, step_cents: float = 100.0, repeat_probability: float = 0.0) -> np.ndarray:
    """Note records float64 `[n, 5]` (onset_s, offset_s, f0_hz, loudness_db, 1) of one
    random melody (module docstring); pitches on the equal division of the octave with
    steps of `step_cents`, around A3..A5; each note repeats the last one's pitch with
    `repeat_probability` (a draw made only where it is > 0, so melodies without repeats
    stay the same for a seed)."""
    n = int(rng.integers(6, 11))
    steps_per_octave = 1200.0 / step_cents
    lo = int(np.ceil(steps_per_octave * np.log2(165.0 / 27.5)))     # E3 .. A5, from A0
    hi = int(np.floor(steps_per_octave * np.log2(880.0 / 27.5)))
    degree = int(rng.integers(lo, hi + 1))
    largest = max(1, min(5, int(steps_per_octave // 2)))
    t, out = 0.1, []
    for _ in range(n):
        dur = float(rng.uniform(0.15, 0.6))
        f0 = 27.5 * 2.0 ** (degree / steps_per_octave)
        out.append((t, t + dur, f0, float(rng.uniform(-12.0, -4.0)), 1.0))
        legato = rng.random() < 0.3
        t += dur + (0.0 if legato else float(rng.uniform(0.1, 0.3)) if rng.random() < 0.25 / 0.7
                    else float(rng.uniform(0.02, 0.06)))
        if repeat_probability > 0 and rng.random() < repeat_probability:
            continue
        degree = int(np.clip(degree + int(rng.integers(1, largest + 1)) * int(rng.choice([-1, 1])), lo, hi))
    return np.asarray(out, np.float64)


def chords(rng: np.random.Generator, *, n_chords: int = 3) -> list[np.ndarray]:
    """Two voices (low, high) of `n_chords` dyads, 0.5-0.8 s each with 0.15 s between."""
    low, high, t = [], [], 0.1
    for _ in range(n_chords):
        dur = float(rng.uniform(0.5, 0.8))
        interval = int(rng.integers(3, 13))
        key = int(rng.integers(50, 80 - interval))
        low.append((t, t + dur, float(fluid.midi_to_hz(key)), -8.0, 1.0))
        high.append((t, t + dur, float(fluid.midi_to_hz(key + interval)), -8.0, 1.0))
        t += dur + 0.15
    return [np.asarray(low), np.asarray(high)]


def score(reference: list[np.ndarray], estimate: list[np.ndarray]) -> tuple[float, float, float]:
    """(precision, recall, F1) of estimated notes against reference notes (voices pooled)."""
    import mir_eval

    def pooled(voices):
        rows = [v[:, :3] for v in voices if len(v)]
        a = np.concatenate(rows) if rows else np.zeros((0, 3))
        return a[:, :2], a[:, 2]

    ref_iv, ref_hz = pooled(reference)
    est_iv, est_hz = pooled(estimate)
    est_iv = np.maximum(est_iv, np.stack([est_iv[:, 0], est_iv[:, 0] + 1e-3], 1)) if len(est_iv) else est_iv
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=ONSET_TOLERANCE_S,
        pitch_tolerance=PITCH_TOLERANCE_CENTS, offset_ratio=None)
    return float(p), float(r), float(f)


def soundfont() -> str | None:
    """The soundfont the bench renders with: $PCMUSIC_BENCH_SOUNDFONT, else None (the first
    GM soundfont found, TimGM6mb on Debian)."""
    return os.environ.get(SOUNDFONT_ENV) or None


def render(voices: list[np.ndarray], program: int, name: str, tmp: Path, *, sample_rate: int,
           reverb: bool) -> np.ndarray:
    """float32 audio of note records `voices` (per voice `[n, >=3]`) played by GM program
    `program` with FluidSynth (`soundfont()`), via a MIDI file NAME.mid written into `tmp`."""
    from pcmusic import midi

    path = midi.write(tmp / f"{name}.mid", voices, overwrite=True, program=program)
    return fluid.render_midi(path, sample_rate=sample_rate, reverb=reverb, soundfont=soundfont())


def _read_csv(path: Path) -> np.ndarray:
    rows = np.loadtxt(path, delimiter=",", ndmin=2) if path.stat().st_size else np.zeros((0, 3))
    return rows.reshape(-1, rows.shape[-1] if rows.size else 3)


def evaluate(cases: list[tuple[str, list[np.ndarray], int]], *, sample_rate: int, reverb: bool,
             n_voices: int, keep: Path | None) -> dict[str, list]:
    """Per method, the (P, R, F1) of each case (name, reference voices, GM program), and
    pcmusic's seconds per clip under "seconds"."""
    import tempfile

    from pcmusic.dsp import audio as audio_lib
    from pcmusic.model.controls import ControlSpec
    from pcmusic.perception import perceive

    results: dict[str, list] = {"pcmusic": [], "seconds": [], "audio_s": []}
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pcmusic-transcribe-") as tmp:
        for name, voices, program in cases:
            x = render(voices, program, name, Path(tmp), sample_rate=sample_rate, reverb=reverb)
            start = time.perf_counter()
            percept = perceive(x, sample_rate, cspec=ControlSpec(n_voices=n_voices))
            results["seconds"].append(time.perf_counter() - start)
            results["audio_s"].append(x.shape[0] / sample_rate)
            results["pcmusic"].append(score(voices, list(percept.notes)))
            if keep is not None:
                heard = np.concatenate([v[:, :3] for v in percept.notes if len(v)] or [np.zeros((0, 3))])
                np.savetxt(keep / f"{name}.pcmusic-notes.txt", heard[np.argsort(heard[:, 0])], delimiter=",",
                           fmt="%.4f")
                audio_lib.save(keep / f"{name}.wav", x, sample_rate, overwrite=True)
                ref = np.concatenate([v[:, :3] for v in voices])
                np.savetxt(keep / f"{name}.ref.csv", ref[np.argsort(ref[:, 0])], delimiter=",", fmt="%.4f")
                for other in sorted(keep.glob(f"{name}.*.csv")):
                    tool = other.name[len(name) + 1:-len(".csv")]
                    if tool != "ref" and not tool.endswith(".f0"):   # .f0.csv: f0 tracks (perceive bench)
                        results.setdefault(tool, []).append(score(voices, [_read_csv(other)]))
    return results


def _rows(label: str, results: dict[str, list]) -> list[dict]:
    rows = []
    n = len(results["pcmusic"])
    for method, scores in results.items():
        if method in ("seconds", "audio_s") or not scores:
            continue
        p, r, f = np.mean(np.asarray(scores), axis=0)
        row = {"set": label, "method": method, "clips": len(scores), "precision": p, "recall": r, "F1": f}
        if method == "pcmusic":
            row["s per clip"] = float(np.mean(results["seconds"]))
            row["real-time factor"] = float(np.sum(results["audio_s"]) / np.sum(results["seconds"]))
        elif len(scores) < n:
            row["note"] = f"anchor ran on {len(scores)} of {n} clips"
        rows.append(row)
    return rows


def benchmark_sets(*, quick: bool, per_program: int | None = None) -> list[tuple[str, int, bool, int, list]]:
    """(label, sample_rate, reverb, n_voices, cases) of every set; cases are (name,
    reference voices, GM program). Each case is drawn from its own seed (set, program,
    index), so a name always means the same material, whatever the counts."""
    programs = dict(list(PROGRAMS.items())[:2]) if quick else PROGRAMS
    per_program = per_program or (1 if quick else 2)

    def rng(*seed):
        return np.random.default_rng(seed)

    out = []
    for k, (label, rate, reverb, step) in enumerate([
            ("melodies, dry, 16 kHz", 16000, False, 100.0),
            ("melodies, reverb, 44.1 kHz", 44100, True, 100.0),
            ("melodies in 5-TET (pitch bends), dry, 16 kHz", 16000, False, 240.0)]):
        tag = f"{'5tet' if step != 100.0 else 'melody'}_{rate}_{'rev' if reverb else 'dry'}"
        out.append((label, rate, reverb, 1, [(f"{tag}_{name}_{i}", [melody(rng(k, program, i), step_cents=step)],
                                              program)
                                             for name, program in programs.items() for i in range(per_program)]))
    out.append(("two-note chords, dry, 16 kHz (n_voices=2)", 16000, False, 2,
                [(f"chords_{name}_{i}", chords(rng(3, program, i)), program) for name, program in programs.items()
                 for i in range(per_program)]))
    out.append(("melodies with repeated notes, dry, 16 kHz", 16000, False, 1,
                [(f"repeat_16000_dry_{name}_{i}", [melody(rng(4, program, i), repeat_probability=REPEAT_PROBABILITY)],
                  program) for name, program in programs.items() for i in range(per_program)]))
    if soundfont():
        stem = Path(soundfont()).stem
        out = [(f"{label}, {stem}", rate, reverb, n_voices, [(f"{stem}_{name}", v, p) for name, v, p in cases])
               for label, rate, reverb, n_voices, cases in out]
    return out


def write_renders(folder: str | Path, *, quick: bool, per_program: int | None = None) -> int:
    """Render every case of `benchmark_sets` into `folder` (NAME.wav, NAME.ref.csv) without
    perceiving: the material for an anchor run in its own venv. Returns the count."""
    import tempfile

    from pcmusic.dsp import audio as audio_lib

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    with tempfile.TemporaryDirectory(prefix="pcmusic-transcribe-") as tmp:
        for _, rate, reverb, _, cases in benchmark_sets(quick=quick, per_program=per_program):
            for name, voices, program in cases:
                x = render(voices, program, name, Path(tmp), sample_rate=rate, reverb=reverb)
                audio_lib.save(folder / f"{name}.wav", x, rate, overwrite=True)
                ref = np.concatenate([v[:, :3] for v in voices])
                np.savetxt(folder / f"{name}.ref.csv", ref[np.argsort(ref[:, 0])], delimiter=",", fmt="%.4f")
                count += 1
    return count


def run(*, quick: bool) -> Iterator[tuple[str, list[dict]]]:
    """Tables: melodies (dry 16 kHz; reverb 44.1 kHz; 5-TET), two-note chords, melodies
    with repeated notes."""
    if not fluid.available(soundfont()):
        yield ("transcription", [{"note": f"fluidsynth or the soundfont {soundfont() or '(GM)'} missing: "
                                          "apt-get install fluidsynth timgm6mb-soundfont"}])
        return
    try:
        import mir_eval  # noqa: F401
    except ImportError:
        yield ("transcription", [{"note": "pip install mir_eval to score transcriptions"}])
        return
    keep = Path(os.environ["PCMUSIC_BENCH_RENDERS"]) if os.environ.get("PCMUSIC_BENCH_RENDERS") else None
    for label, rate, reverb, n_voices, cases in benchmark_sets(quick=quick):
        results = evaluate(cases, sample_rate=rate, reverb=reverb, n_voices=n_voices, keep=keep)
        yield (f"transcription: {label} (onset 50 ms, pitch 50 cents, offsets ignored)", _rows(label, results))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="write the transcription bench's renders for an anchor")
    parser.add_argument("--renders", required=True, help="folder for NAME.wav and NAME.ref.csv")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--per-program", type=int, default=None, help="clips per instrument and set")
    args = parser.parse_args()
    print(f"wrote {write_renders(args.renders, quick=args.quick, per_program=args.per_program)} renders "
          f"to {args.renders}")
