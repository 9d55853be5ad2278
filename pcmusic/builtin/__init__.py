"""Models shipped inside the package, named `builtin:NAME` wherever a checkpoint is.

Each NAME is a folder beside this file (package data, so a wheel carries it):

    NAME/checkpoints/<step>/   one training checkpoint (`pcmusic.training.checkpoint`)
    NAME/notes.npz             a note prior (`pcmusic.model.note_prior`) for the same music

`pcmusic.load_model("builtin:tiny")` restores the first; `pcmusic generate --ckpt
builtin:tiny` restores both (phrases of the second in the first's timbre), `--notes
builtin:tiny` loads the second alone. How each was made,
on what, and what it measures: docs/model_card.md (`python -m pcmusic.builtin.make`
remakes one from a checkout).
"""
from __future__ import annotations

from pathlib import Path

from pcmusic.errors import PcmusicError

PREFIX = "builtin:"
NOTES_FILE = "notes.npz"   # NAME/NOTES_FILE: the note prior beside the checkpoints
ROOT = Path(__file__).resolve().parent


def names() -> list[str]:
    """The built-in models' names, sorted (each a folder holding a checkpoint)."""
    return sorted(p.name for p in ROOT.iterdir() if (p / "checkpoints").is_dir())


def is_builtin(name_or_path) -> bool:
    return isinstance(name_or_path, str) and name_or_path.startswith(PREFIX)


def _folder(name_or_path: str) -> Path:
    name = name_or_path[len(PREFIX):]
    available = names()
    if name not in available:
        raise PcmusicError(f"no built-in model {name_or_path!r}; available: "
                           f"{', '.join(PREFIX + n for n in available) or '(none installed)'}")
    return ROOT / name


def checkpoint_path(name_or_path: str | Path) -> str | Path:
    """The checkpoint directory of `builtin:NAME`; any other value is returned unchanged
    (a run's workdir or checkpoints/ directory)."""
    if not is_builtin(name_or_path):
        return name_or_path
    return _folder(name_or_path) / "checkpoints"


def note_prior_path(name_or_path: str | Path) -> str | Path:
    """The note prior (.npz) of `builtin:NAME`; any other value is returned unchanged."""
    if not is_builtin(name_or_path):
        return name_or_path
    path = _folder(name_or_path) / NOTES_FILE
    if not path.is_file():
        raise PcmusicError(f"built-in model {name_or_path!r} ships no note prior; give a prior from "
                           "`pcmusic notes fit` instead")
    return path
