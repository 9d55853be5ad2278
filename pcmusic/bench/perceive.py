"""Perception benchmark: f0 accuracy on real sampled instruments, beside pYIN, and speed.

Notes are rendered with FluidSynth from General MIDI soundfonts (TimGM6mb, and
FluidR3_GM where installed, as material the method was not developed on), 1 s each,
MIDI 40-84. Ground truth is the key's 12-TET frequency. Frames in the first 50 ms are
skipped; "voiced" frames are those the method marks voiced. An octave error is a
note whose median error exceeds 600 cents. pYIN (librosa, a benchmark-only tool) runs
on the same renders with its default thresholds over 40-2100 Hz.

Organ is GM 20 (reed organ): the GM church and drawbar organs of these soundfonts
sound a 16' rank, whose physical period is an octave below the key; they are
reported on their own row (full mode) rather than scored as octave errors.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from pcmusic.data import fluid
from pcmusic.bench.table import time_call

FAMILIES = {"piano": 0, "organ (reed)": 20, "guitar": 24, "strings": 48, "brass": 61, "flute": 73}
EXTRA = {"church organ (16')": 19}
SKIP_S = 0.05
INTERVALS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12)   # minor third .. octave, semitones


def _note_errors(f0_hz: np.ndarray, frame_rate_hz: float, ref_hz: float) -> np.ndarray:
    """Cents error of the voiced frames after SKIP_S."""
    start = int(round(SKIP_S * frame_rate_hz))
    cents = 1200 * np.log2(f0_hz[start:] / ref_hz)
    return cents[np.isfinite(cents)]


def summarise(per_note: list[np.ndarray], n_frames: list[int]) -> dict:
    """Median |error|, share within 50 cents, octave errors, voiced share over notes."""
    errors = np.abs(np.concatenate(per_note)) if per_note else np.zeros(0)
    octaves = sum(1 for e in per_note if e.size == 0 or abs(np.median(e)) > 600)
    return {"notes": len(per_note),
            "median_cents": float(np.median(errors)) if errors.size else float("nan"),
            "within_50": float(np.mean(errors < 50)) if errors.size else 0.0,
            "octave_errors": octaves,
            "voiced": float(sum(e.size for e in per_note) / max(sum(n_frames), 1))}


def _pyin(clip: np.ndarray, sample_rate: int, hop: int):
    import librosa

    f0, _, _ = librosa.pyin(clip, fmin=40.0, fmax=2100.0, sr=sample_rate,
                            frame_length=2048 * sample_rate // 16000, hop_length=hop)
    return np.asarray(f0, np.float64), sample_rate / hop


def evaluate_notes(programs: dict, pitches, *, soundfont=None, sample_rate: int = 16000,
                   with_pyin: bool = True, overall: tuple = ()) -> list[dict]:
    """Rows per family for pcmusic (and pYIN): accuracy of single notes, plus a row per
    method pooling the families named in `overall`."""
    from pcmusic.perception import perceive

    rows, pooled = [], {}
    for family, program in programs.items():
        notes = [fluid.Note(program, (int(p),)) for p in pitches]
        clips = [c[:sample_rate] for c in fluid.render_notes(notes, sample_rate=sample_rate,
                                                             soundfont=soundfont)]
        ours, theirs, n_ours, n_theirs = [], [], [], []
        for note, clip in zip(notes, clips):
            ref = float(fluid.midi_to_hz(note.pitches[0]))
            p = perceive(clip, sample_rate, notes=False)
            ours.append(_note_errors(p.f0_hz[0], p.frame_rate_hz, ref))
            n_ours.append(p.f0_hz.shape[1] - int(round(SKIP_S * p.frame_rate_hz)))
            if with_pyin:
                f0, rate = _pyin(clip, sample_rate, 128)
                theirs.append(_note_errors(f0, rate, ref))
                n_theirs.append(f0.size - int(round(SKIP_S * rate)))
        results = {"pcmusic": (ours, n_ours), **({"pyin": (theirs, n_theirs)} if with_pyin else {})}
        for method, (errors, counts) in results.items():
            rows.append({"family": family, "method": method, **summarise(errors, counts)})
            if family in overall:
                pooled.setdefault(method, ([], []))
                pooled[method][0].extend(errors)
                pooled[method][1].extend(counts)
    for method, (errors, counts) in pooled.items():
        rows.append({"family": f"ALL ({len(overall)} families)", "method": method,
                     **summarise(errors, counts)})
    return rows


def evaluate_dyads(programs: dict, *, n_per_interval: int, soundfont=None, sample_rate: int = 16000,
                   seed: int = 0) -> dict:
    """Share of two-note dyads (minor third .. octave) with both notes within 50 cents."""
    from pcmusic.model.controls import ControlSpec
    from pcmusic.perception import perceive

    rng = np.random.default_rng(seed)
    names = list(programs)
    notes = []
    for i, interval in enumerate(np.repeat(INTERVALS, n_per_interval)):
        low = int(rng.integers(45, 85 - interval))
        notes.append(fluid.Note(programs[names[i % len(names)]], (low, low + int(interval))))
    clips = fluid.render_notes(notes, sample_rate=sample_rate, soundfont=soundfont)
    spec = ControlSpec(n_voices=2)
    ok, per_interval = 0, {}
    for note, clip in zip(notes, clips):
        p = perceive(clip[:sample_rate], sample_rate, cspec=spec, notes=False)
        start = int(round(0.1 * p.frame_rate_hz))
        found = np.nanmedian(p.f0_hz[:, start:], axis=1)
        hit = all(np.nanmin(np.abs(1200 * np.log2(found / fluid.midi_to_hz(m)))) < 50 for m in note.pitches)
        ok += hit
        key = note.pitches[1] - note.pitches[0]
        per_interval.setdefault(key, []).append(hit)
    return {"dyads": len(notes), "both_within_50": ok / len(notes),
            "per_interval": {k: float(np.mean(v)) for k, v in sorted(per_interval.items())}}


def melody_signal(seconds: float, sample_rate: int, *, seed: int = 0) -> np.ndarray:
    """float32 `[round(seconds * sample_rate)]`: a test melody for timing, 0.25-0.5 s
    harmonic notes (A2-A5, 12 partials falling 6 dB per octave, 10 ms ramps) with 0.1 s
    rests between some, plus white noise 30 dB down."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n, np.float64)
    start = 0
    while start < n:
        length = int(rng.uniform(0.25, 0.5) * sample_rate)
        f0 = 110.0 * 2.0 ** (rng.integers(0, 37) / 12.0)
        t = np.arange(min(length, n - start)) / sample_rate
        k = np.arange(1, 13)[:, None]
        tone = np.sum(np.where(k * f0 < 0.45 * sample_rate, 1.0 / k, 0.0)
                      * np.sin(2 * np.pi * k * f0 * t[None]), axis=0)
        ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
        out[start:start + t.size] = 0.1 * tone * ramp
        start += length + (int(0.1 * sample_rate) if rng.random() < 0.3 else 0)
    out += 0.1 * 10 ** (-30 / 20) * rng.normal(size=n)
    return out.astype(np.float32)


