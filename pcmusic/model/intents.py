"""What a model has met: running statistics of its settled states, for sampling.

PC learning settles each clip's top far inside the unit-variance inference prior
(MAP inference has no entropy term to spread them), so intents drawn from that prior
are ones the model has never met, and its fixed inference precisions above the
controls are not the spread of its residuals either. Training therefore keeps, next
to the params, exponential moving averages of the mean and s.d. of the settled tops
and of the rms of the settled errors at z2 and z3 (ex-post density estimation, as in
regularised autoencoders, Ghosh et al. 2020); `pcmusic.generation.sampling` samples
intents and the levels below them from these.

The settled tops of a corpus need not be one Gaussian blob: tops of notes lie on a
curved, clustered set (one cluster per pitch class and register), and the mean of
that set can decode to a sound no training clip resembled. Training therefore also
keeps a bank of the BANK_SIZE latest intents (the settled tops, or the tops shot from
them: `pcmusic.perception.intent_of`), and intents are drawn from a kernel density
estimate over it (a bank entry plus Gaussian noise as wide as the distance to its
NEIGHBOURS-th nearest neighbour in the bank, times `bandwidth`). A run can end by
replacing the ring buffer with intents found under its final params
(`replace_bank`): entries banked a few steps earlier can decode to other pitches once
the maps have moved.

Params leaf "intent": {"mean": [1, d_top], "log_std": [1, d_top], "log_residual": [2],
"bank": [BANK_SIZE, d_top], "bank_count": int32[] (tops written so far)}.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

BANK_SIZE = 256        # settled tops kept for sampling (a ring buffer)
MIN_BANK = 16          # fewer than this written: sample from the Gaussian instead
NEIGHBOURS = 5         # a kernel's width: the distance to this nearest neighbour


def init_intent_params(d_top: int, latent_log_precision) -> dict:
    """The "intent" params of a fresh model: unit Gaussian, residuals 1/sqrt(pi), empty bank."""
    return {"mean": jnp.zeros((1, d_top), jnp.float32), "log_std": jnp.zeros((1, d_top), jnp.float32),
            "log_residual": -0.5 * jnp.asarray(latent_log_precision[:2], jnp.float32),
            "bank": jnp.zeros((BANK_SIZE, d_top), jnp.float32), "bank_count": jnp.int32(0)}


def intent_stats(params: dict) -> tuple[jax.Array, jax.Array]:
    """(mean, s.d.) `[1, d_top]` of the intents the model has met: the running statistics
    of the settled tops during training (unit Gaussian for a fresh model)."""
    return params["intent"]["mean"], jnp.exp(params["intent"]["log_std"])


def residual_scales(params: dict) -> jax.Array:
    """s.d. `[2]` of the errors at z2 and z3 met in training (running rms of the settled
    errors; 1/sqrt(pi) of the fixed precisions for a fresh model)."""
    return jnp.exp(params["intent"]["log_residual"])


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
    intent = dict(params["intent"], mean=new_mean, log_std=0.5 * jnp.log(new_var + 1e-12),
                  log_residual=0.5 * jnp.log(new_ms + 1e-12))
    intent.update(write_bank(intent["bank"], intent["bank_count"], tops[:, 0]))
    return dict(params, intent=intent)


def write_bank(bank: jax.Array, count: jax.Array, tops: jax.Array) -> dict:
    """The ring buffer `bank` `[K, d]` with `tops` `[B, d]` written after `count` earlier ones."""
    k, n = bank.shape[0], tops.shape[0]
    skipped = max(0, n - k)                            # a batch larger than the bank: its last K
    index = (count + skipped + jnp.arange(n - skipped, dtype=jnp.int32)) % k
    return {"bank": bank.at[index].set(tops[skipped:].astype(bank.dtype)), "bank_count": count + n}


def replace_bank(intent: dict, tops) -> dict:
    """The "intent" params with the bank holding only `tops` `[n, d_top]` (the last
    BANK_SIZE of them where n is larger)."""
    tops = jnp.asarray(tops, jnp.float32)
    return dict(intent, **write_bank(jnp.zeros_like(intent["bank"]), jnp.int32(0), tops))


def bank_of(params: dict) -> jax.Array | None:
    """The intents `[n, d_top]` kept in training (most recent BANK_SIZE), or None with
    fewer than MIN_BANK written (host-side: not jit-safe)."""
    intent = params["intent"]
    n = min(int(intent["bank_count"]), intent["bank"].shape[0])
    return None if n < MIN_BANK else intent["bank"][:n]


def knn_bandwidth(points: jax.Array, *, k: int = NEIGHBOURS) -> jax.Array:
    """Per-point Gaussian kernel s.d. `[n]` for a KDE over `points` `[n, d]`: the
    distance to the k-th nearest other point over sqrt(d), so a draw lands about as
    far from its centre as that neighbour (sample-point adaptive kernels: a global
    rule such as Silverman's takes the spread of the whole set and smooths the
    clusters of tops into the gaps between them)."""
    n, d = points.shape
    dist = jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(points[:, None, :] - points[None, :, :]), axis=-1), 0.0))
    kth = jnp.sort(dist, axis=1)[:, min(k, n - 1)]      # column 0 is the point itself
    return kth / np.float32(np.sqrt(d))


def sample_intents(params: dict, key: jax.Array, n: int, *, bandwidth: float = 1.0) -> jax.Array:
    """n intents `[n, 1, d_top]` like those met in training.

    From a kernel density estimate over the bank of settled tops (`bank_of`): a bank
    entry drawn uniformly plus isotropic Gaussian noise of `bandwidth` x its
    `knn_bandwidth`; with fewer than MIN_BANK banked, from the Gaussian of `intent_stats`.
    """
    k_pick, k_noise = jax.random.split(key)
    bank = bank_of(params)
    if bank is None:
        mean, std = intent_stats(params)
        return mean[None] + std[None] * jax.random.normal(k_noise, (n,) + mean.shape, jnp.float32)
    pick = jax.random.randint(k_pick, (n,), 0, bank.shape[0])
    noise = jax.random.normal(k_noise, (n, bank.shape[1]), jnp.float32)
    scale = np.float32(bandwidth) * knn_bandwidth(bank)[pick]
    return (bank[pick] + scale[:, None] * noise)[:, None, :]
