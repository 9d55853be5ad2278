"""Checkpoints that describe themselves: an orbax `CheckpointManager` wrapper.

Layout: `DIR/<step>/state` (the pytree, orbax StandardSave: params, optimiser
state, PRNG keys, ...) and `DIR/<step>/meta` (JSON: format version, pcmusic
version, step, config, metrics, data position, and per-leaf shape, dtype and a
BLAKE2 checksum). Orbax writes each step into `<step>.orbax-checkpoint-tmp-*`
and renames it when complete, so a process killed at any moment leaves either
the whole step or a tmp directory that listing ignores. The checksums catch
what orbax does not: a flipped byte in an array file otherwise restores as
silently wrong numbers.

Restoring against an abstract target (`jax.eval_shape`, optionally with
shardings) places the arrays on the current devices, whatever device count
wrote them; without a target everything lands on the first local device.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np

from pcmusic.errors import CheckpointError, ConfigError
from pcmusic.model.maps import UserMaps
from pcmusic.training import step as step_lib
from pcmusic.training.config import Config, config_diff, config_from_dict, config_to_dict, flatten_config

FORMAT_VERSION = 1
_TMP_MARK = ".orbax-checkpoint-tmp"


def _ocp():
    import orbax.checkpoint as ocp  # heavy: imported only when checkpoints are used
    return ocp


# ---------------------------------------------------------------- leaves

def path_str(path) -> str:
    """'0/mu/w' for both a namedtuple and the dict orbax restores it as."""
    return jax.tree_util.keystr(path, simple=True, separator="/")


def is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def digest(x) -> str | None:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return None  # multi-host shards: no single process sees the whole array
    a = np.ascontiguousarray(np.asarray(x))
    h = hashlib.blake2b(f"{a.dtype.str}{a.shape}".encode(), digest_size=16)
    h.update(a.tobytes())
    return h.hexdigest()


def leaf_spec(x) -> dict[str, Any]:
    """Shape and dtype as stored (typed keys as their uint32 key data)."""
    if is_key(x):
        data = jax.eval_shape(jax.random.key_data, x)
        return {"shape": list(data.shape), "dtype": str(data.dtype),
                "prng_impl": str(jax.random.key_impl(x)) if isinstance(x, jax.Array) else None}
    if not hasattr(x, "dtype"):
        return {"shape": [], "dtype": str(np.asarray(x).dtype), "python_scalar": True}
    return {"shape": list(x.shape), "dtype": str(np.dtype(x.dtype))}


def storable(state):
    """Typed PRNG keys become raw key data, recorded so that restore can re-wrap them."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, state)


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
        return np.asarray(x).tolist()
    return x


# ---------------------------------------------------------------- listing

def _manager(directory: Path, *, keep: int | None = None, read_only: bool, async_save: bool = False):
    ocp = _ocp()
    # Readers neither create nor clean anything (orbax's own read_only mode would do
    # the same but logs a warning on every restore).
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=not read_only, enable_async_checkpointing=async_save)
    handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(directory.absolute(), options=options, item_handlers=handlers)


