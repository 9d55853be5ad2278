"""Training: a jit-compiled, data-parallel, resumable loop around `train_step`.

`train(config, workdir)` runs `config.train.n_steps` steps of perceive-then-learn
(`pcmusic.training.step`) and writes into `workdir`:

    config.toml       the run's config (the checkpoints hold it too)
    checkpoints/      orbax checkpoints: state, config, step, data position (`checkpoint`)
    metrics.jsonl     one JSON record per log/eval step: {"step", "split": "train"|"eval", ...}
    tb/               TensorBoard event files (the same scalars)
    training.png      energy per step and held-out energy
    note_prior.npz    the notes the final model hears, as a note prior (train.note_prior_clips)
    samples/step_N/   generated sounds (WAV) and their figures (PNG), every sample_every steps
    summary.json      what the run ended with

Resuming: if `workdir` holds a checkpoint, the run continues from it: the state,
the data position (the step for synthetic data, (epoch, index) for folders) and the
count of diverged batches come back, metrics.jsonl is cut back to that step, and the
losses that follow equal those of an uninterrupted run. Only the schedule
(`SCHEDULE_KEYS`, e.g. n_steps to train longer) may differ from the
checkpoint's config; anything else is refused with the keys that differ.

Devices: one `Mesh` with a `data` axis over all devices (or `devices=`); each batch is
sharded on its batch axis, the state is replicated, and one `jax.jit` step with those
in/out shardings runs everywhere; the batch's energy sums become all-reduces. The same
code runs on one CPU, a GPU, or many devices, with the same losses up to float rounding.
Several hosts (a TPU pod slice, a GPU cluster): call `jax.distributed.initialize()` in
every process before `train` (before anything touches the devices); every process then
runs this same function, renders the same global batch and contributes its own shards
(`jax.make_array_from_callback`); process 0 writes the logs and figures, orbax writes
the checkpoints from all processes. batch_size must be a multiple of the device count.
"""
from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import jax
import numpy as np
import optax
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from jax.experimental import multihost_utils

from pcmusic import generation, outputs
from pcmusic.errors import CheckpointError, ConfigError, PcmusicError
from pcmusic.model import AudioModel, intents
from pcmusic.perception import perceive_intents
from pcmusic.training import checkpoint
from pcmusic.training import step as step_lib
from pcmusic.training.checkpoint import CKPT_DIR
from pcmusic.training.config import SCHEDULE_KEYS, Config, config_diff, config_to_toml, flatten_config


def enable_compilation_cache(directory: str | Path | None = None) -> str:
    """Keep compiled programs on disk so a second run loads them instead of compiling
    them again. Leaves a directory that is already configured (e.g. by
    JAX_COMPILATION_CACHE_DIR) alone; default:
    $XDG_CACHE_HOME/pcmusic/jax (~/.cache/pcmusic/jax). Returns the directory."""
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    directory = str(directory or Path(base) / "pcmusic" / "jax")
    jax.config.update("jax_compilation_cache_dir", directory)
    return directory


