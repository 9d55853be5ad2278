"""Below a clamped intent: ancestral samples, and residual coordinates for refinement.

`sample_down` draws (controls, z2, z3) around the top-down prediction of an intent;
`residual_coordinates` re-expresses such a state as each level's departure from its
prediction (whitened by the level's precision), the coordinates generation's refinement
descends its free energy in (`pcmusic.generation.RefineSpec.coordinates`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from pcmusic import intents


def sample_down(model, intent: jax.Array, key: jax.Array, *, n_frames: int,
                temperature: float) -> tuple:
    """Ancestral sample of (controls, z2, z3) below a clamped intent `[B, 1, d_top]`.

    The latent levels are drawn from Gaussians around their predictions,
    z_l ~ N(g_l(z_{l+1}), temperature^2 s_l^2), where s_l is the residual s.d. the
    model met in training (`pcmusic.intents`; 1/sqrt(pi_l) for params without
    it); temperature 0 is the top-down mean. The controls are the mean prediction
    g2(z2): their fine structure in time and across partials is the structural
    prior's (pcmusic.priors), which white noise per frame would violate.
    """
    hierarchy = model.hierarchy(n_frames)
    pcp = model.params["pc"]
    scales = intents.residual_scales(model.params)
    levels = [intent]
    keys = jax.random.split(key, hierarchy.n_levels - 1)
    for level in range(hierarchy.n_levels - 2, -1, -1):
        mean = hierarchy.maps[level](pcp["maps"][level], levels[0])
        leaves, treedef = jax.tree.flatten(mean)
        leaf_keys = jax.random.split(keys[level], len(leaves))
        scale = jnp.float32(temperature) * scales[level - 1] if level > 0 else jnp.float32(0.0)
        drawn = [m + scale * jax.random.normal(k, m.shape, m.dtype) for m, k in zip(leaves, leaf_keys)]
        levels.insert(0, treedef.unflatten(drawn))
    return tuple(levels[:-1])


def residual_coordinates(model, intent, c0, z2, z3):
    """(coordinates, to_direct) of refinement's state (action c0, beliefs c0, z2, z3 under a
    clamped intent `[B, 1, d_top]`): the state in residual coordinates, and the map back
    to {"action", "beliefs": {"controls", "upper": (z2, z3)}}.

    Each belief is its top-down prediction plus a residual, z3 = g(intent) + s3 u3,
    z2 = g3(z3) + s2 u2, c = g2(z2) + e_c, and the action a = c + e_a, with s_l =
    1/sqrt(pi_l) (so level l's own error term is 0.5 ||u_l||^2). F is the same function;
    only the coordinates it is descended in change. In the direct coordinates the chain
    is stiff: moving z2 towards its prediction opens an error at the precise control level
    that the controls, held by what is heard, close only step by step, so a step of useful
    size is rejected and the sampling noise stays; here moving u2 carries c and a with it."""
    pcp = model.params["pc"]
    maps = model.hierarchy(c0["log2_f0"].shape[-1]).maps
    scale = [jnp.exp(-0.5 * pcp["log_precision"][level]) for level in (1, 2)]
    g2 = lambda z: maps[0](pcp["maps"][0], z)  # noqa: E731
    g3 = lambda z: maps[1](pcp["maps"][1], z)  # noqa: E731
    z3_pred = maps[2](pcp["maps"][2], intent)
    coords = {"action": jax.tree.map(jnp.zeros_like, c0),
              "beliefs": {"controls": jax.tree.map(jnp.subtract, c0, g2(z2)),
                          "upper": ((z2 - g3(z3)) / scale[0], (z3 - z3_pred) / scale[1])}}

    def to_direct(coords):
        u2, u3 = coords["beliefs"]["upper"]
        z3_ = z3_pred + scale[1] * u3
        z2_ = g3(z3_) + scale[0] * u2
        c = jax.tree.map(jnp.add, g2(z2_), coords["beliefs"]["controls"])
        return {"action": jax.tree.map(jnp.add, c, coords["action"]),
                "beliefs": {"controls": c, "upper": (z2_, z3_)}}
    return coords, to_direct
