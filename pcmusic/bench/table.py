"""Plain-text tables for benchmark output, and a timer that waits for the device."""
from __future__ import annotations

import platform
import time
from typing import Any, Callable, Sequence

import jax


def machine_description() -> str:
    """One line naming the host CPU, the JAX backend and its devices."""
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    return (f"{platform.processor() or platform.machine()}, {len(devices)} x {'/'.join(kinds)} "
            f"({jax.default_backend()}), jax {jax.__version__}, python {platform.python_version()}")


def time_call(fn: Callable[[], Any], *, n_repeats: int = 5, n_warmup: int = 1) -> float:
    """Median wall time in seconds of `fn()`, blocking on its outputs every call.

    Compilation is excluded by the warm-up calls; `block_until_ready` makes the
    figure count the device work, not just the dispatch.
    """
    for _ in range(n_warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(n_repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def format_table(title: str, rows: Sequence[dict[str, Any]]) -> str:
    """Render `rows` (dicts sharing keys) as an aligned text table under `title`."""
    if not rows:
        return f"{title}\n(no rows)\n"
    columns = list(rows[0].keys())
    for row in rows[1:]:
        columns += [k for k in row if k not in columns]

    def cell(value: Any) -> str:
        if isinstance(value, float):
            if value != value:
                return "nan"
            if abs(value) >= 1e5 or (abs(value) < 1e-3 and value != 0.0):
                return f"{value:.3e}"
            return f"{value:.3f}"
        return str(value)

    cells = [[cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [title, "  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines) + "\n"