def make_mesh(devices=None) -> jax.sharding.Mesh:
    """A 1-D mesh with axis `data` over `devices` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    return jax.make_mesh((len(devices),), ("data",), (AxisType.Auto,), devices=devices)


def optimizers(config: Config) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """Adam for the hierarchy's params and for the amortised encoder, at config.train's rates."""
    return step_lib.optimizers(learning_rate=config.train.learning_rate,
                               encoder_learning_rate=config.train.encoder_learning_rate)


def clip_frames(config: Config) -> int:
    """Control frames per training clip: data.seconds rounded up to whole top-level frames."""
    c = config.model.controls
    return config.model.pad_frames(c.n_frames(round(config.data.seconds * c.sample_rate)))


def make_step(config: Config, mesh: jax.sharding.Mesh):
    """The jit-compiled `train_step(state, audio) -> (state, metrics)` on `mesh`."""
    opt, enc_opt = optimizers(config)
    replicated = NamedSharding(mesh, PartitionSpec())
    batch = NamedSharding(mesh, PartitionSpec("data"))
    step = functools.partial(step_lib.train_step, spec=config.model, inference=config.inference,
                             optimizer=opt, encoder_optimizer=enc_opt,
                             topdown_weight=config.train.topdown_weight,
                             intent_shoot_steps=config.train.intent_shoot_steps)
    return jax.jit(step, in_shardings=(replicated, batch), out_shardings=(replicated, replicated))


def _init_fn(config: Config):
    opt, enc_opt = optimizers(config)
    return functools.partial(step_lib.init_train_state, spec=config.model, optimizer=opt,
                             encoder_optimizer=enc_opt)


def init_state(config: Config, mesh: jax.sharding.Mesh) -> step_lib.TrainState:
    """A fresh TrainState from train.seed, replicated over `mesh`."""
    key = jax.random.fold_in(jax.random.key(config.train.seed), 0)
    return jax.jit(_init_fn(config), out_shardings=NamedSharding(mesh, PartitionSpec()))(key)


def _check_resumable(saved: dict, config: Config, where: Path) -> None:
    diff = [k for k in config_diff(saved, config) if k not in SCHEDULE_KEYS]
    if diff:
        old, new = flatten_config(saved), flatten_config(config)
        shown = "; ".join(f"{k}: checkpoint {old.get(k, '<absent>')!r}, now {new.get(k, '<absent>')!r}"
                          for k in diff[:12])
        raise CheckpointError(f"{where} holds a run with another config ({shown}); resume it with "
                              "its own config (see its config.toml), or train in a fresh workdir")


def rebank(params: dict, batches: list, *, spec, inference, intent_shoot_steps: int,
           n_clips: int) -> dict:
    """`params` whose intent bank holds only the intents (`pcmusic.perception.perceive_intents`)
    of the first n_clips clips of `batches` (float32 `[B, n_samples]` each) under `params`;
    clips whose inference diverged are left out. Where pitch is encoded finely in the top,
    a few steps of learning move what an old intent decodes to, so a run ends with intents
    found under its final params."""
    model = AudioModel(spec, params)
    tops = np.concatenate([np.asarray(multihost_utils.process_allgather(
        perceive_intents(model, b, inference=inference, intent_shoot_steps=intent_shoot_steps),
        tiled=True)) for b in batches])
    tops = tops[np.all(np.isfinite(tops), axis=-1)][:n_clips]
    return dict(params, intent=intents.replace_bank(params["intent"], tops))


def heard_phrases(model: AudioModel, batches: list, *, n_clips: int, inference=None,
                  intent_shoot_steps: int = 0) -> tuple[list, np.ndarray | None]:
    """(phrases, tops): the notes `model` perceives (notes settled under its hierarchy, the
    package's perception defaults) in the first n_clips clips of `batches` (float32
    `[B, n_samples]` each, at the model's rate), each voice's notes in a clip one phrase
    (voices that heard none left out); with `inference` (the run's InferenceSpec), tops
    float32 `[n_phrases, d_top]`: each phrase's clip's intent
    (`pcmusic.perception.perceive_intents` with intent_shoot_steps, as the intent bank holds
    them; NaN where inference diverged), else None."""
    from pcmusic.perception import perceive_batch

    clips = [row for b in batches for row in np.asarray(b)][:n_clips]
    percepts = perceive_batch(clips, model.spec.sample_rate, model=model)
    heard = [(i, v) for i, p in enumerate(percepts) for v in p.notes if len(v)]
    tops = None
    if inference is not None:
        clip_tops = np.concatenate([np.asarray(perceive_intents(model, b, inference=inference,
                                                                intent_shoot_steps=intent_shoot_steps))
                                    for b in batches])[:n_clips]
        tops = clip_tops[np.asarray([i for i, _ in heard], int)]
    return [v for _, v in heard], tops


def fit_note_prior(model: AudioModel, batches: list, *, period_oct: float, n_clips: int,
                   inference=None, intent_shoot_steps: int = 0):
    """The note prior (`pcmusic.model.note_prior.fit`, period `period_oct` octaves) of the
    phrases `model` hears in the first n_clips clips of `batches` (`heard_phrases`); with
    `inference` their phrase intents are linked to the clips' hierarchy intents. Raises
    PcmusicError when fewer than two notes were heard."""
    from pcmusic.model import note_prior

    phrases, tops = heard_phrases(model, batches, n_clips=n_clips, inference=inference,
                                  intent_shoot_steps=intent_shoot_steps)
    return note_prior.fit(phrases, period_oct=period_oct, tops=tops)


# ---------------------------------------------------------------- data

def synthetic_spec(config: Config, *, batch_size: int, n_frames: int):
    """The `pcmusic.data.SyntheticSpec` of config.data, for clips of `n_frames` control frames."""
    from pcmusic import data

    d = config.data
    return data.SyntheticSpec(
        kind=d.synthetic, tuning=list(d.tuning) if isinstance(d.tuning, tuple) else d.tuning,
        batch_size=batch_size, sample_rate=config.model.sample_rate, hop=config.model.controls.hop,
        n_frames=n_frames, f_ref_hz=d.f_ref_hz, f0_min_hz=d.f0_min_hz, f0_max_hz=d.f0_max_hz,
        n_harmonics=d.n_harmonics, min_voices=min(2, d.voices), max_voices=max(2, d.voices),
        notes_per_melody=d.notes_per_melody)


class TrainingData:
    """Training batches by position, and the fixed evaluation clips (host numpy arrays)."""

    def __init__(self, config: Config):
        from pcmusic import data

        self.config, d = config, config.data
        root = jax.random.key(config.train.seed)
        self._key, self._eval_key = jax.random.fold_in(root, 1), jax.random.fold_in(root, 2)
        n_frames = clip_frames(config)
        self.n_samples = n_frames * config.model.controls.hop
        self.folder = None
        if d.kind == "folder":
            rate = config.model.sample_rate
            self.folder = data.AudioFolder(d.folder, sample_rate=rate,
                                           segment_seconds=self.n_samples / rate,
                                           key=self._key, batch_size=config.train.batch_size)
        else:
            self.spec = synthetic_spec(config, batch_size=config.train.batch_size, n_frames=n_frames)

    def batch(self, step: int) -> np.ndarray:
        """float32 `[batch_size, n_samples]`: the batch at data position `step`."""
        if self.folder is not None:
            return self.folder.next_batch().audio
        from pcmusic.data import batch_at
        return np.asarray(batch_at(self._key, step, self.spec).audio)

    def position(self, step: int) -> dict:
        return {"step": step, **({"folder": self.folder.position.to_dict()} if self.folder else {})}

    def seek(self, position: dict) -> None:
        if self.folder is not None:
            self.folder.seek(position["folder"])

    def eval_batches(self, n_clips: int | None = None, *, salt: int = 0) -> list[np.ndarray]:
        """ceil(n_clips / batch_size) batches (n_clips: train.n_eval). Synthetic: drawn
        from a key training never uses (held out; `salt` picks another such key). Folder:
        evenly spaced segments of the same folder (it has no split, so this measures
        fit, not generalisation). Neither moves the training stream."""
        b = self.config.train.batch_size
        n_batches = -(-(self.config.train.n_eval if n_clips is None else n_clips) // b)
        if self.folder is None:
            from pcmusic.data import batch_at
            key = jax.random.fold_in(self._eval_key, salt) if salt else self._eval_key
            return [np.asarray(batch_at(key, i, self.spec).audio) for i in range(n_batches)]
        ids = np.linspace(0, self.folder.n_segments - 1, n_batches * b).round().astype(int)
        clips = np.stack([self.folder.segment(int(i))[0] for i in ids])
        return list(clips.reshape(n_batches, b, -1))


def _samples(config: Config, state: step_lib.TrainState, directory: Path, key: jax.Array) -> None:
    t = config.train
    sounds, trace = generation.generate(step_lib.model_of(state, config.model), key, n=t.n_samples,
                                      seconds=t.sample_seconds, refine_steps=t.sample_refine_steps,
                                      refine=config.refine)
    if jax.process_index() == 0:  # every process generates (the params are sharded), one writes
        directory.mkdir(parents=True, exist_ok=True)
        outputs.write_sounds(directory, sounds, trace, config.model.controls.sample_rate,
                             overwrite=True, title=directory.name)


def _write_note_prior(config: Config, state, data: "TrainingData", workdir: Path, say) -> None:
    """workdir/NOTE_PRIOR_FILE from held-out clips (`fit_note_prior`); a corpus in which
    too few notes are heard is reported (`say`), not fatal: the checkpoint is written."""
    from pcmusic.model import note_prior

    t = config.train
    try:
        local = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x,
                             state.params)       # replicated: this process's copy
        prior = fit_note_prior(AudioModel(config.model, local),
                               data.eval_batches(t.note_prior_clips, salt=2),
                               period_oct=t.note_period_oct, n_clips=t.note_prior_clips,
                               inference=config.inference, intent_shoot_steps=t.intent_shoot_steps)
    except PcmusicError as err:
        say(f"no note prior written: {err}")
        return
    note_prior.save(workdir / checkpoint.NOTE_PRIOR_FILE, prior, overwrite=True)
    peaks = note_prior.lattice_cents(prior)
    linked = ""
    if note_prior.has_link(prior):
        ratio = np.asarray(prior.link_sd) / np.asarray(prior.intent_sd)
        linked = (f"; its intents predict the phrases' register, tempo and level to {ratio[0]:.2f}, "
                  f"{ratio[1]:.2f}, {ratio[2]:.2f} of their spread")
    say(f"note prior written to {workdir / checkpoint.NOTE_PRIOR_FILE}: {len(peaks)} pitch classes{linked}")


def _evaluate(step_fn, state, batches) -> dict:
    """Mean metrics of the current state on the eval batches (the new state is dropped)."""
    runs = [{k: float(v) for k, v in step_fn(state, b)[1].items()} for b in batches]
    out = {k: float(np.mean([r[k] for r in runs])) for k in runs[0] if k != "diverged"}
    return {**out, "n_diverged": int(sum(r["diverged"] for r in runs))}


# ---------------------------------------------------------------- the loop

def train(config: Config, workdir: str | Path, *, devices=None, progress: bool = True) -> dict:
    """Train (or resume) the run `config` in `workdir` (module docstring); returns the
    summary also written to workdir/summary.json. `devices`: the mesh's devices
    (default all). Raises PcmusicError for bad configs, data or checkpoints."""
    from tqdm.auto import tqdm

    from pcmusic import plots

    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise PcmusicError(f"workdir {workdir} is a file; give a directory")
    workdir.mkdir(parents=True, exist_ok=True)
    mesh = make_mesh(devices)
    t = config.train
    if t.batch_size % mesh.size:
        raise ConfigError(f"train.batch_size = {t.batch_size} is not a multiple of the {mesh.size} "
                          f"devices; set it to a multiple of {mesh.size}")
    replicated = NamedSharding(mesh, PartitionSpec())
    batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
    data = TrainingData(config)
    ckpt_path = workdir / CKPT_DIR
    start, n_diverged, evaluation = 0, 0, {}
    if checkpoint.latest_step(ckpt_path) is not None:
        meta = checkpoint.read_meta(ckpt_path)
        _check_resumable(meta["config"], config, ckpt_path)
        if meta["step"] > t.n_steps:
            raise CheckpointError(f"{ckpt_path} holds a run at step {meta['step']}, beyond train.n_steps = "
                                  f"{t.n_steps}; nothing was changed: set train.n_steps >= {meta['step']} "
                                  "to continue it, or train in a fresh workdir")
        state, meta = checkpoint.restore(ckpt_path, step=meta["step"],
                                         target=checkpoint.abstract_train_state(config, replicated))
        start, n_diverged = meta["step"], int(meta["data_position"]["n_diverged"])
        evaluation = meta["metrics"].get("eval", {})
        data.seek(meta["data_position"])
    else:
        state = init_state(config, mesh)
    if jax.process_index() == 0:
        outputs.write_atomic(workdir / "config.toml", config_to_toml(config))

    def put(x: np.ndarray) -> jax.Array:  # each process supplies its own shards
        return jax.make_array_from_callback(x.shape, batch_sharding, lambda index: x[index])

    step_fn = make_step(config, mesh)
    eval_batches = [put(b) for b in data.eval_batches()] if t.eval_every else []
    sample_key = jax.random.fold_in(jax.random.key(t.seed), 3)
    log = outputs.MetricsLog(workdir, start)
    ckpt = checkpoint.Checkpointer(ckpt_path, keep=t.keep_checkpoints)
    bar = tqdm(total=t.n_steps, initial=start, disable=not progress, desc="train", unit="step")
    metrics, began = {}, time.time()
    try:
        for step in range(start, t.n_steps):
            state, out = step_fn(state, put(data.batch(step)))
            metrics = {k: float(v) for k, v in out.items()}
            done = step + 1
            if metrics["diverged"]:
                n_diverged += 1
                bar.write(f"step {done}: inference diverged on this batch; its update was skipped "
                          f"({n_diverged} so far)")
            bar.update(1)
            bar.set_postfix(energy=f"{metrics['energy']:.4g}", diverged=n_diverged, refresh=False)

            def due(every: int) -> bool:
                return every > 0 and (done % every == 0 or done == t.n_steps)

            if due(t.log_every):
                log.write(done, "train", {**metrics, "diverged": bool(metrics["diverged"]),
                                          "n_diverged": n_diverged})
            if eval_batches and due(t.eval_every):
                evaluation = _evaluate(step_fn, state, eval_batches)
                log.write(done, "eval", evaluation)
                if log.active:
                    plots.save_training_curves(workdir / "training.png", log.records)
            if due(t.sample_every):
                try:
                    _samples(config, state, workdir / "samples" / f"step_{done:07d}",
                             jax.random.fold_in(sample_key, done))
                except PcmusicError as err:  # a failed sample must not end the training run
                    bar.write(f"step {done}: samples not written: {err}")
            if done == t.n_steps and t.bank_refresh_clips:
                state = state._replace(params=rebank(
                    state.params, [put(b) for b in data.eval_batches(t.bank_refresh_clips, salt=1)],
                    spec=config.model, inference=config.inference,
                    intent_shoot_steps=t.intent_shoot_steps, n_clips=t.bank_refresh_clips))
            if due(t.ckpt_every) or done == t.n_steps:
                ckpt.save(done, state=state, config=config,
                          metrics={"train": metrics, "eval": evaluation},
                          data_position={**data.position(done), "n_diverged": n_diverged})
            if done == t.n_steps and t.note_prior_clips and jax.process_index() == 0:
                _write_note_prior(config, state, data, workdir, bar.write)
    finally:
        bar.close()
        ckpt.close()
        log.close()
    summary = {"workdir": str(workdir), "step": max(start, t.n_steps), "steps_run": t.n_steps - start,
               "seconds": round(time.time() - began, 3), "devices": mesh.size,
               "energy": metrics.get("energy"), "eval_energy": evaluation.get("energy"),
               "n_diverged": n_diverged, "checkpoint": str(ckpt_path)}
    if jax.process_index() == 0:
        outputs.write_atomic(workdir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
