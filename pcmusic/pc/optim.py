"""One optax update, shielded from the strict dtype-promotion setting.

optax's Adam family computes `decay ** count` with a Python float and an int32 count,
which `jax_numpy_dtype_promotion="strict"` (the project's test setting) rejects. The
engine's own code is strict-clean; only the optimiser's update runs under standard
promotion, and its outputs are cast back to the params' dtypes.
"""
from __future__ import annotations

from typing import Any

import jax
import optax


def apply(optimizer: optax.GradientTransformation, grads: Any, state: Any, params: Any
          ) -> tuple[Any, Any]:
    """(new params, new optimiser state) after one `optimizer` step along `grads`."""
    with jax.numpy_dtype_promotion("standard"):
        updates, state = optimizer.update(grads, state, params)
        new = optax.apply_updates(params, updates)
    return jax.tree.map(lambda n, p: n.astype(p.dtype), new, params), state