def list_steps(directory: str | Path) -> list[int]:
    """Steps of the complete checkpoints in `directory`, ascending ([] if none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    manager = _manager(directory, read_only=True)
    try:
        return sorted(manager.all_steps())
    finally:
        manager.close()


def latest_step(directory: str | Path) -> int | None:
    steps = list_steps(directory)
    return steps[-1] if steps else None


def _require_steps(directory: Path) -> list[int]:
    if not directory.exists():
        raise CheckpointError(f"checkpoint directory {directory} does not exist: train first "
                              "(pcmusic train --workdir DIR) or point to a workdir that has one")
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint path {directory} is a file, not a directory")
    steps = list_steps(directory)
    if not steps:
        partial = sorted(p.name for p in directory.iterdir() if _TMP_MARK in p.name)
        if partial:
            raise CheckpointError(f"{directory} holds only incomplete checkpoints ({', '.join(partial)}): "
                                  "a save was interrupted before finishing; train again to write one")
        raise CheckpointError(f"{directory} holds no checkpoint: train first, or check the path")
    return steps


# ---------------------------------------------------------------- save

class Checkpointer:
    """Holds one `CheckpointManager` for a training loop.

    `save` may return while the files are still written in the background
    (`async_save=True`); reads and `close` wait for it first.
    """

    def __init__(self, directory: str | Path, *, keep: int = 3, async_save: bool = True):
        self.directory = Path(directory)
        # What a killed save left behind is never a checkpoint; clear it before
        # writing (orbax's cleanup_tmp_directories runs in the background, unawaited).
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                if _TMP_MARK in path.name and path.name.split(".")[0].isdigit() and path.is_dir():
                    shutil.rmtree(path)
        self._manager = _manager(self.directory, keep=keep, read_only=False, async_save=async_save)

    def save(self, step: int, *, state: Any, config: Any, metrics: dict | None = None,
             data_position: dict | None = None) -> None:
        """Save pytree `state` (jax/numpy arrays, typed or raw PRNG keys, Python
        scalars) with its config (a config dataclass or dict) at integer `step`."""
        self._manager.wait_until_finished()  # so latest_step sees the previous save
        step = int(step)
        latest = self._manager.latest_step()
        if latest is not None and step <= latest:
            what = "already exists" if step in self._manager.all_steps() else \
                f"is older than the latest checkpoint ({latest})"
            raise CheckpointError(f"step {step} {what} in {self.directory}; nothing was overwritten: "
                                  "resume from the latest step or use a fresh directory")
        leaves = {}
        for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
            stored = jax.random.key_data(leaf) if is_key(leaf) else leaf
            leaves[path_str(path)] = {**leaf_spec(leaf),
                                                 "checksum": digest(stored)}
        from pcmusic import __version__
        meta = {"format": FORMAT_VERSION, "pcmusic_version": __version__, "step": step,
                "config": config if isinstance(config, dict) else config_to_dict(config),
                "metrics": jsonable(metrics or {}),
                "data_position": jsonable(data_position or {}),
                "leaves": leaves}
        ocp = _ocp()
        args = ocp.args.Composite(state=ocp.args.StandardSave(storable(state)),
                                  meta=ocp.args.JsonSave(meta))
        if not self._manager.save(step, args=args, force=True):
            raise CheckpointError(f"orbax declined to save step {step} in {self.directory}")

    def latest_step(self) -> int | None:
        self._manager.wait_until_finished()
        return self._manager.latest_step()

    def restore(self, **kwargs) -> tuple[Any, dict]:
        """`restore(self.directory, **kwargs)` after pending saves finish."""
        self._manager.wait_until_finished()
        return restore(self.directory, **kwargs)

    def wait_until_finished(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def save(directory: str | Path, step: int, *, state: Any, config: Any, metrics: dict | None = None,
         data_position: dict | None = None, keep: int = 3) -> None:
    """Save one checkpoint synchronously, keeping the `keep` latest steps.
    Raises CheckpointError if `step` is not newer than every step already there."""
    with Checkpointer(directory, keep=keep, async_save=False) as ckpt:
        ckpt.save(step, state=state, config=config, metrics=metrics, data_position=data_position)


# ---------------------------------------------------------------- restore

def _abstract(target, leaves: dict, default_sharding):
    """The target as orbax wants it: arrays as ShapeDtypeStruct with a sharding
    on the current devices, typed keys as their key data. A 64-bit leaf (numpy
    array, Python scalar) whose target is its 32-bit jax form (what
    `jax.eval_shape` makes of it) is read as saved, to verify its checksum, and
    converted afterwards; `convert` maps its path to the target leaf."""
    convert = {}

    def leaf(path, x):
        if isinstance(x, np.ndarray) or not hasattr(x, "dtype"):
            return x  # numpy arrays and Python scalars restore as themselves
        sharding = getattr(x, "sharding", None)
        if is_key(x):
            x = jax.eval_shape(jax.random.key_data, x)
            if not isinstance(sharding, (jax.sharding.NamedSharding, jax.sharding.SingleDeviceSharding)):
                sharding = None
        abstract = jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding or default_sharding)
        record = leaves[path_str(path)]
        if record["dtype"] != str(np.dtype(x.dtype)):
            convert[path_str(path)] = abstract
            placeholder = np.zeros(record["shape"], record["dtype"])
            return placeholder.item() if record.get("python_scalar") else placeholder
        return abstract
    return jax.tree_util.tree_map_with_path(leaf, target), convert


def _from_metadata(tree, default_sharding):
    """An abstract target from orbax's stored metadata (restore without a target)."""
    def leaf(m):
        dtype = np.dtype(m.dtype)
        if type(m).__name__ == "ScalarMetadata":
            return dtype.type(0).item()
        if m.sharding is None:
            return np.zeros(m.shape, dtype)
        return jax.ShapeDtypeStruct(tuple(m.shape), dtype, sharding=default_sharding)
    return jax.tree.map(leaf, tree, is_leaf=lambda m: hasattr(m, "dtype"))


def _canonical(dtype: str) -> str:
    """The dtype jax gives a value of `dtype` (int64 -> int32 unless x64 is on)."""
    return str(np.dtype(jax.dtypes.canonicalize_dtype(np.dtype(dtype))))


