"""Perception benchmark: f0 accuracy on real sampled instruments, beside pYIN, and speed.

Notes are rendered with FluidSynth from General MIDI soundfonts (TimGM6mb, and
FluidR3_GM where installed, as material the method was not developed on), 1 s each,
MIDI 40-84. Ground truth is the key's 12-TET frequency. Frames in the first 50 ms are
skipped; "voiced" frames are those the method marks voiced. An octave error is a
note whose median error exceeds 600 cents. pYIN (librosa, a benchmark-only tool) runs
on the same renders with its default thresholds over 40-2100 Hz.

Melodies: the transcription bench's melodies (`pcmusic.bench.transcribe`: 6-10 notes,
rests, legato, six GM instruments; dry at 16 kHz, with reverb at 44.1 kHz, and in 5-TET)
scored frame by frame with `mir_eval.melody` against the reference notes' pitches (0
where no note is held, so release tails count as false alarms for every method alike):
raw pitch and raw chroma accuracy, voicing recall and false alarm. pcmusic and pYIN
report their pitch guess in unvoiced frames as mir_eval asks (a negative frequency), so
raw pitch accuracy does not depend on the voicing decision. Anchors from other venvs
(torchcrepe, PESTO: `experiments/anchors/f0_tracks.py`) are read from
NAME.<tool>.f0.csv (time_s,f0_hz,confidence[,voiced]) in $PCMUSIC_BENCH_RENDERS, the
folder `python -m pcmusic.bench.transcribe --renders DIR` fills with the same renders.

Organ is GM 20 (reed organ): the GM church and drawbar organs of these soundfonts
sound a 16' rank, whose physical period is an octave below the key; they are
reported on their own row (full mode) rather than scored as octave errors.
"""
from __future__ import annotations

import time
import warnings
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


def _pyin(clip: np.ndarray, sample_rate: int, hop: int, *, with_guess: bool = False):
    """pYIN's f0 (NaN where unvoiced) and frame rate; with_guess: (f0 with its best guess
    in unvoiced frames, voiced flags) instead."""
    import librosa

    f0, voiced, _ = librosa.pyin(clip, fmin=40.0, fmax=2100.0, sr=sample_rate,
                                 frame_length=2048 * sample_rate // 16000, hop_length=hop,
                                 fill_na=None if with_guess else np.nan)
    if with_guess:
        return np.asarray(f0, np.float64), np.asarray(voiced, bool)
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


TRIADS = ((4, 3), (3, 4), (3, 3), (4, 4), (5, 2), (2, 5), (7, 5), (4, 5), (3, 5), (5, 4))  # steps up


def chord_sets(n_notes: int, *, n_per_shape: int, seed: int = 0) -> list[tuple[int, ...]]:
    """MIDI pitches of random chords: dyads of each interval in INTERVALS (minor third ..
    octave), or triads of each shape in TRIADS (major, minor, diminished, augmented,
    suspended, open and inverted voicings), `n_per_shape` of each, lowest note drawn in
    A2..C6 so that every note stays in MIDI 45-84."""
    rng = np.random.default_rng(seed)
    shapes = [(i,) for i in INTERVALS] if n_notes == 2 else list(TRIADS)
    chords = []
    for shape in shapes:
        for _ in range(n_per_shape):
            low = int(rng.integers(45, 85 - sum(shape)))
            chords.append(tuple(int(p) for p in low + np.concatenate([[0], np.cumsum(shape)])))
    return chords


