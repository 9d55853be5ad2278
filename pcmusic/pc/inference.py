"""Inference: minimise any energy over latents with an optax optimiser, inside jit.

`infer(energy_fn, latents, optimizer=..., n_steps=...)` runs a `lax.scan` of `n_steps`
gradient steps (or, with `tol`, a bounded `lax.while_loop` that stops at equilibrium).
Every step checks for divergence (non-finite energy, or an energy that rose more than
`divergence_factor` times the initial magnitude). On divergence the result holds the
last state with a good energy (the loop keeps a copy of the last good checked state: a
select over the latents per check, far cheaper than the energy's forward pass), the
first bad step and the level to blame;
`check(result)` turns that into `InferenceDivergence` on the host.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from pcmusic.errors import InferenceDivergence
from pcmusic.pc import clamp as clamp_lib
from pcmusic.pc import optim
from pcmusic.pc import trajectory as traj_lib
from pcmusic.pc.errors import HierarchySpecError

Pytree = Any
EnergyFn = Callable[[Pytree, jax.Array], tuple[jax.Array, Any]]


class InferenceResult(NamedTuple):
    """Outcome of `infer` (leading axes added by vmap stay in front of each field).

    latents: the settled latents (same structure as the input latents).
    energy: f32[] energy of `latents` (evaluated at step `n_steps`); aux: its aux.
    energy_history: f32[n_steps] E(z_t) before update t (NaN for steps not run, not
        checked, or from the first bad step on).
    n_steps: int32[] updates that produced `latents` (fewer than asked with `tol`; on
        divergence the last good checked step: bad_step - 1 when check_every = 1).
    diverged: bool[]; bad_step, bad_level: int32[] (-1 when fine; level -1 if unknown).
    trajectory: None, or the dict described in `pcmusic.pc.trajectory`.
    """

    latents: Pytree
    energy: jax.Array
    aux: Any
    energy_history: jax.Array
    n_steps: jax.Array
    diverged: jax.Array
    bad_step: jax.Array
    bad_level: jax.Array
    trajectory: dict | None


class _Carry(NamedTuple):
    free: list            # the free leaves; they keep moving even past a divergence
    good_free: list       # the free leaves at the last good checked step
    opt_state: Any
    t: jax.Array
    good_t: jax.Array     # last checked step whose energy was fine
    ok: jax.Array
    done: jax.Array
    bad_step: jax.Array
    bad_terms: Any        # per-level energies at the bad step (to blame a level)
    e_ref: jax.Array
    terms_ref: Any
    history: jax.Array
    record: Any


def _select(pred: jax.Array, a: Pytree, b: Pytree) -> Pytree:
    return jax.tree.map(lambda x, y: jnp.where(pred, x, y), a, b)


def _terms(aux: Any) -> jax.Array | None:
    if isinstance(aux, dict) and "energies" in aux:
        return jnp.asarray(aux["energies"], jnp.float32)
    return None


def _is_bad(e: jax.Array, e_ref: jax.Array, factor: float | None) -> jax.Array:
    bad = ~jnp.isfinite(e)
    if factor is not None:
        bad = bad | (e - e_ref > jnp.float32(factor) * (jnp.abs(e_ref) + 1.0))
    return bad


def _blame(terms: jax.Array | None, terms_ref: jax.Array | None) -> jax.Array:
    """Level to blame: the first non-finite term, else the one that grew most."""
    if terms is None:
        return jnp.int32(-1)
    nonfinite = ~jnp.isfinite(terms)
    growth = jnp.where(nonfinite, jnp.inf, terms - terms_ref)
    return jnp.where(nonfinite.any(), jnp.argmax(nonfinite), jnp.argmax(growth)).astype(jnp.int32)


def _rms(grads: list, masks: list) -> jax.Array:
    total, count = jnp.float32(0.0), jnp.float32(0.0)
    for g, m in zip(grads, masks):
        total = total + jnp.sum(jnp.square(g))
        count = count + (jnp.float32(g.size) if m is None else jnp.sum(~m).astype(jnp.float32))
    return jnp.sqrt(total / jnp.maximum(count, 1.0))


def infer(energy_fn: EnergyFn, latents: Pytree, *, optimizer: optax.GradientTransformation,
          n_steps: int, clamp: Pytree = None, tol: float | None = None,
          record_stride: int | None = None, divergence_factor: float | None = 1e3,
          check_every: int = 1) -> InferenceResult:
    """Minimise `energy_fn` over the unclamped latents.

    energy_fn: `(latents, step) -> (energy f32[], aux)`; `step` is a traced int32 (use it
        to anneal precisions or blur). If aux is a dict with "energies" (f32[n_levels]),
        divergence is blamed on a level, and aux is recorded in trajectories.
    latents: any pytree of float32 arrays (the initial state).
    optimizer: optax transformation applied to the latents (e.g. `optax.sgd(0.1)`).
    n_steps: static number of steps (the maximum when `tol` is given).
    clamp: see `pcmusic.pc.clamp` (whole subtrees or element masks that never move).
    tol: stop after step t once the RMS of dE/dz(z_t) over the free entries is <= tol
        (equilibrium); runs a bounded `lax.while_loop`.
    record_stride: record the state every `record_stride` steps (see `trajectory`).
    divergence_factor: flag energies with E_t - E_0 > factor * (|E_0| + 1); None checks
        only for NaN/Inf.
    check_every: evaluate the energy (history, divergence check, `tol`, records) every
        this many steps; the steps between take the gradient only. 1 (default) checks
        every step. Computing the energy costs one extra read of every error per step;
        with k > 1 a divergence is found at the first checked step after it, the last
        good checked state is returned, and `energy_history` is NaN between checks.
        `record_stride` must be a multiple.
    Pure and traceable: call it under `jit` (closing over energy_fn, optimizer and static
    clamps) and `vmap` it over multi-start initial latents.
    """
    if n_steps < 1:
        raise HierarchySpecError(f"n_steps must be >= 1, got {n_steps}")
    if check_every < 1 or (record_stride is not None and record_stride % check_every):
        raise HierarchySpecError(f"check_every={check_every} must be >= 1 and divide "
                                 f"record_stride={record_stride}")
    k = min(check_every, n_steps)
    part = clamp_lib.partition(clamp, latents)
    free0, fixed = clamp_lib.split(part, latents)
    masks = clamp_lib.free_masks(part)

    def full(free):
        return clamp_lib.merge(part, free, fixed)

    def masked(g):
        return [x if m is None else jnp.where(m, jnp.zeros_like(x), x) for x, m in zip(g, masks)]

    def value_and_grad(free, step):
        (e, aux), g = jax.value_and_grad(lambda f: energy_fn(full(f), step), has_aux=True)(free)
        return e, aux, masked(g)

    aux_shape = jax.eval_shape(lambda f: energy_fn(full(f), jnp.int32(0))[1], free0)
    has_terms = isinstance(aux_shape, dict) and "energies" in aux_shape
    n_terms = aux_shape["energies"].shape if has_terms else None
    record0 = None
    if record_stride is not None:
        record0 = traj_lib.allocate(latents, aux_shape, n_steps=n_steps, stride=record_stride)

    def update(free, opt_state, g):
        new, opt_state = optim.apply(optimizer, g, opt_state, free)
        new = [n if m is None else jnp.where(m, x, n) for n, x, m in zip(new, free, masks)]
        return new, opt_state

    def plain_step(free, opt_state, step):
        g = jax.grad(lambda f: energy_fn(full(f), step)[0])(free)
        return update(free, opt_state, masked(g))

    def body(c: _Carry, length: int = k) -> _Carry:
        """One checked step, then `length - 1` gradient-only steps."""
        e, aux, g = value_and_grad(c.free, c.t)
        terms = _terms(aux)
        first = c.t == 0
        e_ref = jnp.where(first, e, c.e_ref)
        terms_ref = None if terms is None else jnp.where(first, terms, c.terms_ref)
        bad = _is_bad(e, e_ref, divergence_factor)
        newly = c.ok & bad
        converged = jnp.bool_(False) if tol is None else _rms(g, masks) <= jnp.float32(tol)
        # The update never waits for the checks: gating it on the energy (a reduction over
        # the whole forward pass) would stop XLA fusing it into the gradient's last pass.
        # A diverged run keeps moving (garbage, never returned); `good_free` keeps the last
        # good checked state.
        good = c.ok & ~bad
        good_free = [jnp.where(good, x, y) for x, y in zip(c.free, c.good_free)]
        new, opt_state = update(c.free, c.opt_state, g)
        for i in range(1, length):  # unchecked steps: gradient only
            new, opt_state = plain_step(new, opt_state, c.t + i)
        valid = jnp.where(good, e, jnp.nan)
        record = c.record
        if record is not None:
            record = traj_lib.write(record, c.t, record_stride, full(c.free), valid, aux)
        return _Carry(free=new, good_free=good_free, opt_state=opt_state, t=c.t + length,
                      good_t=jnp.where(good, c.t, c.good_t), ok=good,
                      done=c.done | converged, bad_step=jnp.where(newly, c.t, c.bad_step),
                      bad_terms=None if terms is None else jnp.where(newly, terms, c.bad_terms),
                      e_ref=e_ref, terms_ref=terms_ref,
                      history=c.history.at[c.t].set(valid), record=record)

    zeros_terms = None if n_terms is None else jnp.zeros(n_terms, jnp.float32)
    init = _Carry(free=free0, good_free=free0, opt_state=optimizer.init(free0), t=jnp.int32(0),
                  good_t=jnp.int32(0), ok=jnp.bool_(True), done=jnp.bool_(False),
                  bad_step=jnp.int32(-1),
                  bad_terms=zeros_terms, e_ref=jnp.float32(0.0), terms_ref=zeros_terms,
                  history=jnp.full((n_steps,), jnp.nan, jnp.float32), record=record0)
    # Blocks of k steps (a shorter last block when k does not divide n_steps).
    n_blocks, n_rest = divmod(n_steps, k)
    if tol is None:
        c, _ = lax.scan(lambda c, _: (body(c), None), init, None, length=n_blocks)
        if n_rest:
            c = body(c, n_rest)
    else:
        c = lax.while_loop(lambda c: (c.t + k <= n_steps) & c.ok & ~c.done, body, init)
        if n_rest:  # at most one more (short) block
            c = lax.while_loop(lambda c: (c.t < n_steps) & c.ok & ~c.done,
                               lambda c: body(c, n_rest), c)

    # The final energy is one forward pass on the latents the loop produced (which a
    # following learning step shares). On divergence (seen in the loop, or made by the
    # updates after the last check) the last good checked state is returned with its
    # energy, evaluated in a `lax.cond` (under vmap both branches run: one more forward
    # pass). No replay loop after the scan: under vmap, a `lax.while_loop` there slows
    # every step of the scan itself on XLA:CPU.
    e, aux = energy_fn(full(c.free), c.t)
    bad_last = c.ok & _is_bad(e, c.e_ref, divergence_factor)
    diverged = ~c.ok | bad_last
    n_done = jnp.where(diverged, c.good_t, c.t)
    terms = _terms(aux)
    bad_level = jnp.int32(-1) if terms is None else jnp.where(
        diverged, _blame(jnp.where(bad_last, terms, c.bad_terms), c.terms_ref), -1)

    free = [jnp.where(diverged, g, x) for g, x in zip(c.good_free, c.free)]
    e, aux = lax.cond(diverged, lambda: energy_fn(full(free), n_done), lambda: (e, aux))
    return InferenceResult(
        latents=full(free), energy=e, aux=aux, energy_history=c.history, n_steps=n_done,
        diverged=diverged, bad_step=jnp.where(bad_last, c.t, c.bad_step), bad_level=bad_level,
        trajectory=None if c.record is None else traj_lib.finish(c.record))


def check(result: InferenceResult) -> InferenceResult:
    """Raise `InferenceDivergence` naming the step and level if any run diverged.

    Works on a single result or one batched by vmap (names the first bad run). Host-side:
    call it outside jit. Returns `result` unchanged when all runs are fine.
    """
    diverged = np.asarray(result.diverged)
    if not diverged.any():
        return result
    index = tuple(int(i) for i in np.argwhere(diverged)[0])
    step = int(np.asarray(result.bad_step)[index])
    level = int(np.asarray(result.bad_level)[index])
    where = f" (run {index} of a batch of shape {diverged.shape})" if diverged.ndim else ""
    level_text = f"level {level}" if level >= 0 else "an unknown level"
    raise InferenceDivergence(
        f"inference diverged at step {step} in {level_text}{where}: the energy became NaN/Inf or "
        f"exploded. The latents were kept at the last good state; lower the latent learning rate, "
        f"lower that level's precision, or clip the updates (optax.clip_by_global_norm).")
