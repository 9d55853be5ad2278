"""Oddball streams and their statistics: a PC listener's mismatch response.

The paradigm (Naatanen's mismatch negativity, modelled as prediction error by Lieder
et al. 2013, PLoS Comput Biol 9(2) e1002911, and Garrido et al. 2009): a stream of pure tones, a frequent standard and rare deviants, the first
`n_initial` tones standard and never two deviants in a row. A listener that learns
online predicts the standard, so its error after a deviant onset exceeds that after a
standard one; with a larger frequency gap the deviant is further from the prediction,
with rarer deviants the prediction leans more on the standard, repetitions of a new
standard teach it, and an omitted tone leaves an error where sound was predicted.

Layout of a stream: one slot of `soa_frames` frames per tone; within a slot come
`lead_frames` of silence, the tone (`tone_frames`), silence to the end of the slot. The
tone's response window is the slot's first `2 * lead_frames + tone_frames` frames
(choose `lead_frames` >= the STFT's half window in frames, so every frame that hears the
tone lies inside it); the slot's remaining frames hear only silence (the baseline).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.dsp import synth
from pcmusic.errors import PcmusicError


def rare_events(key: jax.Array, *, n_tones: int, probability: float, n_initial: int
                ) -> jax.Array:
    """bool `[n_tones]`: rare events (deviants, omissions) at rate `probability`, none in
    the first `n_initial` slots and never two in a row.

    Forbidding repeats lowers the rate of a plain Bernoulli(q) sequence to q / (1 + q),
    so each allowed slot is drawn with q = probability / (1 - probability): the rate
    over the eligible slots is then `probability` in expectation."""
    if not 0 < probability < 0.5:
        raise PcmusicError(f"rare event probability must lie in (0, 0.5), got {probability}")
    if not 0 <= n_initial < n_tones:
        raise PcmusicError(f"n_initial={n_initial} must lie in [0, n_tones={n_tones})")
    q = jnp.float32(probability / (1.0 - probability))
    draws = jax.random.uniform(key, (n_tones,)) < q

    def step(previous, i):
        now = draws[i] & ~previous & (i >= n_initial)
        return now, now

    return jax.lax.scan(step, jnp.bool_(False), jnp.arange(n_tones))[1]


def tone_controls(freqs_hz, present, *, soa_frames: int, tone_frames: int, lead_frames: int,
                  amplitude: float) -> tuple[jax.Array, jax.Array]:
    """Frame-rate controls of a tone stream for `pcmusic.dsp.synth.sinusoids`.

    freqs_hz float32 `[n_tones]`, present bool `[n_tones]` (False: an omitted tone).
    Returns (freqs_hz, amplitudes), float32 `[n_tones * soa_frames, 1]` each. The
    frequency changes between two silent frames, so no tone glides.
    """
    if not (tone_frames > 0 and lead_frames >= 0 and 2 * lead_frames + tone_frames < soa_frames):
        raise PcmusicError(f"a slot of soa_frames={soa_frames} must hold lead + tone + lead = "
                           f"{2 * lead_frames + tone_frames} frames and a silent rest")
    freqs_hz = jnp.asarray(freqs_hz, jnp.float32)
    frame = np.arange(soa_frames)
    on = jnp.asarray((frame >= lead_frames) & (frame < lead_frames + tone_frames))
    amp = jnp.where(jnp.asarray(present, bool)[:, None] & on[None, :], jnp.float32(amplitude),
                    jnp.float32(0.0))
    # Until the first silent frame after the tone the slot keeps its own frequency, then
    # it takes the next slot's, while silent (controls interpolate linearly between frames).
    nxt = jnp.concatenate([freqs_hz[1:], freqs_hz[-1:]])
    late = jnp.asarray(frame > lead_frames + tone_frames)
    f = jnp.where(late[None, :], nxt[:, None], freqs_hz[:, None])
    return f.reshape(-1, 1), amp.reshape(-1, 1)


def render_stream(freqs_hz, present, *, sample_rate: int, hop: int, soa_frames: int,
                  tone_frames: int, lead_frames: int, amplitude: float) -> jax.Array:
    """Audio float32 `[n_tones * soa_frames * hop]` of a pure-tone stream (see `tone_controls`)."""
    f, a = tone_controls(freqs_hz, present, soa_frames=soa_frames, tone_frames=tone_frames,
                         lead_frames=lead_frames, amplitude=amplitude)
    return synth.sinusoids(f, a, sample_rate=sample_rate, hop=hop)


def slot_means(per_frame, *, soa_frames: int, start: int, stop: int) -> jax.Array:
    """Mean of `per_frame` `[..., n_tones * soa_frames]` over frames [start, stop) of every
    slot: float32 `[..., n_tones]` (e.g. the response window or the silent baseline)."""
    per_frame = jnp.asarray(per_frame, jnp.float32)
    slots = per_frame.reshape(per_frame.shape[:-1] + (-1, soa_frames))
    return jnp.mean(slots[..., start:stop], axis=-1)


def mean_ratio(values, labels, valid) -> jax.Array:
    """mean(values[labels & valid]) / mean(values[~labels & valid]), float32 []."""
    values = jnp.asarray(values, jnp.float32)
    a, b = labels & valid, ~labels & valid
    mean_a = jnp.sum(jnp.where(a, values, 0.0)) / jnp.maximum(jnp.sum(a), 1).astype(jnp.float32)
    mean_b = jnp.sum(jnp.where(b, values, 0.0)) / jnp.maximum(jnp.sum(b), 1).astype(jnp.float32)
    return mean_a / mean_b


def permutation_test(values, labels, *, key: jax.Array, n_permutations: int, valid=None
                     ) -> tuple[jax.Array, jax.Array]:
    """One-sided permutation test that the labelled values have the larger mean.

    values float32 `[n]`, labels bool `[n]` (e.g. deviant), valid bool `[n]` (entries
    taking part, default all). The statistic is `mean_ratio`; labels are shuffled among
    the valid entries. Returns (ratio float32 [], p float32 [] =
    (1 + #{permuted >= observed}) / (1 + n_permutations)) (Phipson & Smyth 2010).
    """
    values = jnp.asarray(values, jnp.float32)
    labels = jnp.asarray(labels, bool)
    valid = jnp.ones_like(labels) if valid is None else jnp.asarray(valid, bool)
    observed = mean_ratio(values, labels, valid)
    # Shuffle only among the valid entries: sort them to the front, permute that block.
    order = jnp.argsort(~valid, stable=True)
    v, lab = values[order], labels[order]
    n_valid = jnp.sum(valid)

    def one(k):
        u = jnp.where(jnp.arange(v.shape[0]) < n_valid, jax.random.uniform(k, v.shape), 2.0)
        perm = jnp.argsort(u)
        return mean_ratio(v, lab[perm], jnp.arange(v.shape[0]) < n_valid)

    permuted = jax.lax.map(one, jax.random.split(key, n_permutations), batch_size=256)
    n_extreme = jnp.sum(permuted >= observed).astype(jnp.float32)
    return observed, (1.0 + n_extreme) / jnp.float32(1 + n_permutations)
