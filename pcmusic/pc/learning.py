"""Learning: one optax step on the params along -dE/dtheta at the settled latents.

The parameter gradient is that of the energy per sample (E / batch), so a parameter
learning rate does not depend on the batch size; inference sums over the batch
(see `pcmusic.pc.energy`). At equilibrium dE/dz = 0, so the gradient at the settled
latents is the gradient of the free energy bound (Bogacz 2017, eqs. 33-34;
Whittington & Bogacz 2017).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from pcmusic.pc import optim
from pcmusic.pc.energy import Hierarchy, energy
from pcmusic.pc.hierarchy import batch_size, settle
from pcmusic.pc.inference import InferenceResult

Pytree = Any


def param_gradients(hierarchy: Hierarchy, params: dict, latents: Sequence, *,
                    step: jax.Array | int = 0) -> tuple[dict, jax.Array]:
    """(dE/dparams / batch, E / batch) at `latents` (held fixed).

    Gradients w.r.t. log-precisions are zero unless `hierarchy.learn_precision`.
    """
    latents = jax.lax.stop_gradient(list(latents))
    n_batch = jnp.float32(batch_size(latents))

    def per_sample(p):
        return energy(hierarchy, p, latents, step=step)[0] / n_batch

    value, grads = jax.value_and_grad(per_sample)(params)
    return grads, value


def learn_step(hierarchy: Hierarchy, params: dict, opt_state: Any, latents: Sequence, *,
               optimizer: optax.GradientTransformation, step: jax.Array | int = 0
               ) -> tuple[dict, Any, jax.Array]:
    """One optimiser step on `params` at fixed `latents`; returns (params, opt_state, E/batch).

    `opt_state` comes from `optimizer.init(params)`. To train only some entries use
    `freeze_except` (not `optax.masked`, which passes the raw gradient through as the
    update of masked-out leaves).
    """
    grads, value = param_gradients(hierarchy, params, latents, step=step)
    params, opt_state = optim.apply(optimizer, grads, opt_state, params)
    return params, opt_state, value


def freeze_except(optimizer: optax.GradientTransformation, *,
                  trainable: Sequence[str] = ("maps",)) -> optax.GradientTransformation:
    """`optimizer` on the named entries of the params dict; zero updates for the others.

    E.g. `freeze_except(optax.adam(1e-3))` learns the maps and keeps the precisions and
    the top-level mean fixed.
    """
    def labels(params):
        return {k: jax.tree.map(lambda _: "train" if k in trainable else "freeze", v)
                for k, v in params.items()}

    return optax.multi_transform({"train": optimizer, "freeze": optax.set_to_zero()}, labels)


def train_step(hierarchy: Hierarchy, params: dict, opt_state: Any, latents: Sequence, *,
               latent_optimizer: optax.GradientTransformation,
               param_optimizer: optax.GradientTransformation, n_steps: int,
               clamp: Pytree = None, tol: float | None = None,
               record_stride: int | None = None, divergence_factor: float | None = 1e3,
               check_every: int = 1) -> tuple[dict, Any, InferenceResult]:
    """Settle the latents, then one learning step; jit it whole (see `make_train_step`).

    latents: the initial state (clamped levels hold the data). If inference diverged,
    learning uses the last good (finite) state and `result.diverged` is set, so a bad
    batch never writes NaN into the model. Returns (params, opt_state, result).
    """
    result = settle(hierarchy, params, latents, optimizer=latent_optimizer, n_steps=n_steps,
                    clamp=clamp, tol=tol, record_stride=record_stride,
                    divergence_factor=divergence_factor, check_every=check_every)

    # No gate on `result.diverged`: a diverged run returns its last good (finite) state,
    # so the step below is finite, and a cond on the params would be paid on every step.
    # Callers who want to skip such batches check the flag.
    params, opt_state, _ = learn_step(hierarchy, params, opt_state, result.latents,
                                      optimizer=param_optimizer, step=result.n_steps)
    return params, opt_state, result


def make_train_step(hierarchy: Hierarchy, *, latent_optimizer: optax.GradientTransformation,
                    param_optimizer: optax.GradientTransformation, n_steps: int,
                    clamp: Pytree = None, tol: float | None = None,
                    record_stride: int | None = None, divergence_factor: float | None = 1e3,
                    check_every: int = 1, donate: bool = False) -> Callable:
    """A jit-compiled `(params, opt_state, latents) -> (params, opt_state, result)`.

    Everything (inference loop and learning) is one XLA computation: no host work per
    inference step. `donate=True` lets XLA reuse the params/opt_state buffers.
    """
    def step(params, opt_state, latents):
        return train_step(hierarchy, params, opt_state, latents, latent_optimizer=latent_optimizer,
                          param_optimizer=param_optimizer, n_steps=n_steps, clamp=clamp, tol=tol,
                          record_stride=record_stride, divergence_factor=divergence_factor,
                          check_every=check_every)

    return jax.jit(step, donate_argnums=(0, 1) if donate else ())
