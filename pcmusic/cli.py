"""The `pcmusic` command line: demo, train, perceive, generate, probe, bench.

Each sub-command imports its library module lazily, so `pcmusic --help` is fast
and a missing optional dependency only affects the command that needs it.
Errors the user can fix (`PcmusicError`) are printed as one message, exit 2.
"""
from __future__ import annotations

import argparse
import sys

from pcmusic.errors import PcmusicError


def _cmd_bench(args: argparse.Namespace) -> None:
    from pcmusic.bench import run_all

    run_all(quick=args.quick, sections=args.only)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pcmusic",
        description="Predictive-coding audio perception and generation through an oscillator bank.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("bench", help="print the benchmark tables")
    p.add_argument("--quick", action="store_true", help="small sizes, a few repeats")
    p.add_argument("--only", action="append", default=None,
                   help="run only this section (repeatable): synth, pc, perceive")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
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
