"""What a model has met: running statistics of its settled states, for sampling.

PC learning settles each clip's top far inside the unit-variance inference prior
(MAP inference has no entropy term to spread them), so intents drawn from that prior
are ones the model has never met, and its fixed inference precisions above the
controls are not the spread of its residuals either. Training therefore keeps, next
to the params, exponential moving averages of the mean and s.d. of the settled tops
and of the rms of the settled errors at z2 and z3 (ex-post density estimation, as in
regularised autoencoders, Ghosh et al. 2020); `pcmusic.generation` samples intents
and the levels below them from these. Params from before they existed fall back to
the top prior and the precisions.

Params leaf "intent": {"mean": [1, d_top], "log_std": [1, d_top], "log_residual": [2]}.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def intent_stats(params: dict) -> tuple[jax.Array, jax.Array]:
    """(mean, s.d.) `[1, d_top]` of the intents the model has met: the running statistics
    of the settled tops during training ("intent" params), else the top prior's."""
    if "intent" in params:
        return params["intent"]["mean"], jnp.exp(params["intent"]["log_std"])
    pcp = params["pc"]
    return pcp["top_mean"], jnp.exp(-0.5 * pcp["log_precision"][-1]) * jnp.ones_like(pcp["top_mean"])


def residual_scales(params: dict) -> jax.Array:
    """s.d. `[2]` of the errors at z2 and z3 met in training (running rms of the settled
    errors, "intent" params), else 1/sqrt(pi) of the scalar precisions."""
    if "intent" in params:
        return jnp.exp(params["intent"]["log_residual"])
    return jnp.stack([jnp.exp(-0.5 * jnp.mean(params["pc"]["log_precision"][level])) for level in (1, 2)])


def update_intent_stats(params: dict, upper: tuple, errors: tuple, *, rate: float = 0.02) -> dict:
    """Params with the sampling statistics moved towards a batch's: the mean and s.d. of
    the settled tops `upper[-1]` `[B, 1, d_top]` and the rms of the settled errors at
    z2 and z3 (`errors[1:3]`). Exponential moving averages, no gradient: ex-post
    density estimation of what the model met, which its fixed inference precisions and
    unit-variance top prior do not match (PC settles the tops far inside that prior)."""
    tops = upper[-1]
    mean, std = intent_stats(params)
    batch_mean = jnp.mean(tops[:, 0], axis=0, keepdims=True)
    batch_var = jnp.mean(jnp.square(tops[:, 0] - batch_mean), axis=0, keepdims=True)
    new_mean = (1 - rate) * mean + rate * batch_mean
    new_var = (1 - rate) * (jnp.square(std) + jnp.square(mean - new_mean)) + rate * (
        batch_var + jnp.square(batch_mean - new_mean))
    ms = jnp.stack([jnp.mean(jnp.square(e)) for e in errors[1:3]])
    new_ms = (1 - rate) * jnp.square(residual_scales(params)) + rate * ms
    return dict(params, intent={"mean": new_mean, "log_std": 0.5 * jnp.log(new_var + 1e-12),
                                "log_residual": 0.5 * jnp.log(new_ms + 1e-12)})