def evaluate_chords(programs: dict, *, n_notes: int, n_per_shape: int, soundfont=None,
                    sample_rate: int = 16000, seed: int = 0) -> dict:
    """Chords of `n_notes` notes (`chord_sets`) on the programs in turn, 1 s, perceived
    with n_voices = n_notes: the share of chords with every note found (a voice's median
    f0 after 0.1 s within 50 cents of it), and mir_eval.multipitch precision / recall of
    the voiced frames over 0.1-1 s (the notes held; pitches within 50 cents), per chord
    shape as well."""
    from pcmusic.model.controls import ControlSpec
    from pcmusic.perception import perceive

    names = list(programs)
    chords = chord_sets(n_notes, n_per_shape=n_per_shape, seed=seed)
    notes = [fluid.Note(programs[names[i % len(names)]], chord) for i, chord in enumerate(chords)]
    clips = fluid.render_notes(notes, sample_rate=sample_rate, soundfont=soundfont)
    spec = ControlSpec(n_voices=n_notes)
    found, frames, per_shape = [], [], {}
    for note, clip in zip(notes, clips):
        p = perceive(clip[:sample_rate], sample_rate, cspec=spec, notes=False)
        start = int(round(0.1 * p.frame_rate_hz))
        with warnings.catch_warnings():                 # a voice never voiced: NaN, a miss
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(p.f0_hz[:, start:], axis=1)
        refs = fluid.midi_to_hz(np.asarray(note.pitches))
        hit = all(np.nanmin(np.abs(1200 * np.log2(median / r)), initial=np.inf) < 50 for r in refs)
        found.append(hit)
        frames.append((p.times_s[start:], refs, p.f0_hz[:, start:]))
        shape = "+".join(str(b - a) for a, b in zip(note.pitches, note.pitches[1:]))
        per_shape.setdefault(shape, []).append(hit)
    out = {"chords": len(notes), "all_found": float(np.mean(found)),
           "per_shape": {k: float(np.mean(v)) for k, v in per_shape.items()}}
    out.update(_multipitch(frames))
    return out


def _multipitch(frames: list) -> dict:
    """Pooled mir_eval.multipitch precision and recall over (times `[T]`, reference Hz
    `[n]` held throughout, estimated Hz `[V, T]` NaN where unvoiced) of several clips;
    NaN without mir_eval."""
    try:
        import mir_eval
    except ImportError:
        return {"multipitch_precision": float("nan"), "multipitch_recall": float("nan")}
    times, refs, ests, offset = [], [], [], 0.0
    for t, ref, est in frames:
        times.append(t - t[0] + offset)
        refs += [np.asarray(ref, np.float64)] * t.size
        ests += [e[np.isfinite(e)].astype(np.float64) for e in est.T]
        offset += float(t[-1] - t[0]) + 1.0
    t = np.concatenate(times)
    scores = mir_eval.multipitch.evaluate(t, refs, t, ests)
    return {"multipitch_precision": float(scores["Precision"]), "multipitch_recall": float(scores["Recall"])}


MELODY_HOP_S = 0.01          # mir_eval's reference grid
MELODY_KEYS = {"raw pitch": "Raw Pitch Accuracy", "raw chroma": "Raw Chroma Accuracy",
               "voicing recall": "Voicing Recall", "voicing false alarm": "Voicing False Alarm"}