def _check_structure(target, leaves: dict, where: str) -> None:
    flat = jax.tree_util.tree_flatten_with_path(target)[0]
    wanted = {path_str(p): leaf_spec(x) for p, x in flat}
    missing = sorted(wanted.keys() - leaves.keys())
    extra = sorted(leaves.keys() - wanted.keys())
    changed = [f"{k}: checkpoint {leaves[k]['dtype']}{leaves[k]['shape']}, "
               f"target {wanted[k]['dtype']}{wanted[k]['shape']}"
               for k in sorted(wanted.keys() & leaves.keys())
               if wanted[k]["shape"] != leaves[k]["shape"]
               or wanted[k]["dtype"] not in (leaves[k]["dtype"], _canonical(leaves[k]["dtype"]))]
    if missing or extra or changed:
        lines = ([f"not in the checkpoint: {', '.join(missing[:8])}"] if missing else []) + \
                ([f"only in the checkpoint: {', '.join(extra[:8])}"] if extra else []) + changed[:8]
        raise CheckpointError(f"{where} does not match the target structure ("
                              + "; ".join(lines) + "): build the target from the config the "
                              "checkpoint was saved with (see its meta/config)")


def _corrupt(where: str, detail: str, step: int, steps: list[int]) -> CheckpointError:
    older = [s for s in steps if s < step]
    fix = (f"restore an earlier step with --step {older[-1]} (step={older[-1]} in Python; "
           f"available: {steps})" if older else "no earlier step is available; retrain")
    return CheckpointError(f"checkpoint {where} is corrupt or truncated ({_one_line(detail)}); "
                           f"nothing was changed on disk; {fix}")


def _one_line(text: str, limit: int = 200) -> str:
    """The first line of an error's text, cut to `limit` characters (libraries below orbax
    put multi-line reprs in their messages)."""
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return first if len(first) <= limit else first[:limit] + "..."


def _check_config(saved: dict, expected: Any, where: str) -> None:
    diff = config_diff(saved, expected)
    if diff:
        ours, theirs = flatten_config(saved), flatten_config(expected)
        shown = "; ".join(f"{k}: checkpoint {ours.get(k, '<absent>')!r}, "
                          f"expected {theirs.get(k, '<absent>')!r}" for k in diff[:12])
        raise CheckpointError(f"checkpoint {where} was saved with another config ({shown}): "
                              "use the config it was trained with, or a fresh workdir")


def restore(directory: str | Path, *, target: Any = None, step: int | None = None,
            expected_config: Any = None) -> tuple[Any, dict]:
    """Restore `(state, meta)` from the latest (or the given) step.

    target: abstract pytree (e.g. `jax.eval_shape(init, ...)`, leaves with or
      without shardings) matching the saved state; arrays are placed on its
      shardings or on the first local device, PRNG keys come back typed where
      the target's are. Without a target, containers come back as orbax stores
      them (tuples as lists, namedtuples as dicts) and keys as they were saved.
    expected_config: a config (or dict) the checkpoint must have been saved with.
    meta: {"step", "config" (dict), "metrics", "data_position", "pcmusic_version",
    "leaves" (path -> shape, dtype and checksum of every saved array)}.
    Nothing on disk is changed, whatever happens.
    """
    with _opened(directory, step) as opened:
        return _read(*opened, target, expected_config)


def read_meta(directory: str | Path, *, step: int | None = None) -> dict:
    """The meta of the latest (or the given) step, as `restore` returns it, without
    reading the saved arrays (e.g. the config, to build the target of a restore)."""
    with _opened(directory, step) as opened:
        return _info(_read_meta(*opened))


@contextlib.contextmanager
def _opened(directory, step):
    """(read-only manager, step, all steps, "dir/step") for the latest or given step."""
    directory = Path(directory)
    steps = _require_steps(directory)
    step = steps[-1] if step is None else int(step)
    if step not in steps:
        raise CheckpointError(f"no checkpoint for step {step} in {directory}; available steps: {steps}")
    manager = _manager(directory, read_only=True)
    try:
        yield manager, step, steps, str(directory / str(step))
    finally:
        manager.close()


def _info(meta: dict) -> dict:
    return {k: meta.get(k) for k in ("step", "config", "metrics", "data_position", "pcmusic_version",
                                     "leaves")}


def _read_meta(manager, step, steps, where) -> dict:
    ocp = _ocp()
    try:
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if "leaves" not in meta:
            raise KeyError("leaves")
    except Exception as err:  # orbax, json and tensorstore raise many kinds
        raise _corrupt(where, f"meta unreadable: {type(err).__name__}: {err}", step, steps) from None
    if meta.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{where} was written by pcmusic {meta.get('pcmusic_version')} "
                              f"(format {meta['format']}); upgrade pcmusic to read it")
    return meta


