"""MODES measures of open-ended dynamics on histories of populations of types.

Dolson, Vostinar, Wiser & Ofria, "The MODES toolbox: Measurements of Open-Ended
Dynamics in Evolving Systems", Artificial Life 25(1), 2019. A *history* is a sequence
of snapshots; a snapshot is the population at one time, given as a sequence of
hashable type ids (one entry per individual, repeats = abundance), a 1-D integer
array (one id per individual) or a 2-D array (one genome row per individual; equal
rows are one type). Measures on the persistent types P_t of each snapshot t:

    change_t      = |P_t \\ P_{t-1}|             (P_{-1} = empty set)
    novelty_t     = |P_t \\ (P_0 u ... u P_{t-1})|
    ecology_t     = Shannon entropy (bits) of the abundances of the types in P_t
    complexity_t  = max over P_t of a user complexity function (NaN if P_t is empty)
    archive_t     = |P_0 u ... u P_t|            (archive growth)

Persistence filter: MODES keeps only lineages that survive `persistence` snapshots
into the future, so that transient types do not count as change. We look back
instead: a type is persistent at t when present in every snapshot t-persistence+1..t.
Both give the same sets shifted by persistence-1 snapshots, and the backward form can
be computed online, at the current snapshot. persistence=1 means no filter.

Set logic runs on the host (numpy, Counters); `knn_novelty` and `mc_pass_rate` are JAX.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.errors import PcmusicError

Snapshot = Sequence[Hashable] | np.ndarray


def type_counts(snapshot: Snapshot) -> Counter:
    """Abundance of each type in one snapshot (2-D array rows become tuples)."""
    if isinstance(snapshot, (np.ndarray, jax.Array)):
        array = np.asarray(snapshot)
        if array.ndim == 2:
            return Counter(map(tuple, array.tolist()))
        if array.ndim != 1:
            raise PcmusicError(f"a snapshot array must be 1-D (type ids) or 2-D (genome rows), "
                               f"got shape {array.shape}")
        return Counter(array.tolist())
    return Counter(snapshot)


def persistent_types(history: Iterable[Snapshot], *, persistence: int = 1) -> list[Counter]:
    """Per snapshot: the abundances of the types present in each of the last
    `persistence` snapshots (this one included). Returns a list of Counters."""
    if persistence < 1:
        raise PcmusicError(f"persistence must be >= 1 snapshot, got {persistence}")
    counts = [type_counts(s) for s in history]
    out = []
    for t, now in enumerate(counts):
        window = counts[max(0, t - persistence + 1):t + 1]
        if len(window) < persistence:
            out.append(Counter())
            continue
        out.append(Counter({x: n for x, n in now.items() if all(x in c for c in window)}))
    return out


def change(history: Iterable[Snapshot], *, persistence: int = 1) -> np.ndarray:
    """|P_t \\ P_{t-1}| per snapshot, int64 `[n_snapshots]` (P_{-1} empty)."""
    sets = [set(c) for c in persistent_types(history, persistence=persistence)]
    return np.array([len(s - p) for p, s in zip([set()] + sets[:-1], sets)], np.int64)


def novelty(history: Iterable[Snapshot], *, persistence: int = 1) -> np.ndarray:
    """|P_t \\ union of all earlier P| per snapshot, int64 `[n_snapshots]`."""
    seen: set = set()
    out = []
    for c in persistent_types(history, persistence=persistence):
        out.append(len(set(c) - seen))
        seen |= set(c)
    return np.array(out, np.int64)


def archive_growth(history: Iterable[Snapshot], *, persistence: int = 1) -> np.ndarray:
    """Size of the archive of all persistent types seen up to t, int64 `[n_snapshots]`."""
    return np.cumsum(novelty(history, persistence=persistence))


def ecology(history: Iterable[Snapshot], *, persistence: int = 1) -> np.ndarray:
    """Shannon entropy in bits of the persistent types' abundances, float64 `[n_snapshots]`
    (0 for one type or none; log2(n) for n equally abundant types)."""
    out = []
    for c in persistent_types(history, persistence=persistence):
        total = sum(c.values())
        out.append(-sum(n / total * math.log2(n / total) for n in c.values()) if total else 0.0)
    return np.array(out, np.float64)


def complexity(history: Iterable[Snapshot], complexity_fn: Callable[[Any], float], *,
               persistence: int = 1) -> np.ndarray:
    """max complexity_fn(type) over the persistent types, float64 `[n_snapshots]`;
    NaN where no type is persistent (undefined, not zero). For 2-D snapshots the
    function receives a genome row as a tuple."""
    return np.array([max(map(complexity_fn, c)) if c else math.nan
                     for c in persistent_types(history, persistence=persistence)], np.float64)


def knn_novelty(features, reference, *, k: int = 15, reference_valid=None,
                exclude_self: bool = False) -> jax.Array:
    """Novelty-search novelty (Lehman & Stanley 2011): mean Euclidean distance from
    each feature vector to its k nearest neighbours in `reference`.

    features: float32 `[n, d]`; reference: float32 `[m, d]` (e.g. population plus a
    fixed-capacity archive); reference_valid: optional bool `[m]`, False rows are
    ignored (empty archive slots). With fewer than k valid rows the mean runs over
    those there are (0 if none). exclude_self: the features are themselves in
    `reference`; drop each one's nearest neighbour (its own zero distance).
    Returns float32 `[n]`. jit-able (k static).
    """
    features = jnp.asarray(features, jnp.float32)
    reference = jnp.asarray(reference, jnp.float32)
    if features.ndim != 2 or reference.ndim != 2 or features.shape[1] != reference.shape[1]:
        raise PcmusicError(f"knn_novelty: need features [n, d] and reference [m, d] with the "
                           f"same d, got {features.shape} and {reference.shape}")
    if reference_valid is None:
        reference_valid = jnp.ones(reference.shape[0], bool)
    diff = features[:, None, :] - reference[None, :, :]
    dist = jnp.sqrt(jnp.sum(diff * diff, axis=-1))
    dist = jnp.where(reference_valid[None, :], dist, jnp.inf)
    n_near = min(k + int(exclude_self), reference.shape[0])
    nearest = -jax.lax.top_k(-dist, n_near)[0]          # ascending distances
    if exclude_self:
        nearest = nearest[:, 1:]
    found = jnp.isfinite(nearest)
    total = jnp.sum(jnp.where(found, nearest, 0.0), axis=-1)
    return total / jnp.maximum(jnp.sum(found, axis=-1), 1).astype(jnp.float32)


def mc_pass_rate(passed, *, valid=None) -> jax.Array:
    """Fraction of candidates that met the minimal criterion, per batch.

    passed: bool `[..., n_candidates]`; valid: optional bool mask of the same shape
    (padding slots excluded). Returns float32 `[...]` in [0, 1] (0 with no candidates).
    """
    passed = jnp.asarray(passed, bool)
    valid = jnp.ones_like(passed) if valid is None else jnp.asarray(valid, bool)
    n_valid = jnp.sum(valid, axis=-1).astype(jnp.float32)
    return jnp.sum(passed & valid, axis=-1).astype(jnp.float32) / jnp.maximum(n_valid, 1.0)
