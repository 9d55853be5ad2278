"""Probing: the recorded trajectory of an inference run, with bounded memory.

With `record_stride=s`, `infer` records the state before the update at steps
0, s, 2s, ... into preallocated buffers (R = ceil(n_steps / s) records). The trajectory
is a dict:

    "step":     int32[R]            the step of each record (-1 where a `tol` run stopped first)
    "energy":   f32[R]              total energy E(z_step) at that state
    "latents":  pytree like latents, leaves [R, batch, ...]
    and the energy function's aux (a dict) merged in, stacked over records. For the
    hierarchical energy that adds
    "energies": f32[R, n_levels]    per-level energy terms
    "errors":   tuple of n_levels pytrees, leaves [R, batch, ...]  z_l - g_l(z_{l+1})
    (a non-dict aux is stored under "aux").

With `check_every=k` in `infer`, `record_stride` must be a multiple of k. Records from
the first bad step of a diverged run on hold that run's (discarded) state with energy
NaN. Recorded energies are those of the recorded latents: `replay(energy_fn, trajectory)`
recomputes them (a check, and a way to evaluate other quantities along the path).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

from pcmusic.pc.errors import HierarchySpecError

Pytree = Any


def n_records(n_steps: int, stride: int) -> int:
    """Number of records R for a run of `n_steps` with `stride`."""
    if stride < 1:
        raise HierarchySpecError(f"record_stride must be >= 1, got {stride}")
    return -(-n_steps // stride)


def allocate(latents: Pytree, aux_shape: Any, *, n_steps: int, stride: int) -> dict:
    """Zeroed buffers for R records of `latents` and of an aux with shapes `aux_shape`."""
    n = n_records(n_steps, stride)

    def buffer(x):
        return jnp.zeros((n,) + tuple(x.shape), x.dtype)

    return {"step": jnp.full((n,), -1, jnp.int32), "energy": jnp.full((n,), jnp.nan, jnp.float32),
            "latents": jax.tree.map(buffer, latents), "aux": jax.tree.map(buffer, aux_shape)}


def write(record: dict, t: jax.Array, stride: int, latents: Pytree, energy: jax.Array,
          aux: Any) -> dict:
    """Store the state at step `t` if `t` is a multiple of `stride` (traceable)."""
    index = t // stride
    due = (t % stride) == 0

    def put(buf, value):
        old = lax.dynamic_index_in_dim(buf, index, 0, keepdims=False)
        return lax.dynamic_update_index_in_dim(buf, jnp.where(due, value, old), index, 0)

    new = {"step": t, "energy": energy, "latents": latents, "aux": aux}
    return jax.tree.map(put, record, new)


def finish(record: dict) -> dict:
    """The public trajectory dict (aux keys merged in when aux is a dict)."""
    out = {k: record[k] for k in ("step", "energy", "latents")}
    aux = record["aux"]
    if isinstance(aux, dict):
        out.update(aux)
    else:
        out["aux"] = aux
    return out


def replay(energy_fn: Callable[[Pytree, jax.Array], tuple[jax.Array, Any]],
           trajectory: dict) -> jax.Array:
    """Recompute f32[R] energies from the recorded latents and steps (vmapped)."""
    return jax.vmap(lambda z, s: energy_fn(z, s)[0])(trajectory["latents"], trajectory["step"])