def reference_track(notes: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """Reference f0 in Hz at `times_s` `[T]` of note records `[n, >=3]` (onset_s,
    offset_s, f0_hz): the pitch of the note held at each time (of the latest onset
    where notes overlap), 0 where none is."""
    f0 = np.zeros(times_s.shape, np.float64)
    for onset, offset, hz in notes[np.argsort(notes[:, 0], kind="stable"), :3]:
        f0[(times_s >= onset) & (times_s < offset)] = hz
    return f0


def score_melody(notes: np.ndarray, times_s: np.ndarray, f0_hz: np.ndarray) -> dict:
    """mir_eval.melody scores (MELODY_KEYS) of an estimated track (times `[T]`, f0 in Hz:
    > 0 voiced, < 0 an unvoiced frame's pitch guess, 0 unvoiced without a guess)
    against the reference notes `[n, >=3]`, on a 10 ms grid over the clip."""
    import mir_eval

    end = max(float(np.max(notes[:, 1])), float(times_s[-1])) if len(notes) else float(times_s[-1])
    ref_times = np.arange(0.0, end + MELODY_HOP_S, MELODY_HOP_S)
    est_f0 = np.where(np.isfinite(f0_hz), f0_hz, 0.0)
    scores = mir_eval.melody.evaluate(ref_times, reference_track(notes, ref_times),
                                      np.asarray(times_s, np.float64), est_f0)
    return {name: float(scores[key]) for name, key in MELODY_KEYS.items()}


def _read_track(path) -> tuple[np.ndarray, np.ndarray]:
    """(times_s, signed f0_hz) from an anchor's NAME.<tool>.f0.csv: rows time_s, f0_hz,
    confidence[, voiced]; with a voiced column, unvoiced frames keep their pitch guess as
    a negative frequency."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    f0 = rows[:, 1].copy()
    if rows.shape[1] >= 4:
        f0 = np.where(rows[:, 3] > 0.5, f0, -np.abs(f0))
    return rows[:, 0], f0


def evaluate_melodies(*, quick: bool, with_pyin: bool = True) -> list[dict]:
    """Rows (set, method, clips, MELODY_KEYS means over clips) for pcmusic, pYIN and any
    anchor tracks in $PCMUSIC_BENCH_RENDERS, on the transcription bench's melody sets."""
    import os
    import tempfile
    from pathlib import Path

    from pcmusic.bench import transcribe
    from pcmusic.perception import perceive

    renders = os.environ.get("PCMUSIC_BENCH_RENDERS")
    rows = []
    sets = [s for s in transcribe.benchmark_sets(quick=quick) if s[3] == 1]
    with tempfile.TemporaryDirectory(prefix="pcmusic-melody-") as tmp:
        for label, rate, reverb, _, cases in sets:
            scores: dict[str, list] = {}
            for name, voices, program in cases:
                x = transcribe.render(voices, program, name, Path(tmp), sample_rate=rate, reverb=reverb)
                p = perceive(x, rate, notes=False)
                guess = np.exp2(np.asarray(p.latents["controls"]["log2_f0"])[0, 0])
                ours = np.where(p.voiced[0], guess, -guess)
                scores.setdefault("pcmusic", []).append(score_melody(voices[0], p.times_s, ours))
                if with_pyin:
                    hop = rate // 100
                    f0, flag = _pyin(x, rate, hop, with_guess=True)
                    scores.setdefault("pyin", []).append(
                        score_melody(voices[0], np.arange(f0.size) * hop / rate, np.where(flag, f0, -f0)))
                for other in sorted(Path(renders).glob(f"{name}.*.f0.csv")) if renders else ():
                    tool = other.name[len(name) + 1:-len(".f0.csv")]
                    scores.setdefault(tool, []).append(score_melody(voices[0], *_read_track(other)))
            for method, per_clip in scores.items():
                row = {"set": label, "method": method, "clips": len(per_clip)}
                row.update({k: float(np.mean([c[k] for c in per_clip])) for k in MELODY_KEYS})
                if len(per_clip) < len(cases):
                    row["note"] = f"ran on {len(per_clip)} of {len(cases)} clips"
                rows.append(row)
    return rows


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
seconds, rate, notes, calls = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
clip = melody_signal(seconds, rate)
times = []
for _ in range(calls):               # the first call compiles every program this clip needs
    start = time.perf_counter()
    perceive(clip, rate, notes=notes)
    times.append(time.perf_counter() - start)
print(json.dumps({"first": times[0], "warm": times[-1],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _speed_case(seconds: float, sample_rate: int, *, notes: bool, calls: int) -> dict:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _SPEED_CASE, str(seconds), str(sample_rate),
                          "1" if notes else "0", str(calls)], capture_output=True, text=True, check=True)
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
    melody at 16 and 44.1 kHz, each case in a fresh process that perceives the clip twice:
    the first call compiles every program the clip needs ("compile s" = first - warm),
    the second is the warm time; a 10-minute file is perceived once, its time compile
    included (a few seconds of minutes). Peak resident memory of the process; pYIN on the
    same audio (up to 30 s) in the same run."""
    import jax

    lengths = (1.0, 30.0) if quick else (1.0, 30.0, 600.0)
    with_pyin = _has_librosa()
    rows = []
    for sample_rate in (16000, 44100):
        for seconds in lengths:
            for notes in ((True, False) if seconds <= 30 else (True,)):
                calls = 2 if seconds <= 30 else 1
                r = _speed_case(seconds, sample_rate, notes=notes, calls=calls)
                pyin = _pyin_seconds(melody_signal(seconds, sample_rate), sample_rate) \
                    if with_pyin and notes and seconds <= 30 else None
                rows.append({"audio": f"{seconds:g} s @ {sample_rate / 1000:g} kHz",
                             "notes": "yes" if notes else "no", "device": jax.default_backend(),
                             "compile s": r["first"] - r["warm"] if calls > 1 else float("nan"),
                             "warm s": r["warm"],
                             "real-time factor": seconds / r["warm"], "peak RSS MB": r["rss_mb"],
                             "pYIN RTF": float("nan") if pyin is None else seconds / pyin})
    if jax.default_backend() != "cpu":  # an accelerator: batching is where its speed shows
        rows += batch_rows(quick=quick)
    return rows


def batch_rows(*, quick: bool, batch_sizes: tuple[int, ...] | None = None) -> list[dict]:
    """Throughput of `perceive_batch` over many files (real-time factor = audio seconds
    per wall second, warm): 1 s clips at 16 kHz at each batch size, then at the largest
    size 1 s clips with the note level, 1 s clips at 44.1 kHz (resampled on the host) and
    30 s files (chunked). "compile s" is the first call's time less the warm call's;
    "device s/clip" is `settle_batch` alone on a batch already on the device (no host
    work: proposal and inference only), per clip."""
    import jax
    import jax.numpy as jnp

    from pcmusic.perception import chunks, perceive_batch
    from pcmusic.perception.inference import resolve_specs, settle_batch

    batch_sizes = batch_sizes or ((8, 64) if quick else (8, 64, 256))
    n_clips = 2 * max(batch_sizes)
    backend = jax.default_backend()
    rows = []

    def case(label, clips, sample_rate, size, notes, seconds_each):
        start = time.perf_counter()
        perceive_batch(clips, sample_rate, batch_size=size, notes=notes)
        first = time.perf_counter() - start
        warm = time_call(lambda: perceive_batch(clips, sample_rate, batch_size=size, notes=notes)[0].f0_hz,
                         n_repeats=2, n_warmup=0)
        row = {"audio": label, "batch": size, "notes": "yes" if notes else "no", "device": backend,
               "compile s": max(first - warm, 0.0), "warm s": warm,
               "real-time factor": len(clips) * seconds_each / warm, "device s/clip": float("nan")}
        rows.append(row)
        return row

    clips16 = [melody_signal(1.0, 16000, seed=i) for i in range(n_clips)]
    specs = dict(zip(("cspec", "sspec", "prior", "inference"), resolve_specs(model=None, n_voices=1)))
    cspec = specs["cspec"]
    n_samples = chunks.plan(cspec.n_frames(clips16[0].size)).chunk_frames * cspec.hop
    padded = np.stack([np.pad(c, (0, n_samples - c.size)) for c in clips16])
    for size in batch_sizes:
        row = case(f"{n_clips} clips x 1 s @ 16 kHz", clips16, 16000, size, False, 1.0)
        batch = jnp.asarray(padded[:size])
        row["device s/clip"] = time_call(lambda: settle_batch(batch, None, **specs).energy,
                                         n_repeats=3) / size
    size = max(batch_sizes)
    case(f"{n_clips} clips x 1 s @ 16 kHz", clips16, 16000, size, True, 1.0)
    case(f"{n_clips} clips x 1 s @ 44.1 kHz", [melody_signal(1.0, 44100, seed=i) for i in range(n_clips)],
         44100, size, False, 1.0)
    n_files = max(2, size // 16)
    case(f"{n_files} files x 30 s @ 16 kHz", [melody_signal(30.0, 16000, seed=i) for i in range(n_files)],
         16000, size, False, 30.0)
    return rows


def run(*, quick: bool) -> Iterator[tuple[str, list[dict]]]:
    """Tables, each yielded when done: speed, then accuracy per soundfont (single notes
    beside pYIN, chords of two and three notes), then melodies (mir_eval.melody, beside
    pYIN and anchors)."""
    yield ("perception speed (real-time factor = audio seconds per wall second; warm, the "
           "10-minute rows one call with its compile)",
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
        rows = []
        for n_notes in (2, 3):
            r = evaluate_chords(FAMILIES, n_notes=n_notes, n_per_shape=1 if quick else 3, soundfont=sf)
            kind = "dyads" if n_notes == 2 else "triads"
            rows.append({"chords": f"{r['chords']} {kind} (--voices {n_notes})",
                         "all notes found": r["all_found"], "multipitch precision": r["multipitch_precision"],
                         "multipitch recall": r["multipitch_recall"],
                         "misses": " ".join(f"+{k}:{v:.2f}" for k, v in r["per_shape"].items() if v < 1)})
        yield f"chords, {sf} (all notes within 50 cents; mir_eval.multipitch)", rows
    try:
        import mir_eval  # noqa: F401
    except ImportError:
        yield "melodies (mir_eval.melody)", [{"note": "pip install mir_eval to score melodies"}]
        return
    yield ("melodies with rests and legato, TimGM6mb (mir_eval.melody, 10 ms grid)",
           evaluate_melodies(quick=quick, with_pyin=with_pyin))
