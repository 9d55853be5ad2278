"""A run's config: model, data, training, inference and refinement sections as frozen
dataclasses (the TOML files in configs/ fill them; see `pcmusic.configio` for loading,
`--set a.b=value` overrides and the error messages).

Only experiments and the command line read configs; library functions take explicit
arguments.
"""
from __future__ import annotations

import dataclasses
import importlib.resources
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pcmusic import configio
from pcmusic.configio import (FieldError, apply_overrides, config_diff, config_from_dict,  # noqa: F401
                              config_to_dict, config_to_toml, flatten_config, require)
from pcmusic.errors import ConfigError
from pcmusic.generation import RefineSpec
from pcmusic.model import ModelSpec
from pcmusic.perception import InferenceSpec


def _positive(section: Any, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        require(value > 0, name, f"must be > 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What the model learns from.

    kind: "synthetic" (tones rendered on device from the run's key, `pcmusic.data`)
      or "folder" (the user's WAV/FLAC/OGG files under `folder`, `pcmusic.data.AudioFolder`).
    seconds: length of every training clip (a synthetic clip or a folder segment),
      rounded up to whole top-level frames of the model.
    Synthetic only: synthetic (notes, melodies, chords or mixed), tuning (a name such as
      "12-TET" or "5-TET", or a list of ratios like [1, "9/8", 1.25]), f_ref_hz (the
      tuning's reference pitch), f0_min_hz..f0_max_hz (the pitch range), voices (most
      simultaneous voices of chords), notes_per_melody, n_harmonics (partials per voice).
    The sample rate is the model's (`model.controls.sample_rate`).
    """
    kind: Literal["synthetic", "folder"] = "synthetic"
    synthetic: Literal["notes", "melodies", "chords", "mixed"] = "notes"
    tuning: str | tuple[float | str, ...] = "12-TET"
    f_ref_hz: float = 261.6256
    f0_min_hz: float = 110.0
    f0_max_hz: float = 880.0
    voices: int = 1
    notes_per_melody: int = 8
    n_harmonics: int = 24
    seconds: float = 1.0
    folder: str | None = None

    def __post_init__(self):
        from pcmusic.data import parse_tuning  # validates names and ratio lists

        _positive(self, "seconds", "f_ref_hz", "voices", "notes_per_melody",
                  "n_harmonics")
        require(0 < self.f0_min_hz < self.f0_max_hz, "f0_max_hz",
                f"need 0 < f0_min_hz < f0_max_hz, got {self.f0_min_hz}, {self.f0_max_hz}")
        require(self.kind != "folder" or self.folder is not None, "folder",
                'kind = "folder" needs a folder: set data.folder = "path/to/audio"')
        require(self.synthetic not in ("chords", "mixed") or self.voices >= 2, "voices",
                f"{self.synthetic} need voices >= 2, got {self.voices}")
        try:
            parse_tuning(list(self.tuning) if isinstance(self.tuning, tuple) else self.tuning)
        except ConfigError as err:
            raise FieldError("tuning", str(err)) from None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training run (`pcmusic.training.loop`).

    learning_rate / encoder_learning_rate: Adam step sizes of the hierarchy's params and
    of the amortised encoder. Intervals are in steps (0 disables): metrics are logged
    every log_every steps, the held-out energy on n_eval clips every eval_every steps,
    n_samples generated sounds of sample_seconds with sample_refine_steps refinement steps
    every sample_every steps, a checkpoint every ckpt_every steps (and at the end),
    keeping the keep_checkpoints latest. topdown_weight: weight of the top-down
    consistency term in the params' objective (`pcmusic.training.step.topdown_energy`;
    0: off). intent_shoot_steps: with n > 0 the intent of each clip -- the top kept in
    the intent bank and scored by the top-down term -- is shot from the settled top for
    n steps (`pcmusic.perception.intent_of`, at inference.lr_shoot): the top whose
    prediction through every map best reproduces the settled controls, which is what
    generation renders; 0: the settled top itself. bank_refresh_clips: at the end of a
    run the intent bank is replaced by the intents of this many held-out clips under the
    final params (`pcmusic.training.loop.rebank`; 0: keep the training ring buffer).
    note_prior_clips: at the end of a run the final model perceives this many held-out
    clips as notes (its own perception, notes settled under its hierarchy) and the run's
    note prior -- tuning, intervals, rhythm, phrase intents, with the period
    note_period_oct (octaves) -- is fitted to them and written beside the checkpoints
    (`pcmusic.training.loop.fit_note_prior`); `pcmusic generate --ckpt` then makes
    phrases of notes. 0: no note prior.
    """
    seed: int = 0
    n_steps: int = 1000
    batch_size: int = 8
    learning_rate: float = 1e-3
    encoder_learning_rate: float = 1e-3
    log_every: int = 10
    eval_every: int = 100
    n_eval: int = 16
    sample_every: int = 500
    n_samples: int = 2
    sample_seconds: float = 1.0
    sample_refine_steps: int = 20
    ckpt_every: int = 100
    keep_checkpoints: int = 3
    topdown_weight: float = 0.0
    intent_shoot_steps: int = 0
    bank_refresh_clips: int = 256
    note_prior_clips: int = 0
    note_period_oct: float = 1.0

    def __post_init__(self):
        _positive(self, "n_steps", "batch_size", "learning_rate", "encoder_learning_rate",
                  "log_every", "n_eval", "n_samples", "sample_seconds", "keep_checkpoints", "note_period_oct")
        for name in ("eval_every", "sample_every", "ckpt_every", "sample_refine_steps", "topdown_weight",
                     "intent_shoot_steps", "bank_refresh_clips", "note_prior_clips"):
            require(getattr(self, name) >= 0, name, f"must be >= 0 (0: never), got {getattr(self, name)}")


# Keys that may change when a run resumes: they schedule the run, they do not change
# its trajectory (the losses of a resumed run equal those of an uninterrupted one).
SCHEDULE_KEYS = tuple(f"train.{k}" for k in ("n_steps", "log_every", "eval_every", "sample_every",
                                             "n_samples", "sample_seconds", "sample_refine_steps",
                                             "ckpt_every", "keep_checkpoints", "bank_refresh_clips",
                                             "note_prior_clips", "note_period_oct"))


@dataclasses.dataclass(frozen=True)
class Config:
    """A run: the model (`pcmusic.ModelSpec`, sections [model.controls],
    [model.sensory], [model.prior]), its data, the training schedule, perception's
    inference (`pcmusic.InferenceSpec`, also used in training) and generation's
    refinement (`pcmusic.RefineSpec`)."""
    model: ModelSpec = dataclasses.field(default_factory=ModelSpec)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    inference: InferenceSpec = dataclasses.field(default_factory=InferenceSpec)
    refine: RefineSpec = dataclasses.field(default_factory=RefineSpec)


def default_config() -> Config:
    return Config()


def shipped_configs() -> dict[str, Path]:
    """name -> path of the configs that ship with pcmusic ("default", "tiny", one per
    experiment): the package's `pcmusic.configs` when installed from a wheel, the
    repository's configs/ in a checkout or an editable install."""
    try:
        folder = Path(str(importlib.resources.files("pcmusic.configs")))
    except ModuleNotFoundError:
        folder = Path(__file__).resolve().parents[2] / "configs"
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def config_path(name_or_path: str | Path) -> Path:
    """The TOML file a user names: an existing path, or the name of a shipped config
    ("tiny", "default", ...; see `shipped_configs`)."""
    path = Path(name_or_path)
    if path.is_file() or path.suffix == ".toml" or len(path.parts) > 1:
        return path
    shipped = shipped_configs()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    raise ConfigError(f"config {str(name_or_path)!r} is neither a file nor a shipped config; "
                      f"give a path to a .toml file or one of: {', '.join(shipped) or '(none found)'}")


def load_config(path: str | Path, *, schema: type = Config, overrides: Iterable[str] = ()) -> Any:
    """Read a TOML file (or a shipped config by name, `config_path`) into `schema`
    (default: `Config`), apply `overrides`, validate everything; keys the file leaves out
    take the schema's defaults."""
    return configio.load_config(config_path(path), schema=schema, overrides=overrides)
