"""Benchmark of one training step of the audio model (settle the batch, then learn).

The step is `pcmusic.training.loop.make_step` on a 1-device mesh, fed a synthetic batch of the
config's own data (`configs/tiny.toml` = the demo's model, `configs/default.toml`),
at the config's batch size and, on an accelerator, larger ones. The figure a
researcher plans with: clips (and audio seconds) learned per wall second.
"""
from __future__ import annotations

import time
from typing import Iterator

import jax
import numpy as np

from pcmusic.bench.table import time_call



def _row(name: str, batch_size: int, *, n_repeats: int) -> dict:
    from pcmusic.data import batch_at
    from pcmusic.training import loop as train
    from pcmusic.training.config import load_config

    config = load_config(name, overrides=[f"train.batch_size={batch_size}"])
    mesh = train.make_mesh(jax.devices()[:1])
    step = train.make_step(config, mesh)
    state = train.init_state(config, mesh)
    spec = train.synthetic_spec(config, batch_size=batch_size, n_frames=train.clip_frames(config))
    audio = np.asarray(batch_at(jax.random.key(config.train.seed), 0, spec).audio)
    start = time.perf_counter()
    compiled = step.lower(state, audio).compile()
    compile_s = time.perf_counter() - start
    seconds = time_call(lambda: compiled(state, audio), n_repeats=n_repeats)
    clip_s = audio.shape[1] / config.model.sample_rate
    return {"config": f"{name}.toml", "batch": batch_size, "clip s": clip_s,
            "settle steps": config.inference.n_steps, "device": jax.default_backend(),
            "compile s": compile_s, "ms/step": 1e3 * seconds, "clips/s": batch_size / seconds,
            "audio s per s": batch_size * clip_s / seconds}


def run(*, quick: bool) -> Iterator[tuple[str, list[dict]]]:
    """One table: train-step time per config and batch size (compile excluded)."""
    cases = [("tiny", 8)] if quick else [("tiny", 8), ("default", 8)]
    if jax.default_backend() != "cpu":
        cases += [("tiny", 64)]
    rows = [_row(name, batch, n_repeats=3 if quick else 5) for name, batch in cases]
    yield "train step (settle + learn), synthetic batch, median wall, compile excluded", rows
