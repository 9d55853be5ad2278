"""Leaves of a checkpointed pytree: paths, stored shapes and dtypes, checksums.

Used by `pcmusic.checkpoint` to describe every array it writes (so that restoring
can check structure and catch silently corrupted bytes) and to store typed PRNG keys
as their raw key data.
"""
from __future__ import annotations

import hashlib
from typing import Any

import jax
import numpy as np


def path_str(path) -> str:
    """'0/mu/w' for both a namedtuple and the dict orbax restores it as."""
    return jax.tree_util.keystr(path, simple=True, separator="/")


def is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def digest(x) -> str | None:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return None  # multi-host shards: no single process sees the whole array
    a = np.ascontiguousarray(np.asarray(x))
    h = hashlib.blake2b(f"{a.dtype.str}{a.shape}".encode(), digest_size=16)
    h.update(a.tobytes())
    return h.hexdigest()


def spec(x) -> dict[str, Any]:
    """Shape and dtype as stored (typed keys as their uint32 key data)."""
    if is_key(x):
        data = jax.eval_shape(jax.random.key_data, x)
        return {"shape": list(data.shape), "dtype": str(data.dtype),
                "prng_impl": str(jax.random.key_impl(x)) if isinstance(x, jax.Array) else None}
    if not hasattr(x, "dtype"):
        return {"shape": [], "dtype": str(np.asarray(x).dtype), "python_scalar": True}
    return {"shape": list(x.shape), "dtype": str(np.dtype(x.dtype))}


def storable(state):
    """Typed PRNG keys become raw key data, recorded so that restore can re-wrap them."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, state)


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
        return np.asarray(x).tolist()
    return x
