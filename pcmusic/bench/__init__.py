"""Benchmarks behind `pcmusic bench`: each module's `run(quick=...)` returns table rows."""
from __future__ import annotations

import importlib

from pcmusic.bench.table import format_table, machine_description

# section name -> module whose `run(*, quick: bool)` yields (title, rows) tables as they finish
SECTIONS = {"synth": "pcmusic.bench.synth", "pc": "pcmusic.bench.pc",
            "perceive": "pcmusic.bench.perceive", "transcribe": "pcmusic.bench.transcribe",
            "train": "pcmusic.bench.train"}


def run_all(*, quick: bool, sections: list[str] | None = None) -> None:
    """Run the named benchmark sections (all by default) and print their tables."""
    from pcmusic.errors import PcmusicError

    names = sections or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise PcmusicError(f"unknown bench section(s) {unknown}; choose from {list(SECTIONS)}")
    print(f"machine: {machine_description()}\n", flush=True)
    for name in names:
        try:
            module = importlib.import_module(SECTIONS[name])
        except ModuleNotFoundError as err:
            if err.name == SECTIONS[name]:
                print(f"[{name}] not available yet\n")
                continue
            raise
        for title, rows in module.run(quick=quick):
            print(format_table(title, rows), flush=True)