def _read(manager, step, steps, where, target, expected_config):
    ocp = _ocp()
    meta = _read_meta(manager, step, steps, where)
    leaves = meta["leaves"]
    if expected_config is not None:
        _check_config(meta["config"], expected_config, where)
    default_sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    if target is not None:
        _check_structure(target, leaves, where)
        abstract, convert = _abstract(target, leaves, default_sharding)
        flat = jax.tree_util.tree_flatten_with_path(target)[0]
        typed = {path_str(p) for p, x in flat if is_key(x)}
    else:
        try:
            tree = manager.item_metadata(step)["state"].tree
        except Exception as err:
            raise _corrupt(where, f"state metadata unreadable: {type(err).__name__}: {err}",
                           step, steps) from None
        abstract, convert = _from_metadata(tree, default_sharding), {}
        typed = {path for path, record in leaves.items() if record.get("prng_impl")}
    try:
        state = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract)))["state"]
    except Exception as err:
        raise _corrupt(where, f"{type(err).__name__}: {str(err)[:300]}", step, steps) from None

    bad = []

    def finish(path, x):
        path = path_str(path)
        record = leaves.get(path, {})
        if record.get("checksum") is not None and digest(x) != record["checksum"]:
            bad.append(path)
        if path in typed:
            return jax.random.wrap_key_data(x, impl=record.get("prng_impl") or "threefry2x32")
        if path in convert:
            return jax.device_put(np.asarray(x, convert[path].dtype), convert[path].sharding)
        return x

    state = jax.tree_util.tree_map_with_path(finish, state)
    if bad:
        raise _corrupt(where, f"checksum mismatch in {', '.join(bad[:8])}", step, steps)
    return state, _info(meta)


# ---------------------------------------------------------------- models

CKPT_DIR = "checkpoints"
NOTE_PRIOR_FILE = "note_prior.npz"   # a run's note prior, beside its checkpoints/


def checkpoint_dir(path: str | Path) -> Path:
    """The checkpoint directory of a workdir (or the directory itself if it holds steps)."""
    path = Path(path)
    return path / CKPT_DIR if (path / CKPT_DIR).is_dir() else path


def abstract_train_state(config: Config, sharding=None, *, maps=None):
    """The `TrainState` of `config` (with the user's `maps`, `pcmusic.model.UserMaps`) as
    `jax.ShapeDtypeStruct`s (with `sharding`): the target a training checkpoint is
    restored against."""
    opt, enc_opt = step_lib.optimizers(learning_rate=config.train.learning_rate,
                                       encoder_learning_rate=config.train.encoder_learning_rate)
    init = functools.partial(step_lib.init_train_state, spec=config.model, optimizer=opt,
                             encoder_optimizer=enc_opt, maps=maps)
    shapes = jax.eval_shape(init, jax.random.key(0))
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def load_model(ckpt_dir: str | Path, *, step: int | None = None, maps=None):
    """(AudioModel, Config) of a training checkpoint (a workdir or its checkpoints/
    directory, or "builtin:NAME", a model shipped with pcmusic: `pcmusic.builtin`; the
    latest step, or `step`), on the first local device whatever device count wrote it.

    maps: the user's maps the model was trained with (`pcmusic.model.UserMaps`); a
    checkpoint stores their params but not the modules, so give the same modules again
    (a mismatch is reported leaf by leaf)."""
    from pcmusic import builtin

    directory = checkpoint_dir(builtin.checkpoint_path(ckpt_dir))
    meta = read_meta(directory, step=step)   # first its config, to build the target
    try:
        config = config_from_dict(Config, meta["config"], source=f"checkpoint {directory}")
    except ConfigError as err:
        raise CheckpointError(f"{directory}: its config does not fit this pcmusic ({err})") from None
    maps = UserMaps.of(maps)
    state, _ = restore(directory, step=meta["step"], target=abstract_train_state(config, maps=maps))
    return step_lib.model_of(state, config.model, maps), config


def note_prior_path(ckpt_dir: str | Path) -> Path | None:
    """The note prior of a run (a workdir or its checkpoints/ directory: the workdir's
    NOTE_PRIOR_FILE, written by `pcmusic.training.loop.fit_note_prior`) or of
    "builtin:NAME"; None where the run has none."""
    from pcmusic import builtin

    if builtin.is_builtin(ckpt_dir):
        path = Path(builtin.checkpoint_path(ckpt_dir)).parent / builtin.NOTES_FILE
    else:
        path = Path(ckpt_dir)
        path = (path.parent if path.name == CKPT_DIR else path) / NOTE_PRIOR_FILE
    return path if path.is_file() else None
