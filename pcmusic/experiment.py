"""The command line every experiment script in experiments/ shares.

    python experiments/X.py [--config configs/X.toml] [--out runs/X] [--quick] [--force]
                            [--set key=value ...]

`main` parses that, refuses to overwrite an earlier non-empty results.json without
--force (before any work is done), loads the TOML into the experiment's schema with
the --quick overrides first and the user's --set after them, runs the experiment,
prints its summary and returns the results dict. `entry` turns a PcmusicError into
one line on stderr and exit status 1, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from pcmusic.configio import load_config
from pcmusic.errors import PcmusicError


def main(argv: list[str] | None, *, description: str, schema: type, default_config: Path,
         default_out: str, quick: list[str], run: Callable[[object, Path], dict],
         summary: Callable[[dict], str], set_example: str) -> dict:
    """Parse argv, load the config, `run(cfg, out_dir)`, print `summary(results)`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=str(default_config))
    parser.add_argument("--out", default=default_out, help="output folder")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {' '.join(quick)}")
    parser.add_argument("--force", action="store_true", help="overwrite an earlier results.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help=f"config override, e.g. --set {set_example}")
    args = parser.parse_args(argv)
    out_dir = Path(args.out)
    previous = out_dir / "results.json"
    if previous.is_file() and previous.stat().st_size and not args.force:
        raise PcmusicError(f"{previous} exists: pass --force to overwrite it or choose another --out")
    cfg = load_config(args.config, schema=schema,
                      overrides=(quick if args.quick else []) + args.overrides)
    results = run(cfg, out_dir)
    print(summary(results))
    print(f"{results['seconds']:.1f} s; wrote {previous}")
    return results


def entry(script_main: Callable[[], object]) -> None:
    """Run a script's main(); a PcmusicError becomes `error: ...` and exit status 1."""
    try:
        script_main()
    except PcmusicError as err:
        sys.exit(f"error: {err}")
