"""Shooting: find the top that predicts given controls, through the top-down maps.

Relaxing the free chain z2, z3, top from the encoder's guess does not climb to the top
that explains the controls in hundreds of steps: the gradient diffuses up one level per
step. Shooting runs Adam on the top alone, with every level below it its top-down
prediction, i.e. min_top E(controls, g(top), top): the gradient reaches the top in one
backward pass through the maps. It starts from several tops and keeps, per clip, the
one of lowest energy.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from pcmusic import intents
from pcmusic.pc import optim


def shoot_upper(model, controls: dict, encoder_top: jax.Array, *, n_steps: int,
                learning_rate: float, top: jax.Array | None = None) -> tuple:
    """(z2, z3, top) for controls `[B, ...]`: the shot top and its predictions below.

    model: a `pcmusic.model.BoundModel`. encoder_top: the amortised guess `[B, 1, d_top]`.
    Starts: the encoder's top, the intent mean (`pcmusic.intents`) and `top` where
    given; each runs `n_steps` of Adam at `learning_rate`.
    """
    n_frames = controls["log2_f0"].shape[-1]
    mean = intents.intent_stats(model.params)[0]
    starts = [encoder_top, jnp.broadcast_to(mean, encoder_top.shape)] + ([] if top is None else [top])

    def energy(t, c):                            # summed over clips; each top moves alone
        _, z2, z3, _ = model.predict_down(t, n_frames)
        return model.upper_energy(c, (z2, z3, t))[0]

    def clip_energies(t):                        # [B]
        one = lambda tt, cc: energy(tt[None], jax.tree.map(lambda x: x[None], cc))  # noqa: E731
        return jax.vmap(one)(t, controls)

    opt = optax.adam(learning_rate)

    def step(carry, _):
        t, state = carry
        t, state = optim.apply(opt, jax.grad(energy)(t, controls), state, t)
        return (t, state), None

    def shoot(t0):
        (t, _), _ = jax.lax.scan(step, (t0, opt.init(t0)), None, length=n_steps)
        return t, clip_energies(t)

    best_top, best = shoot(starts[0])
    for t0 in starts[1:]:   # a loop, not a vmap over starts: a vmap deadlocked sharded training
        t, e = shoot(t0)
        best_top, best = jnp.where((e < best)[:, None, None], t, best_top), jnp.minimum(e, best)
    _, z2, z3, _ = model.predict_down(best_top, n_frames)
    return (z2, z3, best_top)
