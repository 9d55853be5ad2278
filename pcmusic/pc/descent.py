"""Monotone descent: optax steps on an energy that are retried smaller when they raise it.

`infer` never waits for the energy before stepping (see its comments): fast, but a step
size that suits one model can make the energy rise on another (Adam's first steps are
sign-like, full-size in every unit). Where a caller promises that the energy never rises
(generation's refinement trace), `monotone_descent` keeps that promise for any model: each
step proposes x' = x + alpha * u (u: the optimiser's update, alpha <= 1 a step scale) and
accepts it only if E(x') <= E(x) and E(x') is finite; a rejected step keeps x and the
optimiser state and halves alpha, an accepted one grows alpha back (x 1.5, at most 1).
The energy at the proposal is evaluated with its gradient, so a step costs one
value-and-gradient, as in `infer`.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from pcmusic.pc import optim
from pcmusic.pc.errors import HierarchySpecError

Pytree = Any


class DescentResult(NamedTuple):
    """latents: the final (accepted) state. energy_history: f32 `[n_steps + 1]`, E of the
    current state before each step and after the last (non-increasing). terms: aux
    "energies" of the current state per step, `[n_steps + 1, n_terms]` (None without).
    n_rejected: int32[] proposals rejected. diverged: bool[], the initial energy was
    not finite (nothing moves then)."""

    latents: Pytree
    energy_history: jax.Array
    terms: jax.Array | None
    n_rejected: jax.Array
    diverged: jax.Array


def monotone_descent(energy_fn: Callable, latents: Pytree, *, optimizer: optax.GradientTransformation,
                     n_steps: int, shrink: float = 0.5, grow: float = 1.5) -> DescentResult:
    """Minimise `energy_fn(latents, step) -> (E f32[], aux)` with a non-increasing E.

    latents: pytree of float arrays (the initial state). optimizer: optax transformation
    of the list of its leaves (`jax.tree.leaves` order, as `infer` gives it).
    n_steps: static number of proposals. shrink / grow: step-scale factors on rejection /
    acceptance (0 < shrink < 1 <= grow). If aux is a dict with "energies" (f32 `[L]`),
    they are recorded per step. The proposal at step t is scored as `energy_fn(x', t + 1)`
    against `energy_fn(x, t)`: for an energy that depends on `step` (an annealed blur)
    the comparison spans the schedule. Pure and traceable (jit/vmap it).
    """
    if n_steps < 1:
        raise HierarchySpecError(f"n_steps must be >= 1, got {n_steps}")
    if not (0.0 < shrink < 1.0 <= grow):
        raise HierarchySpecError(f"need 0 < shrink < 1 <= grow; got shrink={shrink}, grow={grow}")

    leaves0, treedef = jax.tree.flatten(latents)

    def value_and_grad(x, step):   # x: the list of leaves (optimisers see a flat list, as in infer)
        (e, aux), g = jax.value_and_grad(lambda v: energy_fn(treedef.unflatten(v), step),
                                         has_aux=True)(x)
        return e, aux, g

    def terms_of(aux):
        return aux["energies"] if isinstance(aux, dict) and "energies" in aux else None

    e0, aux0, g0 = value_and_grad(leaves0, jnp.int32(0))
    ok0 = jnp.isfinite(e0)

    def body(carry, t):   # carries only the per-level terms of aux, not its error arrays
        x, opt_state, e, terms, g, alpha, n_rej = carry
        proposed, new_opt = optim.apply(optimizer, g, opt_state, x)
        x_new = jax.tree.map(lambda p, q: (q + alpha * (p - q)).astype(q.dtype), proposed, x)
        e_new, aux_new, g_new = value_and_grad(x_new, t + 1)
        accept = jnp.isfinite(e_new) & (e_new <= e) & ok0
        pick = lambda a, b: jax.tree.map(lambda u, v: jnp.where(accept, u, v), a, b)  # noqa: E731
        alpha = jnp.where(accept, jnp.minimum(1.0, alpha * grow), alpha * shrink).astype(jnp.float32)
        carry = (pick(x_new, x), pick(new_opt, opt_state), jnp.where(accept, e_new, e),
                 pick(terms_of(aux_new), terms), pick(g_new, g), alpha,
                 n_rej + (~accept).astype(jnp.int32))
        return carry, (carry[2], carry[3])

    t0 = terms_of(aux0)
    carry0 = (leaves0, optimizer.init(leaves0), e0, t0, g0, jnp.float32(1.0), jnp.int32(0))
    carry, (history, terms) = jax.lax.scan(body, carry0, jnp.arange(n_steps, dtype=jnp.int32))
    history = jnp.concatenate([e0[None], history])
    terms = None if t0 is None else jnp.concatenate([t0[None], terms])
    return DescentResult(latents=treedef.unflatten(carry[0]), energy_history=history, terms=terms,
                         n_rejected=carry[6], diverged=~ok0)
