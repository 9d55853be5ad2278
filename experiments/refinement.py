"""Does refinement bring generated sounds closer to their intents? (`pcmusic.evaluation.fidelity`)

Generates --n sounds from intents sampled from the checkpoint's bank, refines them, and
reports the mean energy (first, last, ratio; never rising) and how often the intent the
model perceives in the refined output lies nearer the clamped intent than the one it
perceives in the unrefined output. --listen N (default 4) then listens N steps: the
model perceives each sound as it perceives any (the run's [inference]) and corrects
its action until the sound is heard as its beliefs predict (`pcmusic.generation.listening`);
--listen 0 reports refinement alone. --rebank N first re-banks the intents of N held-out
clips under the checkpoint's params (for checkpoints saved mid-run, whose bank holds
tops settled under earlier params).

    python experiments/refinement.py --ckpt runs/demo/train [--n 32] [--seconds 0.5]
        [--refine 40] [--listen 4] [--seed 0] [--rebank 64] [--refine-spec run|default] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys

import jax
import jax.numpy as jnp

import dataclasses

from pcmusic import generation
from pcmusic.evaluation import fidelity
from pcmusic.training import load_model, loop
from pcmusic.errors import PcmusicError
from pcmusic.outputs import write_atomic


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="a training workdir or its checkpoints/")
    parser.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument("--n", type=int, default=32, help="sounds")
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--refine", type=int, default=40, help="refinement steps")
    parser.add_argument("--listen", type=int, default=4, help="listening steps after refinement (0: none)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebank", type=int, default=0, help="re-bank this many held-out clips first")
    parser.add_argument("--refine-spec", choices=("run", "default"), default="run",
                        help="the run's [refine] settings or this pcmusic's defaults (for runs "
                             "saved before the defaults changed)")
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args(argv)
    try:
        model, config = load_model(args.ckpt, step=args.step)
        shoot = config.train.intent_shoot_steps
        if args.rebank > 0:
            batches = [jnp.asarray(b) for b in loop.TrainingData(config).eval_batches(args.rebank, salt=1)]
            model = dataclasses.replace(model, params=loop.rebank(
                model.params, batches, spec=model.spec, inference=config.inference,
                intent_shoot_steps=shoot, n_clips=args.rebank))
        result = fidelity.refinement_fidelity(
            model, jax.random.key(args.seed), n=args.n, seconds=args.seconds,
            refine_steps=args.refine, temperature=args.temperature, inference=config.inference,
            intent_shoot_steps=shoot,
            refine=config.refine if args.refine_spec == "run" else generation.RefineSpec(),
            listen=generation.Listening(steps=args.listen, inference=config.inference))
    except PcmusicError as err:
        print(f"refinement: error: {err}", file=sys.stderr)
        return 2
    s = result.summary()
    print(f"{args.ckpt}: {s['n']} sounds of {args.seconds} s, {args.refine} refinement steps, "
          f"perceived intents shot {shoot} steps")
    print(f"{'mean energy first -> last':<34} {s['energy_first_last'][0]:.4g} -> "
          f"{s['energy_first_last'][1]:.4g}  (ratio {s['energy_ratio']:.2f}, "
          f"never rising: {s['energy_nonincreasing']})")
    if s["listen_energy_first_last"] is not None:
        first, last = s["listen_energy_first_last"]
        print(f"{'heard energy, listening first -> last':<34} {first:.4g} -> {last:.4g}  "
              f"({args.listen} steps)")
    print(f"{'|perceived - intent| unrefined':<34} {s['mean_distance_unrefined']:.3f}")
    print(f"{'|perceived - intent| refined':<34} {s['mean_distance_refined']:.3f}  "
          f"(intents' spread {s['intent_spread']:.3f})")
    print(f"{'refined perceived closer':<34} {round(s['fraction_closer'] * s['n'])}/{s['n']} "
          f"= {100 * s['fraction_closer']:.0f} %")
    if args.json:
        write_atomic(args.json, json.dumps(dict(s, ckpt=str(args.ckpt), seconds=args.seconds,
                                                refine_steps=args.refine, seed=args.seed,
                                                listen_steps=args.listen,
                                                rebank=args.rebank, intent_shoot_steps=shoot),
                                           indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
