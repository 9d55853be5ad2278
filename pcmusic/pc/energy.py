"""The hierarchical Gaussian predictive-coding energy (free energy under Laplace).

Levels run from 0 (bottom, e.g. the observation) to L (top). Map g_l predicts level l
from level l+1; every level is a pytree (dicts of arrays with a leading batch axis):

    E = sum_{l<L} [ 0.5 * sum(pi_l * T_l(z_l - g_l(z_{l+1}))^2) - 0.5 * sum(log pi_l) ]
        + 0.5 * sum(pi_L * (z_L - mu_L)^2) - 0.5 * sum(log pi_L)       (top prior)
        + sum_l prior_l(z_l, step)                                      (extra terms)

(Friston 2005, "A theory of cortical responses", eq. for the Laplace free energy;
Bogacz 2017, "A tutorial on the free-energy framework", eqs. 29-31.) `pi_l = s_l(step) *
exp(log_precision_l)`, with per-leaf log-precisions that are scalar or per unit; T_l is an
optional error transform (e.g. a step-dependent blur: blurring the error is blurring
both sides, since blur is linear). The log-determinant terms appear only when
`learn_precision=True` (otherwise they are constants and the energy is 0 at a perfect
prediction).

Batch convention: the energy SUMS over the batch, so the gradient for one sample's
latents does not depend on the batch size and a latent learning rate means the same at
any batch size. Learning (`pcmusic.pc.learning`) divides by the batch size (mean), so a
parameter learning rate does not depend on it either.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from pcmusic.pc.errors import HierarchySpecError
from pcmusic.pc.maps import Map

Pytree = Any
MapFn = Callable[[Any, Pytree], Pytree]
PriorFn = Callable[[Pytree, jax.Array], jax.Array]
ScheduleFn = Callable[[jax.Array], jax.Array]
TransformFn = Callable[[Pytree, jax.Array], Pytree]


def _per_level(name: str, values: Sequence | None, n_levels: int) -> tuple:
    if values is None or len(values) == 0:
        return (None,) * n_levels
    if len(values) != n_levels:
        raise HierarchySpecError(f"Hierarchy.{name} has {len(values)} entries; give one per level "
                                 f"(n_levels = {n_levels}, None where a level has none)")
    return tuple(values)


@dataclasses.dataclass(frozen=True)
class Hierarchy:
    """Static description of a PC hierarchy (hashable: pass it to `jit` as static).

    maps: L callables `g_l(params_l, z_{l+1}) -> prediction of z_l` (same pytree
        structure and shapes as z_l), or `Map`s from `pcmusic.pc.maps`. n_levels = L + 1.
    priors: per level, None or `prior(z_l, step) -> f32[]` extra energy (summed over the
        batch by the callable), e.g. a roughness penalty on partials.
    precision_schedules: per level, None or `s(step) -> f32[]` multiplying pi_l (annealing).
    error_transforms: per level, None or `T(error_pytree, step) -> pytree` applied to the
        prediction error before precision weighting (e.g. a coarse-to-fine blur).
    error_weights: per level, None or `W(z_l, step) -> pytree` of weights in [0, 1]
        (z_l's structure, each leaf z_l's full shape) that scale the precision of each
        error unit: context-dependent precision, e.g. the audibility of a control, so
        that units whose value the data do not determine carry no weight. The weights
        are read without gradient (lowering a weight is never a way to lower E), and
        the log-determinant counts each unit by its weight (the learned precision of a
        leaf is then its weighted inverse mean-square error).
    learn_precision: include the -0.5 log pi terms so log-precisions can be learned.
    top_prior: include the Gaussian prior 0.5 pi_L ||z_L - mu_L||^2 on the top level.
    """

    maps: tuple
    priors: tuple | None = None
    precision_schedules: tuple | None = None
    error_transforms: tuple | None = None
    error_weights: tuple | None = None
    learn_precision: bool = False
    top_prior: bool = True

    def __post_init__(self):
        if len(self.maps) == 0:
            raise HierarchySpecError("Hierarchy.maps is empty: give at least one map (two levels)")
        fns = tuple(m.apply if isinstance(m, Map) else m for m in self.maps)
        object.__setattr__(self, "maps", fns)
        n = len(fns) + 1
        for name in ("priors", "precision_schedules", "error_transforms", "error_weights"):
            object.__setattr__(self, name, _per_level(name, getattr(self, name), n))

    @property
    def n_levels(self) -> int:
        return len(self.maps) + 1


def init_params(hierarchy: Hierarchy, map_params: Sequence, latents: Sequence, *,
                log_precision: float = 0.0, per_unit: bool = False) -> dict:
    """Assemble the params pytree `{"maps", "log_precision", "top_mean"}`.

    map_params: one params pytree per map (L entries; `{}` or None for fixed maps).
    latents: example latents (one pytree per level, leaves `[batch, ...]`); only shapes are used.
    log_precision: initial log pi for every leaf; `per_unit=True` makes one per unit
        (leaf shape without the batch axis), else one scalar per leaf.
    Returns float32 leaves: log_precision[l] mirrors level l, top_mean mirrors level L per unit.
    """
    if len(map_params) != hierarchy.n_levels - 1:
        raise HierarchySpecError(f"got {len(map_params)} map params for {hierarchy.n_levels - 1} maps")
    check_n_levels(hierarchy, latents)

    def lp(x):
        shape = tuple(x.shape[1:]) if per_unit else ()
        return jnp.full(shape, log_precision, jnp.float32)

    return {"maps": tuple(map_params),
            "log_precision": tuple(jax.tree.map(lp, z) for z in latents),
            "top_mean": jax.tree.map(lambda x: jnp.zeros(x.shape[1:], jnp.float32), latents[-1])}


def check_n_levels(hierarchy: Hierarchy, latents: Sequence) -> None:
    if len(latents) != hierarchy.n_levels:
        raise HierarchySpecError(f"got {len(latents)} latent levels for a hierarchy of "
                                 f"{hierarchy.n_levels} levels (one pytree per level, bottom first)")


def _per_sample(lp: jax.Array, err: jax.Array) -> jax.Array:
    """Lift a scalar or per-unit log-precision leaf to broadcast against `[batch, ...]`."""
    if lp.ndim == 0:
        return lp
    fits = lp.ndim == err.ndim - 1 and all(a in (1, b) for a, b in zip(lp.shape, err.shape[1:]))
    if not fits:
        raise HierarchySpecError(f"log-precision leaf of shape {lp.shape} does not fit an error leaf "
                                 f"of shape {err.shape}: use a scalar or the shape without the batch axis")
    return lp[None]


def gaussian_term(error: Pytree, log_precision: Pytree, *, scale: jax.Array | None = None,
                  log_det: bool = False, weights: Pytree | None = None) -> jax.Array:
    """0.5 * sum(w * pi * error^2) [- 0.5 * sum(w * log pi)] over all leaves, f32[].

    error leaves `[batch, ...]`; log_precision leaves scalar or `error.shape[1:]`; `scale`
    (f32[]) multiplies pi; `weights` (optional, error's structure and shapes) weigh
    each unit (w = 1 without). Summed over batch and units.
    """
    errs, treedef = jax.tree.flatten(error)
    lps = treedef.flatten_up_to(log_precision)
    ws = [None] * len(errs) if weights is None else treedef.flatten_up_to(weights)
    total = jnp.float32(0.0)
    for e, lp, w in zip(errs, lps, ws):
        pi = jnp.exp(_per_sample(lp, e))
        if scale is not None:
            pi = pi * scale
        sq = jnp.square(e) if w is None else w * jnp.square(e)
        if pi.ndim == 0:
            # A scalar precision multiplies the sum: broadcasting it over the error makes
            # XLA materialise a full-size array every inference step.
            total = total + 0.5 * pi * jnp.sum(sq)
        else:
            total = total + 0.5 * jnp.sum(pi * sq)
        if log_det and w is None:
            n_batch = e.shape[0]
            total = total - 0.5 * n_batch * jnp.sum(jnp.broadcast_to(lp, e.shape[1:]))
        elif log_det:
            total = total - 0.5 * jnp.sum(w * jnp.broadcast_to(_per_sample(lp, e), e.shape))
    return total


def _subtract(z: Pytree, pred: Pytree, level: int) -> Pytree:
    try:
        return jax.tree.map(jnp.subtract, z, pred)
    except ValueError as err:
        raise HierarchySpecError(f"map {level} predicts a pytree that does not match level {level}: "
                                 f"{err}") from None


def predict(hierarchy: Hierarchy, params: dict, latents: Sequence, level: int) -> Pytree:
    """g_level(params, z_{level+1}): the prediction of level `level` from the one above."""
    return hierarchy.maps[level](params["maps"][level], latents[level + 1])


def energy(hierarchy: Hierarchy, params: dict, latents: Sequence, *, step: jax.Array | int = 0,
           predictions: Sequence | None = None) -> tuple[jax.Array, dict]:
    """Total free energy and its parts.

    latents: n_levels pytrees, leaves float32 `[batch, ...]` (level 0 first).
    step: int32 inference step, passed to schedules, transforms and priors.
    predictions: optional per-level precomputed g_l outputs (None where not given); used
        to compute a clamped level's prediction once, outside the inference loop.
    Returns (E f32[], aux) with aux = {"energies": f32[n_levels] per-level terms (error
    term of level l plus its extra prior; the top prior for level L), "errors": tuple of
    n_levels pytrees z_l - g_l(z_{l+1}) (level L: z_L - mu_L, or None without top prior)}.
    """
    check_n_levels(hierarchy, latents)
    step = jnp.asarray(step, jnp.int32)
    n_top = hierarchy.n_levels - 1
    errors, terms = [], []
    for level in range(hierarchy.n_levels):
        if level < n_top:
            pred = predictions[level] if predictions is not None else None
            if pred is None:
                pred = predict(hierarchy, params, latents, level)
            err = _subtract(latents[level], pred, level)
        elif hierarchy.top_prior:
            err = jax.tree.map(lambda z, mu: z - mu[None], latents[level], params["top_mean"])
        else:
            err = None
        term = jnp.float32(0.0)
        if err is not None:
            transform = hierarchy.error_transforms[level]
            weighted = transform(err, step) if transform is not None else err
            schedule = hierarchy.precision_schedules[level]
            lp = params["log_precision"][level]
            if not hierarchy.learn_precision:
                lp = jax.lax.stop_gradient(lp)
            weigh = hierarchy.error_weights[level]
            unit_weights = None if weigh is None else jax.tree.map(
                jax.lax.stop_gradient, weigh(latents[level], step))
            term = gaussian_term(weighted, lp, scale=None if schedule is None else schedule(step),
                                 log_det=hierarchy.learn_precision, weights=unit_weights)
        prior = hierarchy.priors[level]
        if prior is not None:
            term = term + prior(latents[level], step)
        errors.append(err)
        terms.append(term)
    energies = jnp.stack(terms)
    return jnp.sum(energies), {"energies": energies, "errors": tuple(errors)}
