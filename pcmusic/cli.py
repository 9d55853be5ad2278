"""The `pcmusic` command line: demo, train, perceive, generate, probe, bench.

Each sub-command imports its library module lazily, so `pcmusic --help` is fast
and a missing optional dependency only affects the command that needs it.
Errors the user can fix (`PcmusicError`) are printed as one message, exit 2.
Outputs are written whole or not at all (temporary file, then rename) and existing
outputs are never overwritten without --force. Compiled programs are cached on disk
(`pcmusic.training.loop.enable_compilation_cache`), so a second run starts in seconds.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pcmusic.errors import PcmusicError


def _cmd_bench(args: argparse.Namespace) -> None:
    from pcmusic.bench import run_all

    run_all(quick=args.quick, sections=args.only)


def _cmd_demo(args: argparse.Namespace) -> None:
    from pcmusic import demo

    demo.run(args.workdir, force=args.force, n_steps=args.steps)


def _cmd_train(args: argparse.Namespace) -> None:
    from pcmusic import training

    cfg = training.load_config(args.config, overrides=args.set)
    summary = training.train(cfg, args.workdir, progress=not args.quiet)
    print(json.dumps(summary, indent=2))


def _new_output(path: Path, force: bool) -> Path:
    """`path` as an output: its directory must exist, and it must not, unless --force."""
    if not path.parent.is_dir():
        raise PcmusicError(f"directory {path.parent} does not exist; create it first")
    if path.exists() and not force:
        raise PcmusicError(f"{path} exists and was left untouched; choose another name or pass --force")
    return path


def _model_and_inference(ckpt, n_steps):
    """(model or None, InferenceSpec): the run's own inference unless --steps is given."""
    import dataclasses

    from pcmusic import perception
    from pcmusic.training import load_model

    model, inference = None, perception.InferenceSpec()
    if ckpt is not None:
        model, cfg = load_model(ckpt)
        inference = cfg.inference
    if n_steps is not None:
        if n_steps < 1:
            raise PcmusicError(f"--steps {n_steps}: need at least 1 inference step")
        inference = dataclasses.replace(inference, n_steps=n_steps)
    return model, inference


def _load_audio(path: str):
    from pcmusic.dsp import audio

    return audio.load(path)


def _cmd_perceive(args: argparse.Namespace) -> None:
    from pcmusic import outputs, perception

    out = None if args.json is None else _new_output(Path(args.json), args.force)
    audio, rate = _load_audio(args.audio)
    model, inference = _model_and_inference(args.ckpt, args.steps)
    if model is not None and args.voices not in (None, model.spec.controls.n_voices):
        raise PcmusicError(f"--voices {args.voices}: the checkpoint's model hears "
                           f"{model.spec.controls.n_voices} voice(s); drop --voices or use another model")
    percept = perception.perceive(audio, rate, model=model, n_voices=args.voices or 1,
                                inference=inference)
    text = json.dumps({"audio": str(args.audio), "checkpoint": args.ckpt,
                       **outputs.percept_json(percept, audio)}) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        outputs.write_atomic(out, text)
        print(f"wrote {out}")


def _cmd_generate(args: argparse.Namespace) -> None:
    import jax

    from pcmusic import generation, outputs
    from pcmusic.training import load_model

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise PcmusicError(f"--out {out} is a file; give a directory")
    clash = [name for name in outputs.sound_names(args.n) + ["summary.json"] if (out / name).exists()]
    if clash and not args.force:
        raise PcmusicError(f"{out} already holds {', '.join(clash[:4])}{' ...' if len(clash) > 4 else ''}; "
                           "nothing was written: choose another --out or pass --force")
    model, cfg = load_model(args.ckpt)
    sounds, trace = generation.generate(model, jax.random.key(args.seed), n=args.n, seconds=args.seconds,
                                      refine_steps=args.refine, refine=cfg.refine,
                                      listen=generation.Listening(steps=args.listen, inference=cfg.inference))
    out.mkdir(parents=True, exist_ok=True)
    rate = model.spec.controls.sample_rate
    samples = outputs.write_sounds(out, sounds, trace, rate, overwrite=args.force,
                                   title=f"seed {args.seed}, sample")
    summary = {"checkpoint": str(args.ckpt), "seed": args.seed, "n": args.n, "seconds": args.seconds,
               "refine_steps": args.refine, "listen_steps": args.listen, "sample_rate": rate,
               "samples": samples}
    outputs.write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.n} sample(s) to {out}")


def _cmd_probe(args: argparse.Namespace) -> None:
    from pcmusic.evaluation import probing

    out = _new_output(Path(args.out), args.force)
    audio, rate = _load_audio(args.audio)
    model, inference = _model_and_inference(args.ckpt, args.steps)
    result = probing.probe(audio, rate, model=model, stride=args.stride, inference=inference)
    probing.save_npz(result, out, overwrite=args.force)
    print(f"wrote {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pcmusic",
        description="Predictive-coding audio perception and generation through an oscillator bank.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="train a small model, perceive a note, generate (a few minutes)")
    p.add_argument("--workdir", default="runs/demo", help="where everything goes (default runs/demo)")
    p.add_argument("--force", action="store_true",
                   help="reuse a previous demo's workdir: resume its training, overwrite its outputs")
    p.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)  # shorter runs for tests
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train or resume a run from a TOML config")
    p.add_argument("--config", required=True,
                   help="a TOML file, or a shipped config by name: tiny, default, ...")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.n_steps=200 (repeatable)")
    p.add_argument("--workdir", required=True, help="run directory; resumes if it holds a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("perceive", help="f0 tracks, partials and energy of a sound, as JSON")
    p.add_argument("audio", help="an audio file (WAV, FLAC, OGG)")
    p.add_argument("--ckpt", default=None, help="a trained run (default: the untrained prior)")
    p.add_argument("--voices", type=int, default=None, help="simultaneous voices (default 1)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the JSON here instead of printing it")
    p.add_argument("--force", action="store_true", help="overwrite --json OUT if it exists")
    p.add_argument("--steps", type=int, default=None,
                   help="inference steps (default: the run's own; 200 without --ckpt)")
    p.set_defaults(func=_cmd_perceive)

    p = sub.add_parser("generate", help="generate sounds from a trained run, refined by listening")
    p.add_argument("--ckpt", required=True, help="a trained run (workdir or its checkpoints/)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--n", type=int, default=4, help="number of sounds (default 4)")
    p.add_argument("--seconds", type=float, default=1.0, help="length of each (default 1.0)")
    p.add_argument("--refine", type=int, default=50, help="refinement steps (default 50)")
    p.add_argument("--listen", type=int, default=4,
                   help="listening steps after refinement: perceive each sound as the run perceives "
                        "and correct it (default 4; 0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite outputs already in --out")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("probe", help="record latents, errors and energies of perception (.npz)")
    p.add_argument("audio", help="an audio file")
    p.add_argument("--ckpt", required=True, help="a trained run (workdir or its checkpoints/)")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--stride", type=int, default=10, help="record every k inference steps")
    p.add_argument("--steps", type=int, default=None,
                   help="inference steps (default: the run's own; 200 without --ckpt)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=_cmd_probe)

    p = sub.add_parser("bench", help="print the benchmark tables")
    p.add_argument("--quick", action="store_true", help="small sizes, a few repeats")
    p.add_argument("--only", action="append", default=None,
                   help="run only this section (repeatable): synth, pc, perceive, train")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command != "bench":
            from pcmusic.training.loop import enable_compilation_cache
            enable_compilation_cache()
        args.func(args)
    except PcmusicError as err:
        print(f"pcmusic {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pcmusic {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
