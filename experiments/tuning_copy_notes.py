"""Tuning copy at the note level: do phrases from a note prior follow its corpus's tuning?

For each tuning (5-TET and 12-TET): a corpus of random-walk melodies in that tuning
(`pcmusic.data.melody`, rests included) is rendered through the oscillator bank and
*perceived* by the untrained listener (`pcmusic.perceive`: notes in Hz, no tuning known);
a note prior is fitted to the perceived notes (`pcmusic.model.note_prior.fit`: the
training); then phrases are generated from fresh intents at the package defaults
(`pcmusic.generation.phrases.generate_phrases`, heard and corrected by its own
perception), and perceived again by the same untrained listener.

Measure, per set of notes and per tuning T: the share of notes within +-window_cents of
T's lattice (reference C4 = 261.63 Hz), divided by the share a uniform pitch would have
there ("enrichment"; 1 = chance). A model follows its tuning when its generations'
enrichment for its own tuning is >= 3 and for the other < 1.2. Also reported: the median
|heard - intended| pitch of the generated notes, notes per second and the interval
histogram's distance (total variation over 50-cent bins) from the corpus's, beside the
distance between the corpus and another draw of its generator (sampling noise alone).

    python experiments/tuning_copy_notes.py [--out runs/tuning_copy_notes] [--quick] [--force]
        [--n-generate N]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from pcmusic import data, perception
from pcmusic.generation import phrases
from pcmusic.model import ControlSpec, note_prior
from pcmusic.model import notes as notes_lib
from pcmusic.outputs import write_atomic

REF_HZ = 261.63
TUNINGS = ("5-TET", "12-TET")


def corpus_phrases(key, tuning: str, *, n: int, seconds: float) -> list[np.ndarray]:
    """Note records `[m, 5]` of n random-walk melodies in `tuning` (rests skipped)."""
    out = []
    for k in jax.random.split(key, n):
        m = data.melody(k, tuning=data.parse_tuning(tuning), n_notes=8, seconds=seconds, rest_probability=0.15)
        hz, dur = np.asarray(m.note_hz, np.float64), np.asarray(m.durations_s, np.float64)
        onsets = np.concatenate([[0.1], 0.1 + np.cumsum(dur)[:-1]])
        keep = np.isfinite(hz)
        out.append(np.stack([onsets, onsets + 0.85 * dur, hz, np.full(hz.shape, -14.0),
                             np.ones(hz.shape)], axis=1)[keep])
    return out


def enrichment(f0_hz: np.ndarray, *, window_cents: float) -> dict:
    out = {}
    for name in TUNINGS:
        t = data.parse_tuning(name)
        err = np.abs(data.scale_error_cents(np.asarray(f0_hz, np.float64), t, f_ref_hz=REF_HZ))
        chance = min(1.0, 2 * window_cents * t.n_steps / float(t.period_cents))
        within = float(np.mean(err <= window_cents)) if err.size else float("nan")
        out[name] = {"within": within, "chance": chance, "enrichment": within / chance}
    return out


def interval_histogram(phrase_list) -> np.ndarray:
    """Shares of successive intervals in 50-cent bins centred on multiples of 50 cents
    (-1200..1200, wider steps in the end bins): a repeated note or a 12-TET step drawn a
    cent either side of its lattice value stays in its bin."""
    steps = np.concatenate([np.diff(1200 * np.log2(p[:, 2])) for p in phrase_list if len(p) > 1] or [[]])
    hist, _ = np.histogram(np.clip(steps, -1225, 1224), bins=np.arange(-1225, 1226, 50))
    return hist / max(hist.sum(), 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/tuning_copy_notes")
    parser.add_argument("--quick", action="store_true", help="a few melodies and phrases (a smoke run)")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--window-cents", type=float, default=15.0)
    parser.add_argument("--n-generate", type=int, default=None,
                        help="phrases generated per tuning (default 24; --quick 2)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if (out / "results.json").exists() and not args.force:
        print(f"{out / 'results.json'} exists; pass --force to redo", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    n_corpus, n_generate, seconds = (3, 2, 2.0) if args.quick else (12, 24, 4.0)
    n_generate = args.n_generate or n_generate
    cspec, nspec = ControlSpec(), notes_lib.NoteSpec()
    results, began = {}, time.time()
    for i, tuning in enumerate(TUNINGS):
        k_corpus, k_render, k_gen = jax.random.split(jax.random.key(i), 3)
        symbolic = corpus_phrases(k_corpus, tuning, n=n_corpus, seconds=seconds)
        n_frames = cspec.n_frames(int((seconds + 0.3) * cspec.sample_rate))
        heard_corpus = []
        for p, k in zip(symbolic, jax.random.split(k_render, n_corpus)):
            notes = phrases.notes_from_records([p], cspec=cspec, spec=nspec)
            audio = np.asarray(phrases.render_notes(notes, n_frames, cspec=cspec, spec=nspec, key=k))[0]
            heard_corpus.append(perception.perceive(audio, cspec.sample_rate).notes[0])
        prior = note_prior.fit(heard_corpus)
        note_prior.save(out / f"prior_{tuning}.npz", prior, overwrite=True)
        made = phrases.generate_phrases(k_gen, prior, n=n_generate, seconds=seconds)
        generated = [m.heard for m in made]
        errors = np.concatenate([m.pitch_error_cents for m in made])
        results[tuning] = {
            "corpus_heard": enrichment(np.concatenate([p[:, 2] for p in heard_corpus]),
                                       window_cents=args.window_cents),
            "generated_heard": enrichment(np.concatenate([p[:, 2] for p in generated if len(p)] or [[]]),
                                          window_cents=args.window_cents),
            "learned_lattice_cents": [round(float(c), 1) for c in note_prior.lattice_cents(prior)],
            "median_abs_heard_minus_intended_cents": float(np.nanmedian(np.abs(errors))),
            "notes_per_second": {"corpus": float(np.mean([len(p) / seconds for p in symbolic])),
                                 "generated": float(np.mean([len(m.intended) / seconds for m in made]))},
            "interval_histogram_tv_distance": float(0.5 * np.abs(
                interval_histogram(symbolic) - interval_histogram([m.intended for m in made])).sum()),
            # the same distance between the corpus and another corpus of its generator
            # (as many phrases as were generated): what sampling alone gives
            "interval_histogram_tv_between_corpora": float(0.5 * np.abs(
                interval_histogram(symbolic) - interval_histogram(corpus_phrases(
                    jax.random.fold_in(k_corpus, 1), tuning, n=n_generate, seconds=seconds))).sum()),
        }
        r = results[tuning]
        print(f"{tuning}: generations' enrichment " + ", ".join(
            f"{t} {r['generated_heard'][t]['enrichment']:.2f}x" for t in TUNINGS)
            + f"; corpus (heard) {r['corpus_heard'][tuning]['enrichment']:.2f}x; heard-intended "
            f"{r['median_abs_heard_minus_intended_cents']:.1f} cents; notes/s {r['notes_per_second']}; "
            f"interval TV {r['interval_histogram_tv_distance']:.2f} (corpus to corpus "
            f"{r['interval_histogram_tv_between_corpora']:.2f})", flush=True)
    own = {t: results[t]["generated_heard"][t]["enrichment"] for t in TUNINGS}
    other = {t: max(results[t]["generated_heard"][u]["enrichment"] for u in TUNINGS if u != t) for t in TUNINGS}
    summary = {"window_cents": args.window_cents, "n_corpus": n_corpus, "n_generate": n_generate,
               "seconds": seconds, "results": results,
               "follows": {t: bool(own[t] >= 3.0 and other[t] < 1.2) for t in TUNINGS},
               "wall_s": round(time.time() - began, 1)}
    write_atomic(out / "results.json", json.dumps(summary, indent=2) + "\n")
    print(f"follows its tuning: {summary['follows']}; wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
