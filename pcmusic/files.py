"""Temporary files beside their destination, with the permissions a plain open() gives.

`tempfile.mkstemp` creates files readable by the owner only (0600); outputs renamed
into place from it (WAVs, PNGs, JSON, .npz) would keep that mode. Here the mode is
0666 masked by the process umask, as for any file the user writes.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    """The process umask, read at each call (a program may change it). Linux reports it
    in /proc without changing it; elsewhere it is read by setting and restoring it,
    which for that instant would give a file another thread creates (e.g. an orbax
    save in the background) mode 0666."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def mkstemp_beside(directory: str | Path, *, prefix: str, suffix: str) -> tuple[int, str]:
    """(fd, path) of a new temporary file in `directory` with mode 0666 & ~umask."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def write_npz(path: str | Path, arrays: dict) -> Path:
    """Write `arrays` (name -> array) to a compressed .npz at `path` atomically: a
    temporary file beside it, renamed into place when complete."""
    import numpy as np

    path = Path(path)
    fd, tmp = mkstemp_beside(path.parent, prefix=f".{path.stem}-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