# Runs in a fresh interpreter per case, so that its compile time and peak memory are its own.
_SPEED_CASE = """
import json, resource, sys, time
import numpy as np
from pcmusic.bench.perceive import melody_signal
from pcmusic.perception import perceive
seconds, rate, notes = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
start = time.perf_counter()
perceive(melody_signal(min(seconds, 10.0), rate, seed=1), rate, notes=notes)  # compiles
first = time.perf_counter() - start
clip = melody_signal(seconds, rate)
start = time.perf_counter()
perceive(clip, rate, notes=notes)
warm = time.perf_counter() - start
print(json.dumps({"first": first, "warm": warm,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _speed_case(seconds: float, sample_rate: int, *, notes: bool) -> dict:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _SPEED_CASE, str(seconds), str(sample_rate),
                          "1" if notes else "0"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _has_librosa() -> bool:
    try:
        import librosa  # noqa: F401
    except ImportError:
        return False
    return True


def _pyin_seconds(clip: np.ndarray, sample_rate: int) -> float:
    """Wall seconds of pYIN on `clip`, after a 1 s warm-up (librosa compiles with numba)."""
    _pyin(clip[:sample_rate], sample_rate, sample_rate // 125)
    return time_call(lambda: _pyin(clip, sample_rate, sample_rate // 125), n_repeats=1, n_warmup=0)


def _speed_rows(quick: bool) -> list[dict]:
    """Real-time factor (audio seconds per wall second, warm) of `perceive` on a test
    melody at 16 and 44.1 kHz, each case in a fresh process: the first call (on a clip
    of at most 10 s, compiling every program the case needs), peak resident memory; pYIN
    on the same audio (up to 30 s) in the same run."""
    import jax

    lengths = (1.0, 30.0) if quick else (1.0, 30.0, 600.0)
    with_pyin = _has_librosa()
    rows = []
    for sample_rate in (16000, 44100):
        for seconds in lengths:
            for notes in ((True, False) if seconds == 1.0 else (True,)):
                r = _speed_case(seconds, sample_rate, notes=notes)
                pyin = _pyin_seconds(melody_signal(seconds, sample_rate), sample_rate) \
                    if with_pyin and notes and seconds <= 30 else None
                rows.append({"audio": f"{seconds:g} s @ {sample_rate / 1000:g} kHz",
                             "notes": "yes" if notes else "no", "device": jax.default_backend(),
                             "first call s": r["first"], "warm s": r["warm"],
                             "real-time factor": seconds / r["warm"], "peak RSS MB": r["rss_mb"],
                             "pYIN RTF": float("nan") if pyin is None else seconds / pyin})
    if jax.default_backend() != "cpu":  # an accelerator: batching is where its speed shows
        from pcmusic.perception import perceive_batch
        from pcmusic.perception.percept import BATCH_SIZES
        clips = [melody_signal(1.0, 16000, seed=i) for i in range(128)]
        size = BATCH_SIZES[-1]
        perceive_batch(clips, 16000, batch_size=size, notes=False)
        seconds = time_call(lambda: perceive_batch(clips, 16000, batch_size=size, notes=False)[0].f0_hz,
                            n_repeats=2, n_warmup=0)
        rows.append({"audio": f"128 clips x 1 s @ 16 kHz (batches of {size})", "notes": "no",
                     "device": jax.default_backend(), "warm s": seconds,
                     "real-time factor": 128 / seconds})
    return rows


def run(*, quick: bool) -> Iterator[tuple[str, list[dict]]]:
    """Tables, each yielded when done: speed, then accuracy per soundfont (single notes
    beside pYIN, dyads)."""
    yield ("perception speed (warm; real-time factor = audio seconds per wall second)",
           _speed_rows(quick))
    if not fluid.available():
        yield ("perception accuracy", [{"note": "fluidsynth or a GM soundfont missing: "
                                                "apt-get install fluidsynth timgm6mb-soundfont"}])
        return
    with_pyin = _has_librosa()
    pitches = (43, 55, 67, 79) if quick else tuple(range(40, 85, 4))
    soundfonts = ["TimGM6mb.sf2"] + ([] if quick or fluid.find_soundfont("FluidR3_GM.sf2") is None
                                     else ["FluidR3_GM.sf2"])
    for sf in soundfonts:
        programs = dict(FAMILIES, **({} if quick else EXTRA))
        rows = evaluate_notes(programs, pitches, soundfont=sf, with_pyin=with_pyin,
                              overall=tuple(FAMILIES))
        note = "" if with_pyin else " (pip install librosa to add pYIN)"
        yield f"single notes, {sf}, MIDI {pitches[0]}-{pitches[-1]}, 1 s{note}", rows
        dyads = evaluate_dyads(FAMILIES, n_per_interval=1 if quick else 3, soundfont=sf)
        yield (f"dyads (--voices 2), {sf}",
               [{"dyads": dyads["dyads"], "both_within_50": dyads["both_within_50"],
                 **{f"+{k}": v for k, v in dyads["per_interval"].items()}}])
