"""Re-banking: the intent bank a training run ends with (`train.bank_refresh_clips`).

The ring buffer (`pcmusic.intents`) holds intents found with the params of the last few
hundred clips' steps; where pitch is encoded finely in the top, even a few steps of
learning move what an old intent decodes to (measured: a 5-TET model's banked intents
decoded at chance on its lattice, fresh ones at 5x), so a run ends by replacing them
with the intents of held-out clips under its final params. The bank never enters the
losses.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils

from pcmusic import intents, learn

# One jitted function for every run in a process: a fresh jax.jit per run compiles (or reads
# back from the persistent cache) another program, and each program held by a jit cache holds
# memory mappings (see tests/conftest.py for what too many of them did).
intents_of_batch = jax.jit(learn.intents_of_batch, static_argnames=("spec", "inference",
                                                                     "intent_shoot_steps"))


def rebank(params: dict, batches: list, *, spec, inference, intent_shoot_steps: int,
           n_clips: int) -> dict:
    """`params` whose intent bank holds only the intents (`learn.intents_of_batch`) of the
    first n_clips clips of `batches` (float32 `[B, n_samples]` each) under `params`;
    clips whose inference diverged are left out."""
    tops = np.concatenate([np.asarray(multihost_utils.process_allgather(
        intents_of_batch(params, b, spec=spec, inference=inference,
                         intent_shoot_steps=intent_shoot_steps), tiled=True)) for b in batches])
    tops = tops[np.all(np.isfinite(tops), axis=-1)][:n_clips]
    return dict(params, intent=intents.replace_bank(params["intent"], tops))
