"""Inference and generation on a `Hierarchy`: the standard PC energy wired to `infer`.

Bottom clamped is perception, top clamped is generation, both clamped is supervised
learning, an element mask within a level is inpainting (see `pcmusic.pc.clamp`).
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import optax

from pcmusic.pc import clamp as clamp_lib
from pcmusic.pc.energy import Hierarchy, check_n_levels, energy, predict
from pcmusic.pc.errors import HierarchySpecError
from pcmusic.pc.inference import InferenceResult, infer

Pytree = Any


def _as_list(clamp: Pytree) -> Pytree:
    return list(clamp) if isinstance(clamp, tuple) else clamp


def clamp_levels(n_levels: int, levels: Sequence[int]) -> tuple[bool, ...]:
    """A clamp that fixes whole levels: `clamp_levels(4, [0, 3])` -> (True, False, False, True)."""
    return tuple(level in levels or level - n_levels in levels for level in range(n_levels))


def energy_fn(hierarchy: Hierarchy, params: dict, latents: Sequence, *, clamp: Pytree = None):
    """`(latents, step) -> (E, aux)` for `infer`, with clamped levels' predictions precomputed.

    A level clamped whole makes its prediction of the level below a constant of the
    inference loop. XLA does not hoist it out of `lax.scan` by itself, so it is computed
    here, once, from `latents`. Call inside the same jit as `infer`.
    """
    check_n_levels(hierarchy, latents)
    fixed = clamp_lib.fixed_levels(clamp_lib.partition(_as_list(clamp), list(latents)), latents)
    predictions = tuple(predict(hierarchy, params, latents, level) if fixed[level + 1] else None
                        for level in range(hierarchy.n_levels - 1))

    def fn(z, step):
        return energy(hierarchy, params, z, step=step, predictions=predictions)

    return fn


def settle(hierarchy: Hierarchy, params: dict, latents: Sequence, *,
           optimizer: optax.GradientTransformation, n_steps: int, clamp: Pytree = None,
           tol: float | None = None, record_stride: int | None = None,
           divergence_factor: float | None = 1e3, check_every: int = 1) -> InferenceResult:
    """Run inference on the hierarchical energy from `latents` (clamped entries stay put).

    latents: n_levels pytrees (level 0 first), leaves float32 `[batch, ...]`; clamped
    levels hold the observation/intent, free ones the initial guess. Other arguments as
    in `pcmusic.pc.infer`. Returns an `InferenceResult` whose aux has "energies"
    f32[n_levels] and "errors" (tuple of pytrees).
    """
    latents = list(latents)
    fn = energy_fn(hierarchy, params, latents, clamp=clamp)
    result = infer(fn, latents, optimizer=optimizer, n_steps=n_steps, clamp=_as_list(clamp),
                   tol=tol, record_stride=record_stride, divergence_factor=divergence_factor,
                   check_every=check_every)
    return result._replace(latents=tuple(result.latents))


def predict_top_down(hierarchy: Hierarchy, params: dict, top: Pytree, *,
                     from_level: int | None = None) -> tuple:
    """Predict every level below `top` in one pass: z_l = g_l(z_{l+1}).

    top: pytree for level `from_level` (default the top level L), leaves `[batch, ...]`.
    Returns a tuple of n_levels pytrees; levels above `from_level` are None. This is the
    initial state for generation (clamp the top, then refine) and the feed-forward
    initialisation when the source of predictions is clamped.
    """
    start = hierarchy.n_levels - 1 if from_level is None else from_level
    levels: list = [None] * hierarchy.n_levels
    levels[start] = top
    for level in range(start - 1, -1, -1):
        levels[level] = hierarchy.maps[level](params["maps"][level], levels[level + 1])
    return tuple(levels)


def replace_levels(latents: Sequence, values: dict[int, Pytree]) -> tuple:
    """Copy of `latents` with the given levels replaced (e.g. the observation at level 0)."""
    out = list(latents)
    for level, value in values.items():
        out[level] = value
    return tuple(out)


def batch_size(latents: Sequence) -> int:
    """The leading (batch) size shared by the latents' leaves."""
    sizes = {x.shape[0] for x in jax.tree.leaves(list(latents))}
    if len(sizes) != 1:
        raise HierarchySpecError(f"latent leaves disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()
