"""How accurately does a trained model's top predict pitch? (`pcmusic.evaluation.diagnose`)

Settles held-out clips of the checkpoint's own synthetic corpus as training does and
prints the |f0 error| (cents, voiced frames) of the settled controls, of g2(settled z2),
of the top-down prediction from the settled top and of the one from the clip's intent
(the top shot from it, `pcmusic.perception.intent_of`, with the run's train.intent_shoot_steps,
200 where 0): generation renders the last.

    python experiments/topdown_f0.py --ckpt runs/demo/train [--n 64] [--seed 100] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys

import jax
import numpy as np

from pcmusic import data
from pcmusic.evaluation import diagnose
from pcmusic.training import load_model, loop
from pcmusic.errors import PcmusicError
from pcmusic.outputs import write_atomic


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="a training workdir or its checkpoints/")
    parser.add_argument("--n", type=int, default=64, help="held-out clips")
    parser.add_argument("--seed", type=int, default=100, help="corpus key (training uses others)")
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args(argv)
    try:
        model, config = load_model(args.ckpt)
        if config.data.kind != "synthetic":
            raise PcmusicError(f"{args.ckpt} was trained on {config.data.kind} data; this diagnostic "
                               "needs the f0 labels of a synthetic corpus")
        spec = loop.synthetic_spec(config, batch_size=args.n, n_frames=loop.clip_frames(config))
        batch = data.synthetic_batch(jax.random.key(args.seed), spec)
        errors = diagnose.f0_errors_cents(model, batch.audio, np.asarray(batch.f0_hz)[:, :1],
                                          inference=config.inference,
                                          intent_shoot_steps=config.train.intent_shoot_steps or 200)
    except PcmusicError as err:
        print(f"topdown_f0: error: {err}", file=sys.stderr)
        return 2
    result = diagnose.summary(errors)
    print(f"{'f0 predicted by':<18} {'median':>8} {'p90':>8} {'<=15 c':>7}   ({args.n} clips, {args.ckpt})")
    for name, s in result.items():
        print(f"{name:<18} {s['median_cents']:8.1f} {s['p90_cents']:8.1f} {s['within_15_cents']:7.2f}")
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
