"""Remake a built-in model from a checkout: `python -m pcmusic.builtin.make tiny [--workdir DIR]`.

Trains configs/builtin-NAME.toml (`pcmusic train`; resumes if the workdir holds a
checkpoint), copies only the final step's checkpoint into pcmusic/builtin/NAME/checkpoints/
(the previous one is replaced), and fits NAME/notes.npz, a note prior on N_MELODIES random
12-TET melodies. Prints the wall time and the shipped size for docs/model_card.md;
`--measure` prints its perception figures instead (`measure`).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import jax
import numpy as np

from pcmusic.builtin import NOTES_FILE, PREFIX, ROOT

N_MELODIES = 64          # melodies of 8 notes (10 % rests) in 4 s each: 12-TET, 130-1050 Hz
MELODY_LOUDNESS_DB = -12.0


def melody_corpus(n_melodies: int = N_MELODIES, *, seed: int = 0) -> list[np.ndarray]:
    """`n_melodies` random-walk 12-TET melodies as note records `[n, 4]` (onset_s,
    offset_s, f0_hz, loudness_db); rests are gaps, not records."""
    from pcmusic.data import melodies, tunings

    tuning = tunings.parse_tuning("12-TET")
    corpus = []
    for key in jax.random.split(jax.random.key(seed), n_melodies):
        m = melodies.melody(key, tuning=tuning, n_notes=8, seconds=4.0, rest_probability=0.1)
        durations = np.asarray(m.durations_s, np.float64)
        onsets = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
        hz = np.asarray(m.note_hz, np.float64)
        sounding = np.isfinite(hz)
        corpus.append(np.stack([onsets, onsets + durations, hz, np.full_like(hz, MELODY_LOUDNESS_DB)],
                               axis=1)[sounding])
    return corpus


def measure(name: str, *, n_notes: int = 8, perceive_steps: int = 200) -> dict:
    """The model card's perception figures: `n_notes` synthetic notes of 1 s from the
    training distribution (12-TET, 110-880 Hz, held-out key) perceived with the untrained
    prior and with `builtin:NAME` (its inference, `perceive_steps` steps). Per note, the
    median |cents| of the perceived f0 against the rendered f0 over frames both call
    voiced (after 50 ms of attack); returned as the median over notes, with octave errors
    (notes whose median error exceeds 600 cents) and the voiced fraction."""
    import dataclasses

    from pcmusic import data, load_model, perceive_batch

    model, config = load_model(f"{PREFIX}{name}")
    rate = config.model.controls.sample_rate
    spec = data.SyntheticSpec(kind="notes", batch_size=n_notes, sample_rate=rate,
                              hop=config.model.controls.hop, seconds=1.0,
                              f0_min_hz=config.data.f0_min_hz, f0_max_hz=config.data.f0_max_hz)
    batch = data.synthetic_batch(jax.random.key(12345), spec)
    truth = np.asarray(batch.f0_hz[:, 0])                             # [B, frames]
    inference = dataclasses.replace(config.inference, n_steps=perceive_steps)
    result = {}
    for label, kwargs in (("untrained prior", {}), (f"{PREFIX}{name}", {"model": model, "inference": inference})):
        percepts = perceive_batch(np.asarray(batch.audio), rate, **kwargs)
        medians, voiced = [], []
        for percept, f0 in zip(percepts, truth):
            n = min(f0.size, percept.f0_hz.shape[1])
            skip = int(0.05 * percept.frame_rate_hz)
            cents = 1200 * np.log2(percept.f0_hz[0, skip:n] / f0[skip:n])
            cents = np.abs(cents[np.isfinite(cents)])
            medians.append(np.median(cents) if cents.size else np.nan)
            voiced.append(np.mean(percept.voiced[0, skip:n][np.isfinite(f0[skip:n])]))
        medians = np.asarray(medians)
        result[label] = {"median_abs_cents": round(float(np.nanmedian(medians)), 2),
                         "octave_errors": int(np.sum(medians > 600)), "n_notes": n_notes,
                         "voiced_fraction": round(float(np.mean(voiced)), 3)}
    return result


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def make(name: str, workdir: Path) -> None:
    from pcmusic.model import note_prior
    from pcmusic.training import load_config, train
    from pcmusic.training.checkpoint import checkpoint_dir, latest_step

    config = load_config(f"builtin-{name}")
    start = time.perf_counter()
    train(config, workdir, progress=False)
    wall_s = time.perf_counter() - start
    source = checkpoint_dir(workdir)
    step = latest_step(source)
    target = ROOT / name / "checkpoints"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source / str(step), target / str(step))
    note_prior.save(ROOT / name / NOTES_FILE, note_prior.fit(melody_corpus()), overwrite=True)
    print(f"builtin:{name}: step {step} from {workdir} ({wall_s:.0f} s this call), "
          f"{_size_mb(ROOT / name):.2f} MB in {ROOT / name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pcmusic.builtin.make", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the built-in model (configs/builtin-NAME.toml)")
    parser.add_argument("--workdir", type=Path, default=None, help="the training run (default runs/builtin-NAME)")
    parser.add_argument("--measure", action="store_true",
                        help="only print the shipped model's perception figures (`measure`) as JSON")
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.name), indent=2))
    else:
        make(args.name, args.workdir or Path("runs") / f"builtin-{args.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
