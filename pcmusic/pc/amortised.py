"""Amortised (hybrid) inference: a bottom-up encoder proposes the latents.

Hybrid predictive coding (Tschantz, Millidge, Seth & Buckley 2023, "Hybrid predictive
coding: inferring, fast and slow", PLoS Comput Biol): a fast bottom-up network f_l maps
level l to a guess of level l+1; iterative inference then refines the guess, and each
f_l is trained, locally, to predict the settled level l+1 from the settled level l. The
better the encoder, the fewer inference steps reach a given energy.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax

from pcmusic.pc import optim
from pcmusic.pc.energy import Hierarchy
from pcmusic.pc.errors import HierarchySpecError
from pcmusic.pc.hierarchy import batch_size, settle
from pcmusic.pc.inference import InferenceResult
from pcmusic.pc.learning import learn_step
from pcmusic.pc.maps import Map

Pytree = Any


@dataclasses.dataclass(frozen=True)
class Encoder:
    """Bottom-up maps: `maps[l](params_l, z_l) -> guess of z_{l+1}` (L of them, or `Map`s)."""

    maps: tuple

    def __post_init__(self):
        object.__setattr__(self, "maps", tuple(m.apply if isinstance(m, Map) else m for m in self.maps))


def encode(encoder: Encoder, enc_params: Sequence, bottom: Pytree) -> tuple:
    """Initial latents from the bottom level: (bottom, f_0(bottom), f_1(f_0(bottom)), ...).

    bottom: level-0 pytree, leaves `[batch, ...]`. Returns n_levels = L + 1 pytrees.
    """
    if len(enc_params) != len(encoder.maps):
        raise HierarchySpecError(f"got {len(enc_params)} encoder params for {len(encoder.maps)} maps")
    levels = [bottom]
    for f, p in zip(encoder.maps, enc_params):
        levels.append(f(p, levels[-1]))
    return tuple(levels)


def amortised_loss(encoder: Encoder, enc_params: Sequence, settled: Sequence) -> jax.Array:
    """0.5 * mean over batch of sum_l ||f_l(z*_l) - z*_{l+1}||^2 at the settled latents."""
    settled = jax.lax.stop_gradient(list(settled))
    if len(settled) != len(encoder.maps) + 1:
        raise HierarchySpecError(f"got {len(settled)} settled levels for an encoder of "
                                 f"{len(encoder.maps)} maps (needs {len(encoder.maps) + 1})")
    total = jnp.float32(0.0)
    for level, (f, p) in enumerate(zip(encoder.maps, enc_params)):
        guess = f(p, settled[level])
        diffs = jax.tree.map(lambda g, z: jnp.sum(jnp.square(g - z)), guess, settled[level + 1])
        total = total + 0.5 * sum(jax.tree.leaves(diffs))
    return total / jnp.float32(batch_size(settled))


def amortised_step(encoder: Encoder, enc_params: Sequence, opt_state: Any, settled: Sequence, *,
                   optimizer: optax.GradientTransformation) -> tuple[Any, Any, jax.Array]:
    """One optimiser step on the encoder towards the settled latents: (params, state, loss)."""
    loss, grads = jax.value_and_grad(lambda p: amortised_loss(encoder, p, settled))(enc_params)
    enc_params, opt_state = optim.apply(optimizer, grads, opt_state, enc_params)
    return enc_params, opt_state, loss


def hybrid_train_step(hierarchy: Hierarchy, encoder: Encoder, params: dict, enc_params: Sequence,
                      opt_state: Any, enc_opt_state: Any, bottom: Pytree, *,
                      latent_optimizer: optax.GradientTransformation,
                      param_optimizer: optax.GradientTransformation,
                      encoder_optimizer: optax.GradientTransformation, n_steps: int,
                      **infer_options) -> tuple[dict, Any, Any, Any, InferenceResult]:
    """Hybrid PC in one traceable step: encode, settle (bottom clamped), learn both.

    bottom: level-0 pytree (the observation), leaves `[batch, ...]`. `infer_options` go to
    `settle` (e.g. `check_every`, `tol`). Returns (params, enc_params, opt_state,
    enc_opt_state, result); jit it whole.
    """
    latents = jax.lax.stop_gradient(encode(encoder, enc_params, bottom))
    clamp = (True,) + (False,) * (hierarchy.n_levels - 1)
    result = settle(hierarchy, params, latents, optimizer=latent_optimizer, n_steps=n_steps,
                    clamp=clamp, **infer_options)
    params, opt_state, _ = learn_step(hierarchy, params, opt_state, result.latents,
                                      optimizer=param_optimizer, step=result.n_steps)
    enc_params, enc_opt_state, _ = amortised_step(encoder, enc_params, enc_opt_state, result.latents,
                                                  optimizer=encoder_optimizer)
    return params, enc_params, opt_state, enc_opt_state, result
