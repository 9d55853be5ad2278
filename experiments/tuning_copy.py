"""Tuning copy: does a model trained on one tuning generate in that tuning?

The copy-model baseline the project argues against: a generative model
trained on a corpus reproduces the corpus's statistics, here its tuning. For each
tuning (5-TET and 12-TET by default) the same hierarchy is trained on synthetic
notes in that tuning (`pcmusic.training`), then generates sounds (intents drawn from the
bank a run ends with, the intents of held-out clips under the final params, at
`intent_bandwidth`; rendered at `temperature`; refined by listening, `pcmusic.generate`).
Their pitches are read by *perceiving* the generated audio with the untrained
default listener (`pcmusic.perceive`, model=None: no access to the generator's
controls, and no knowledge of any tuning); the generator's own control f0 (where its
voice is audible) is reported beside it. The same listener perceives held-out clips of
each training corpus: the reference that shows what "following the tuning" looks like,
read by the same instrument.

Measure: pitch class = 1200 log2(f0 / f_ref) mod 1200 cents per voiced frame, and
for each tuning T its lattice enrichment: the fraction of frames within
+-window_cents of T's lattice (`pcmusic.data.scale_error_cents`), divided by the
fraction a uniform pitch distribution would put there (1 = no preference for T).
A set of sounds follows tuning T when its enrichment for T is at least FOLLOW_ENRICHMENT
(twice chance) and exceeds that for every other tuning.

    python experiments/tuning_copy.py [--config configs/tuning_copy.toml] [--out runs/tuning_copy]
                                      [--quick] [--set key=value ...]

Writes results.json and tuning_copy.png into --out (training runs in --out/<tuning>/,
resumed if present). --quick: a few training steps and sounds (CI's smoke run).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
from matplotlib.figure import Figure
import numpy as np

from pcmusic import data, generation, perception, plots
from pcmusic.configio import config_to_dict, require
from pcmusic.model import intents
from pcmusic.training import loop as train
from pcmusic.training.checkpoint import load_model
from pcmusic.training.config import Config, load_config
from pcmusic.errors import PcmusicError
from pcmusic.outputs import write_atomic

FOLLOW_ENRICHMENT = 2.0
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "tuning_copy.toml"
# The method itself, smaller: 2 training steps of 8 clips, 16 banked intents, 4 sounds of
# each kind, a shorter listener.
QUICK = ["run.train.n_steps=2", "run.train.batch_size=8", "run.train.bank_refresh_clips=16",
         "run.train.intent_shoot_steps=20",
         "run.train.eval_every=2", "run.train.ckpt_every=2",
         "n_generate=4", "n_corpus=4", "perceive_steps=50"]


@dataclasses.dataclass(frozen=True)
class TuningCopy:
    """tunings: names as in data.tuning, trained one after the other.
    n_generate sounds of generate_seconds, refine_steps refinement steps each, drawn at
    `temperature` (`pcmusic.generate`: 1 samples the levels below the intent with the
    residual spread met in training, 0 renders the intent's top-down prediction) from
    intents drawn from the model's intent bank with kernels `intent_bandwidth` x their
    k-NN width (`pcmusic.model.intents.sample_intents`; 0: the banked intents themselves); n_corpus
    held-out corpus clips of the same length; perceive_steps: the listener's inference
    steps; window_cents: half-width of a lattice point; bin_cents: histogram bins."""
    tunings: tuple[str, ...] = ("5-TET", "12-TET")
    n_generate: int = 32
    generate_seconds: float = 1.0
    refine_steps: int = 50
    temperature: float = 1.0
    intent_bandwidth: float = 1.0
    n_corpus: int = 32
    perceive_steps: int = 200
    window_cents: float = 15.0
    bin_cents: float = 10.0
    run: Config = dataclasses.field(default_factory=Config)

    def __post_init__(self):
        require(len(self.tunings) >= 2, "tunings", "need at least two tunings to compare")
        for name in ("n_generate", "generate_seconds", "n_corpus", "perceive_steps", "window_cents",
                     "bin_cents"):
            require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        for name in ("temperature", "intent_bandwidth"):
            require(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        require(self.run.data.kind == "synthetic", "run.data.kind", "the corpora are synthetic")


def lattice_stats(f0_hz: np.ndarray, tunings: dict, *, f_ref_hz: float, window_cents: float) -> dict:
    """Per tuning: mean |cents to its nearest pitch|, fraction within the window, enrichment."""
    out = {}
    for name, tuning in tunings.items():
        error = np.abs(data.scale_error_cents(f0_hz.astype(np.float64), tuning, f_ref_hz=f_ref_hz))
        chance = min(1.0, 2 * window_cents * tuning.n_steps / float(tuning.period_cents))
        within = float(np.mean(error <= window_cents)) if error.size else float("nan")
        out[name] = {"mean_abs_error_cents": float(np.mean(error)) if error.size else None,
                     "within_window": within, "chance": chance,
                     "enrichment": within / chance if error.size else None}
    return out


def voiced_f0(percepts) -> np.ndarray:
    """Every voiced frame's f0 in Hz (1-D) of a list of Percepts."""
    return np.concatenate([p.f0_hz[np.isfinite(p.f0_hz)] for p in percepts])


def control_f0(trace, *, floor_db: float = 40.0) -> np.ndarray:
    """The generator's own f0 where its voice is within floor_db of its loudest frame."""
    f0 = np.exp2(trace.controls["log2_f0"])                          # [n, V, F]
    power = np.sum(np.exp(2 * trace.controls["log_amp"]), axis=-1)   # [n, V, F]
    loud = power >= power.max(axis=(1, 2), keepdims=True) * 10 ** (-floor_db / 10)
    return f0[loud]


def run_tuning(exp: TuningCopy, tuning: str, out: Path, key, *, progress: bool) -> dict:
    cfg = dataclasses.replace(exp.run, data=dataclasses.replace(exp.run.data, tuning=tuning))
    workdir = out / tuning
    summary = train.train(cfg, workdir, progress=progress)
    model, _ = load_model(workdir)
    k_gen, k_corpus, k_intent = jax.random.split(key, 3)
    intent = intents.sample_intents(model.params, k_intent, exp.n_generate, bandwidth=exp.intent_bandwidth)
    sounds, trace = generation.generate(model, k_gen, intent=intent, seconds=exp.generate_seconds,
                                      refine_steps=exp.refine_steps, refine=cfg.refine,
                                      temperature=exp.temperature)
    c = cfg.model.controls
    spec = train.synthetic_spec(cfg, batch_size=exp.n_corpus,
                                n_frames=c.n_frames(round(exp.generate_seconds * c.sample_rate)))
    corpus = np.asarray(data.synthetic_batch(k_corpus, spec).audio)
    listener = perception.InferenceSpec(n_steps=exp.perceive_steps)
    # The same listener for the corpus and the generations, one clip at a time (one
    # compiled program for any number of clips).
    n_samples = corpus.shape[1]   # generations come padded to whole top-level frames: cut them
    heard = [perception.perceive(x[:n_samples], c.sample_rate, inference=listener)
             for x in [*corpus, *sounds]]
    tunings = {t: data.parse_tuning(t) for t in exp.tunings}
    sets = {"corpus_perceived": voiced_f0(heard[:exp.n_corpus]),
            "generated_perceived": voiced_f0(heard[exp.n_corpus:]),
            "generated_controls": control_f0(trace)}
    stats = {k: {"n_frames": int(v.size), "median_f0_hz": float(np.median(v)) if v.size else None,
                 "tunings": lattice_stats(v, tunings, f_ref_hz=cfg.data.f_ref_hz,
                                          window_cents=exp.window_cents)}
             for k, v in sets.items()}
    refine_energy = trace.energy.mean(axis=0)
    return {"tuning": tuning, "workdir": str(workdir), "train": summary, "sets": stats,
            "refine_energy_first_last": [float(refine_energy[0]), float(refine_energy[-1])],
            "_f0": sets, "_tuning": tunings[tuning]}


def follows(stats: dict, own: str) -> bool | None:
    """Whether a set's enrichment for its own tuning is >= FOLLOW_ENRICHMENT and beats
    every other tuning's (None when nothing was voiced)."""
    e = {t: s["enrichment"] for t, s in stats["tunings"].items()}
    if e[own] is None:
        return None
    return bool(e[own] >= FOLLOW_ENRICHMENT and all(e[own] > v for t, v in e.items() if t != own))


def plot(results: list[dict], path: Path, *, f_ref_hz: float, bin_cents: float) -> None:
    fig = Figure(figsize=(10, 3.2 * len(results)))
    axes = fig.subplots(len(results), 1, squeeze=False)
    edges = np.arange(0, 1200 + bin_cents, bin_cents) - bin_cents / 2
    for ax, r in zip(axes[:, 0], results):
        for label, key, style in [("corpus (perceived)", "corpus_perceived", "step"),
                                  ("generated (perceived)", "generated_perceived", "bar"),
                                  ("generated (controls)", "generated_controls", "step")]:
            cents = np.mod(1200 * np.log2(r["_f0"][key] / f_ref_hz) + bin_cents / 2, 1200) - bin_cents / 2
            ax.hist(cents, bins=edges, density=True, histtype=style, alpha=0.5 if style == "bar" else 1,
                    label=f"{label}, {cents.size} frames")
        for x in r["_tuning"].cents():
            ax.axvline(x, color="k", ls=":", lw=1)
        ax.set_title(f"trained on {r['tuning']} (dotted: its pitches)")
        ax.set_xlabel(f"pitch class (cents above {f_ref_hz:.2f} Hz, mod 1200)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.tight_layout()
    plots.save_figure(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--out", default="runs/tuning_copy")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few steps and sounds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        train.enable_compilation_cache()
        exp = load_config(args.config, schema=TuningCopy, overrides=(QUICK if args.quick else []) + args.set)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        began = time.time()
        key = jax.random.key(exp.run.train.seed + 1000)   # not the training run's keys
        results = [run_tuning(exp, t, out, jax.random.fold_in(key, i), progress=not args.quick)
                   for i, t in enumerate(exp.tunings)]
    except PcmusicError as err:
        print(f"tuning_copy: error: {err}", file=sys.stderr)
        return 2
    for r in results:
        r["corpus_follows_its_tuning"] = follows(r["sets"]["corpus_perceived"], r["tuning"])
        r["generations_follow_its_tuning"] = follows(r["sets"]["generated_perceived"], r["tuning"])
        r["controls_follow_its_tuning"] = follows(r["sets"]["generated_controls"], r["tuning"])
    plot(results, out / "tuning_copy.png", f_ref_hz=exp.run.data.f_ref_hz, bin_cents=exp.bin_cents)
    summary = {"config": config_to_dict(exp), "quick": args.quick, "seconds": round(time.time() - began, 1),
               "pitch_source": "perceived by the untrained default listener (perceive, model=None); "
                               "generated_controls: the generator's own f0 where audible",
               "tunings": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]}
    summary["generations_copy_the_training_tuning"] = all(
        r["generations_follow_its_tuning"] for r in results)
    write_atomic(out / "results.json", json.dumps(summary, indent=2) + "\n")
    for r in results:
        line = ", ".join(f"{t} x{s['enrichment']:.2f}" for t, s in
                         r["sets"]["generated_perceived"]["tunings"].items() if s["enrichment"] is not None)
        ref = ", ".join(f"{t} x{s['enrichment']:.2f}" for t, s in
                        r["sets"]["corpus_perceived"]["tunings"].items() if s["enrichment"] is not None)
        print(f"trained on {r['tuning']}: generations' lattice enrichment {line or 'n/a (nothing voiced)'}; "
              f"corpus {ref}")
    print(f"wrote {out / 'results.json'} and {out / 'tuning_copy.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
