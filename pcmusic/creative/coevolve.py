"""The music coevolution: listeners with tastes, likes, genres, the coevolution step.

Minimal criterion coevolution (Brant & Stanley, GECCO 2017; resource limits GECCO 2020;
the generic queues and batch step are `pcmusic.creative.mcc`) between generators and
listeners. A generator is a `Piece` (`pcmusic.creative.pieces`): a looped melody of 2..max_notes notes, each a
pitch in log2 Hz (no note names, no scale), and a timbre (partial stretch k**stretch,
brightness = amplitude ratio of neighbouring partials), rendered by the oscillator bank.
Mutation moves notes by 10-50 cents, inserts or deletes notes, and nudges the timbre.
A listener is a PC listener (`pcmusic.creative.listener`) with a taste: it likes a
piece whose normalised prediction error (settled free energy over the piece's own
spectral variance, a fraction of variance unexplained) lies in its band [low, high]
(predictable, but not too predictable) or, optionally, whose compression progress on
it exceeds a threshold. Listeners learn from the pieces they like, so what they found
interesting becomes predictable and their tastes drift.

Population genomes are plain pytrees with a leading population axis: `Piece` fields
(and the heard frames, so a piece is rendered once) for generators, the listener
params plus `band` for listeners. Everything vmaps and shards along that axis.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.creative import listener as lis
# the generators (re-exported: pieces are the coevolution's domain as much as listeners)
from pcmusic.creative.pieces import (Piece, PieceSpace, mutate_piece, note_controls,  # noqa: F401
                                    piece_type, random_piece, render_piece, render_tone,
                                    type_interval_entropy)
from pcmusic.creative.mcc import MCCState, mcc_batch_step
from pcmusic.errors import ConfigError, PcmusicError


# --- listeners with tastes -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Taste:
    """How listeners judge, mutate and learn (static). A listener likes a piece when its
    normalised error lies in the listener's band, or (if `cp_threshold` is not None)
    when its compression progress on the piece (`cp_learn` steps on the first half,
    the second half held out) exceeds `cp_threshold` nats per frame. Mutation: band
    edges take log-normal steps of `band_sigma`; map weights Gaussian steps of
    `weight_sigma`. Each batch every listener hears one random piece of the queue and
    learns from it (`n_learn` steps) if it likes it."""
    band_sigma: float = 0.1
    band_limits: tuple[float, float] = (0.01, 4.0)
    weight_sigma: float = 0.003
    cp_threshold: float | None = None
    cp_learn: int = 2
    n_learn: int = 2

    def __post_init__(self):
        if not 0 < self.band_limits[0] < self.band_limits[1]:
            raise ConfigError(f"Taste.band_limits must be 0 < low < high, got {self.band_limits}")


def normalised_error(params: dict, frames, *, spec: lis.ListenerSpec) -> jax.Array:
    """Settled free energy per frame over the piece's own spectral variance,
    0.5 pi_0 mean_t ||x_t - mean x||^2 (the fraction of variance left unexplained):
    frames `[..., n_frames, n_bands]` -> float32 `[...]`."""
    frames = jnp.asarray(frames, jnp.float32)
    f = jnp.mean(lis.free_energy(params, frames, spec=spec), axis=-1)
    spread = jnp.mean(jnp.sum(jnp.square(frames - jnp.mean(frames, axis=-2, keepdims=True)),
                              axis=-1), axis=-1)
    return f / (0.5 * jnp.exp(params["log_precision"][0]) * spread + 1e-3)


def likes_one(listener: dict, frames, *, spec: lis.ListenerSpec, taste: Taste) -> jax.Array:
    """Whether one listener `{"params", "band"}` likes one heard piece, bool []."""
    e = normalised_error(listener["params"], frames, spec=spec)
    liked = (e >= listener["band"][0]) & (e <= listener["band"][1])
    if taste.cp_threshold is not None:
        half = frames.shape[-2] // 2
        cp, _ = lis.compression_progress(listener["params"], frames[:half], frames[half:],
                                         spec=spec, n_learn=taste.cp_learn)
        liked = liked | (cp > taste.cp_threshold)
    return liked


def like_matrix(generators: dict, listeners: dict, *, spec: lis.ListenerSpec, taste: Taste
                ) -> jax.Array:
    """likes[g, l], bool `[n_gen, n_lis]`, for genomes with leading population axes
    (generators `{"piece", "frames"}`, listeners `{"params", "band"}`)."""
    one = lambda lst, fr: likes_one(lst, fr, spec=spec, taste=taste)  # noqa: E731
    return jax.vmap(lambda fr: jax.vmap(lambda lst: one(lst, fr))(listeners))(generators["frames"])


def hear_pieces(pieces: Piece, *, space: PieceSpace, spec: lis.ListenerSpec) -> jax.Array:
    """Heard frames float32 `[n, n_frames, n_bands]` of pieces with a leading axis."""
    audio = jax.vmap(lambda p: render_piece(p, space=space, sample_rate=spec.sample_rate,
                                            hop=spec.hop))(pieces)
    return lis.hear(audio, spec=spec)


def mutate_generators(key, parents: dict, *, space: PieceSpace, spec: lis.ListenerSpec) -> dict:
    """Mutated children `{"piece", "frames"}` of generator genomes (leading axis)."""
    keys = jax.random.split(key, parents["frames"].shape[0])
    pieces = jax.vmap(lambda k, p: mutate_piece(k, p, space=space))(keys, parents["piece"])
    return {"piece": pieces, "frames": hear_pieces(pieces, space=space, spec=spec)}


def mutate_listeners(key, parents: dict, *, taste: Taste) -> dict:
    """Mutated children `{"params", "band"}`: log-normal band steps (edges kept in order
    and within `band_limits`), Gaussian steps on the map weights."""
    k_band, k_w = jax.random.split(key)
    log_band = jnp.log(parents["band"]) + taste.band_sigma * jax.random.normal(
        k_band, parents["band"].shape)
    band = jnp.sort(jnp.clip(jnp.exp(log_band), *taste.band_limits), axis=-1)
    leaves, tree = jax.tree.flatten(parents["params"]["maps"])
    noisy = [x + taste.weight_sigma * jax.random.normal(k, x.shape)
             for x, k in zip(leaves, jax.random.split(k_w, len(leaves)))]
    params = {**parents["params"], "maps": jax.tree.unflatten(tree, noisy)}
    return {"params": params, "band": band}


def learn_from_liked(key, listeners: dict, listener_valid, generators: dict, generator_valid, *,
                     spec: lis.ListenerSpec, taste: Taste) -> dict:
    """Every valid listener hears one random valid piece and, if it likes it, learns from
    it (`taste.n_learn` steps). Returns the listeners with new params."""
    n_lis = listener_valid.shape[0]
    logits = jnp.where(generator_valid, 0.0, -jnp.inf)
    picks = jax.random.categorical(key, logits, shape=(n_lis,))

    def one(listener, pick, valid):
        frames = generators["frames"][pick]
        liked = likes_one(listener, frames, spec=spec, taste=taste) & valid
        learned = lis.learn(listener["params"], frames, spec=spec, n_steps=taste.n_learn)
        params = jax.tree.map(lambda new, old: jnp.where(liked, new, old), learned, listener["params"])
        return {**listener, "params": params}

    return jax.vmap(one)(listeners, picks, listener_valid)


def genres(likes, *, generator_valid=None, listener_valid=None) -> int:
    """Number of genres: connected components of the bipartite like-graph (generators and
    listeners as nodes, likes as edges) that hold at least one like. Host-side (numpy)."""
    likes = np.asarray(likes, bool).copy()
    if generator_valid is not None:
        likes &= np.asarray(generator_valid, bool)[:, None]
    if listener_valid is not None:
        likes &= np.asarray(listener_valid, bool)[None, :]
    n_gen, n_lis = likes.shape
    parent = list(range(n_gen + n_lis))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for g, l in zip(*np.nonzero(likes)):
        parent[root(g)] = root(n_gen + l)
    touched = set(np.nonzero(likes.any(axis=1))[0].tolist())
    return len({root(g) for g in touched})


# --- the coevolution ---------------------------------------------------------------------

def develop_on_pieces(params: dict, key, *, space: PieceSpace, spec: lis.ListenerSpec,
                      n_batches: int, n_pieces: int) -> dict:
    """A listener's development: `n_batches` learning steps, each on `n_pieces` random
    pieces (`random_piece`), so it starts out knowing the space but no genre."""
    def body(p, i):
        keys = jax.random.split(jax.random.fold_in(key, i), n_pieces)
        pieces = jax.vmap(lambda k: random_piece(k, space=space))(keys)
        return lis.learn(p, hear_pieces(pieces, space=space, spec=spec), spec=spec, n_steps=1), None

    return jax.lax.scan(body, params, jnp.arange(n_batches))[0]


def coevolution_step(state, key, *, space: PieceSpace, spec: lis.ListenerSpec, taste: Taste,
                     n_gen_children: int, n_lis_children: int, resource_limit,
                     mc_always_true: bool = False):
    """One MCC batch (`pcmusic.creative.mcc.mcc_batch_step` with this module's mutation and
    likes), then every listener learns from a piece it likes (`learn_from_liked`).
    resource_limit: int (may be traced, so runs with different limits vmap together; a
    value above any lifetime, e.g. 2**30, means no limit) or None. Returns (state, info)."""
    k_mcc, k_learn = jax.random.split(key)
    state, info = mcc_batch_step(
        state, k_mcc,
        mutate_gen=lambda k, p: mutate_generators(k, p, space=space, spec=spec),
        mutate_lis=lambda k, p: mutate_listeners(k, p, taste=taste),
        evaluate_likes=lambda k, g, l: like_matrix(g, l, spec=spec, taste=taste),
        n_gen_children=n_gen_children, n_lis_children=n_lis_children,
        resource_limit=resource_limit, mc_always_true=mc_always_true)
    listeners = state.listeners._replace(genomes=learn_from_liked(
        k_learn, state.listeners.genomes, state.listeners.valid, state.generators.genomes,
        state.generators.valid, spec=spec, taste=taste))
    return MCCState(state.generators, listeners), info


def seed_populations(params: dict, key, *, space: PieceSpace, spec: lis.ListenerSpec,
                     taste: Taste, n_generators: int, n_listeners: int, n_pool: int,
                     band_width: tuple[float, float]) -> tuple[dict, dict]:
    """Seeds that meet their MC (Brant & Stanley seed with viable individuals).

    Listeners: copies of `params` whose bands span a random window of quantiles (width
    uniform in `band_width`) of the normalised errors of `n_pool` random pieces. Generators:
    the first `n_generators` pool pieces that at least one listener likes. Listeners
    that do not both like and dislike some generator seed are dropped. Host-side; raises
    PcmusicError if too few seeds are viable. Returns (generator, listener) genomes.
    """
    k_pool, k_u, k_w = jax.random.split(key, 3)
    pieces = jax.vmap(lambda k: random_piece(k, space=space))(jax.random.split(k_pool, n_pool))
    pool = {"piece": pieces, "frames": jax.jit(functools.partial(
        hear_pieces, space=space, spec=spec))(pieces)}
    errors = np.asarray(jax.jit(functools.partial(normalised_error, spec=spec))(params, pool["frames"]))
    width = np.asarray(jax.random.uniform(k_w, (n_listeners,), minval=band_width[0],
                                          maxval=band_width[1]))
    start = np.asarray(jax.random.uniform(k_u, (n_listeners,))) * (1.0 - width)
    band = np.stack([np.quantile(errors, start), np.quantile(errors, start + width)], axis=-1)
    listeners = {"params": jax.tree.map(lambda x: jnp.broadcast_to(x, (n_listeners,) + x.shape),
                                        params),
                 "band": jnp.asarray(band, jnp.float32)}
    likes = np.asarray(jax.jit(functools.partial(like_matrix, spec=spec, taste=taste))(pool, listeners))
    chosen = np.flatnonzero(likes.any(axis=1))[:n_generators]
    viable = likes[chosen].any(axis=0) & (~likes[chosen]).any(axis=0)
    if len(chosen) < n_generators or viable.sum() < 1:
        raise PcmusicError(f"seed_populations: only {len(chosen)} of {n_generators} generator seeds "
                           f"and {int(viable.sum())} listener seeds meet the MC among {n_pool} "
                           "random pieces; raise n_pool or widen band_width")
    take = lambda tree, idx: jax.tree.map(lambda x: x[idx], tree)  # noqa: E731
    return take(pool, chosen), take(listeners, np.flatnonzero(viable))
