"""Checks of a user's arguments, made before any work starts.

Each check returns the value in its canonical type or raises `PcmusicError` with one
line that names the argument, the value and the fix. The public entry points
(`pcmusic.perceive`, `generate`, `probe`, the command line) call them first, so a bad
request fails in milliseconds instead of after minutes of compiling, and never as a
traceback.

`check_memory` compares an estimate of the bytes a request needs with the memory
available (Linux: MemAvailable of /proc/meminfo), so that a request the machine cannot
hold is refused up front. PCMUSIC_MEMORY_LIMIT_GB overrides the limit (a number of GiB;
0 turns the check off).
"""
from __future__ import annotations

import math
import numbers
import os
import tempfile
from pathlib import Path

import numpy as np

from pcmusic.errors import PcmusicError

MEMORY_ENV = "PCMUSIC_MEMORY_LIMIT_GB"


def integer(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as an int within [minimum, maximum]; bools and fractional numbers are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, float, np.floating)):
        raise PcmusicError(f"{name} must be a whole number; got {value!r}")
    if isinstance(value, (float, np.floating)) and not (math.isfinite(value) and float(value).is_integer()):
        raise PcmusicError(f"{name} must be a whole number; got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise PcmusicError(f"{name} = {value} is below its minimum {minimum}")
    if maximum is not None and value > maximum:
        raise PcmusicError(f"{name} = {value} is above its maximum {maximum}")
    return value


def real(value, name: str, *, minimum: float | None = None, maximum: float | None = None,
         strict_minimum: bool = False) -> float:
    """`value` as a finite float within [minimum, maximum] (minimum excluded with strict_minimum)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise PcmusicError(f"{name} must be a number; got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise PcmusicError(f"{name} must be a finite number; got {value}")
    if minimum is not None and (value <= minimum if strict_minimum else value < minimum):
        raise PcmusicError(f"{name} = {value:g} must be {'>' if strict_minimum else '>='} {minimum:g}")
    if maximum is not None and value > maximum:
        raise PcmusicError(f"{name} = {value:g} must be <= {maximum:g}")
    return value


def prng_key(key, name: str = "key"):
    """`key` if it is a JAX PRNG key (typed, `jax.random.key(seed)`, or legacy uint32[2])."""
    import jax
    import jax.numpy as jnp

    if isinstance(key, jax.Array):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
            return key
        if key.dtype == jnp.uint32 and key.shape == (2,):
            return key
    raise PcmusicError(f"{name} must be one PRNG key, e.g. jax.random.key(0); got {_describe(key)}")


def _describe(x) -> str:
    shape = getattr(x, "shape", None)
    if shape is not None:
        return f"{type(x).__name__} of shape {tuple(shape)}, dtype {getattr(x, 'dtype', '?')}"
    return f"{type(x).__name__} {str(x).splitlines()[0][:40] if str(x) else ''}"


def available_bytes() -> int | None:
    """Bytes of memory available to a new allocation (None where unknown); overridden by
    PCMUSIC_MEMORY_LIMIT_GB (0: unknown, i.e. no check)."""
    override = os.environ.get(MEMORY_ENV)
    if override is not None:
        try:
            gib = float(override)
        except ValueError:
            raise PcmusicError(f"{MEMORY_ENV}={override!r} is not a number of GiB (0 turns the check off)") from None
        return None if gib <= 0 else int(gib * 2 ** 30)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(n_bytes: float, what: str, fix: str) -> None:
    """Refuse a request whose estimated need, n_bytes, exceeds the memory available.

    what: the request ("generate n=4 x 1e6 s"); fix: what to change ("fewer or shorter sounds")."""
    limit = available_bytes()
    if limit is not None and n_bytes > limit:
        raise PcmusicError(f"{what} needs about {n_bytes / 2 ** 30:.3g} GiB but {limit / 2 ** 30:.3g} GiB "
                           f"are available: ask for {fix} (or set {MEMORY_ENV} to override)")


def writable_file(path, name: str, *, force: bool, suffixes: tuple[str, ...] | None = None) -> Path:
    """`path` as an output file, checked before any work: right suffix, its directory
    exists and is writable, not a directory, and new unless `force`."""
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise PcmusicError(f"{name} {path} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise PcmusicError(f"{name} {path} is a directory; give a file name inside it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise PcmusicError(f"{name} {path}: directory {parent} does not exist; create it first")
    if not _can_create_in(parent):
        raise PcmusicError(f"{name} {path}: no file can be created in {parent}; choose another place")
    if path.exists() and not force:
        raise PcmusicError(f"{name} {path} exists and was left untouched; choose another name or pass --force")
    return path


def writable_dir(path, name: str) -> Path:
    """`path` as an output directory, checked before any work: not a file, and it or its
    nearest existing parent is a writable directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PcmusicError(f"{name} {path} is a file; give a directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not _can_create_in(existing):
        raise PcmusicError(f"{name} {path}: nothing can be created in {existing}; choose another place")
    return path


def _can_create_in(directory: Path) -> bool:
    """Whether a file can be created in `directory` (tried: permissions alone do not tell,
    e.g. for root or on special file systems)."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False
