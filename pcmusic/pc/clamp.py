"""Clamping: which latent entries inference may move.

A clamp is a pytree prefix of the latents whose leaves are:
- `True`: the whole subtree is clamped (a Python or NumPy bool: known while tracing, so
  the subtree is a constant of the inference loop and gets no gradient computed at all);
- `False` / `None`: free;
- a boolean array broadcastable (NumPy rules) to each leaf below it: an element mask,
  True where clamped (e.g. `[1, n_frames, 1]` marks a time span for inpainting). Masked
  entries are restored bit-for-bit after every update, whatever the optimiser does.
A clamp passed through `jit` as an argument turns Python bools into traced arrays: they
still work (as masks) but lose the whole-leaf fast path, so close over static clamps.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.pc.errors import HierarchySpecError

Pytree = Any


class Partition(NamedTuple):
    """The latents' leaves split into fixed (whole-leaf clamped) and free ones."""

    treedef: Any
    fixed: tuple          # per leaf: True if the whole leaf is clamped (static)
    masks: tuple          # per leaf: None, or a bool array of the leaf's shape (True = clamped)


def _leaf_clamp(c: Any, x: jax.Array) -> Any:
    if c is None or c is False:
        return False
    if c is True:
        return True
    if isinstance(c, (np.ndarray, np.bool_)):
        c = np.asarray(c, dtype=bool)
        try:
            c = np.broadcast_to(c, x.shape)
        except ValueError:
            raise HierarchySpecError(f"clamp mask of shape {c.shape} does not broadcast to a latent "
                                     f"leaf of shape {x.shape}") from None
        if c.all():
            return True
        if not c.any():
            return False
        return jnp.asarray(c)
    c = jnp.asarray(c)
    if c.dtype != jnp.bool_:
        raise HierarchySpecError(f"clamp leaves must be bools or boolean masks, got dtype {c.dtype}")
    try:
        return jnp.broadcast_to(c, x.shape)
    except ValueError:
        raise HierarchySpecError(f"clamp mask of shape {c.shape} does not broadcast to a latent "
                                 f"leaf of shape {x.shape}") from None


def partition(clamp: Pytree, latents: Pytree) -> Partition:
    """Resolve `clamp` against `latents` leaf by leaf (see module doc)."""
    leaves, treedef = jax.tree.flatten(latents)
    if clamp is None:
        per_leaf = [False] * len(leaves)
    else:
        try:
            tree = jax.tree.map(lambda c, sub: jax.tree.map(lambda x: _leaf_clamp(c, x), sub),
                                clamp, latents, is_leaf=lambda c: c is None)
        except ValueError as err:
            raise HierarchySpecError(f"clamp is not a prefix of the latents' structure: {err}") from None
        per_leaf = treedef.flatten_up_to(tree)
    fixed = tuple(c is True for c in per_leaf)
    masks = tuple(c if not isinstance(c, bool) else None for c in per_leaf)
    return Partition(treedef, fixed, masks)


def split(part: Partition, latents: Pytree) -> tuple[list, list]:
    """(free leaves, fixed leaves) in leaf order; each list holds only its own leaves."""
    leaves = part.treedef.flatten_up_to(latents)
    free = [x for x, f in zip(leaves, part.fixed) if not f]
    fixed = [x for x, f in zip(leaves, part.fixed) if f]
    return free, fixed


def merge(part: Partition, free: list, fixed: list) -> Pytree:
    """Inverse of `split`."""
    free_it, fixed_it = iter(free), iter(fixed)
    leaves = [next(fixed_it) if f else next(free_it) for f in part.fixed]
    return part.treedef.unflatten(leaves)


def free_masks(part: Partition) -> list:
    """Per free leaf: None or its element mask (True = clamped)."""
    return [m for m, f in zip(part.masks, part.fixed) if not f]


def fixed_levels(part: Partition, latents: Pytree) -> tuple[bool, ...]:
    """For a list/tuple of levels: whether each level is clamped whole (every leaf fixed)."""
    out, i = [], 0
    for level in latents:
        n = len(jax.tree.leaves(level))
        out.append(n > 0 and all(part.fixed[i:i + n]))
        i += n
    return tuple(out)
