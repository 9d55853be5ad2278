"""Sampling down: intents like those a model met, and ancestral samples below them.

PC learning settles the tops far inside the unit-variance inference prior (MAP
inference has no entropy term to spread them), so intents are drawn from what the model
met in training (`pcmusic.model.intents.sample_intents`), and the levels below an intent
around its top-down prediction with the residual spread met in training.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from pcmusic.model import intents


def sample_intent(model, key: jax.Array, n: int) -> jax.Array:
    """n intents `[n, 1, d_top]` like those the model met in training: a kernel density
    estimate over its bank of intents, or the Gaussian of their running statistics
    (`pcmusic.model.intents.sample_intents`)."""
    return intents.sample_intents(model.params, key, n)


def sample_down(model, intent: jax.Array, key: jax.Array, *, n_frames: int,
                temperature: float) -> tuple:
    """Ancestral sample of (controls, z2, z3) below a clamped intent `[B, 1, d_top]`.

    z_l ~ N(g_l(z_{l+1}), temperature^2 s_l^2), where s_l is the residual s.d. the model
    met in training (`pcmusic.model.intents.residual_scales`); temperature 0 is the
    top-down mean. The controls are the mean prediction g2(z2): their fine structure in
    time and across partials is the structural prior's, which white noise per frame
    would violate.
    """
    scales = intents.residual_scales(model.params)
    levels = [intent]
    keys = jax.random.split(key, 3)
    for level in (2, 1, 0):
        mean = model.predict(level, levels[0], n_frames)
        leaves, treedef = jax.tree.flatten(mean)
        leaf_keys = jax.random.split(keys[level], len(leaves))
        scale = jnp.float32(temperature) * scales[level - 1] if level > 0 else jnp.float32(0.0)
        drawn = [m + scale * jax.random.normal(k, m.shape, m.dtype) for m, k in zip(leaves, leaf_keys)]
        levels.insert(0, treedef.unflatten(drawn))
    return tuple(levels[:-1])
