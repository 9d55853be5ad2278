"""Audio of any length as fixed-shape chunks: plan, cut, and stitch the settled controls.

Perception settles fixed-shape pieces so that one compiled program serves every file
length and memory stays bounded. A clip of n_frames control frames is perceived

  * whole, zero-padded to the smallest length of CHUNK_BUCKETS that holds it, when it
    fits in the largest (CHUNK_FRAMES); or
  * as chunks of CHUNK_FRAMES frames that overlap by OVERLAP_FRAMES on each side: chunk
    k starts at frame k * core - OVERLAP_FRAMES (core = CHUNK_FRAMES - 2 OVERLAP_FRAMES)
    and contributes its core frames [OVERLAP_FRAMES, OVERLAP_FRAMES + core), so every
    frame is settled with at least OVERLAP_FRAMES of context on both sides, as inside a
    longer clip.

Frame n of a chunk that starts at frame s is frame s + n of the clip, and sample
(s + n) * hop: chunks start on frame boundaries, so the stitched controls are those of
the clip. With several voices, the voices of consecutive chunks are matched where
they overlap (the permutation with the least power-weighted f0 distance), so a voice
keeps its identity across the seams.
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

CHUNK_FRAMES = 256                 # 2.05 s at 16 kHz and hop 128
OVERLAP_FRAMES = 16                # context on each side of a chunk's core
CHUNK_BUCKETS = (32, 64, 128, CHUNK_FRAMES)   # lengths of clips perceived whole


class Plan(NamedTuple):
    """How one clip is cut. chunk_frames: frames per chunk; starts: first frame of each
    chunk (may be negative: zero padding); keep: (first, stop) frames of each chunk
    that the stitched clip takes, in chunk coordinates; n_frames: the clip's frames."""

    chunk_frames: int
    starts: tuple[int, ...]
    keep: tuple[tuple[int, int], ...]
    n_frames: int


def plan(n_frames: int, *, multiple: int = 1) -> Plan:
    """The chunks of a clip of `n_frames` control frames; chunk lengths are multiples of
    `multiple` (a model's frames per top-level frame)."""
    if n_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {n_frames}")
    for bucket in CHUNK_BUCKETS:
        length = -(-bucket // multiple) * multiple
        if n_frames <= length:
            return Plan(length, (0,), ((0, n_frames),), n_frames)
    length = -(-CHUNK_FRAMES // multiple) * multiple
    core = length - 2 * OVERLAP_FRAMES
    n_chunks = -(-n_frames // core)
    starts = tuple(k * core - OVERLAP_FRAMES for k in range(n_chunks))
    keep = tuple((OVERLAP_FRAMES, OVERLAP_FRAMES + min(core, n_frames - k * core)) for k in range(n_chunks))
    return Plan(length, starts, keep, n_frames)


def cut(audio: np.ndarray, chunk_plan: Plan, *, hop: int) -> np.ndarray:
    """The chunks of float32 audio `[n_samples]`: `[n_chunks, chunk_frames * hop]`,
    zero outside the clip."""
    length = chunk_plan.chunk_frames * hop
    out = np.zeros((len(chunk_plan.starts), length), np.float32)
    for row, start in zip(out, chunk_plan.starts):
        lo, hi = start * hop, start * hop + length
        a, b = max(lo, 0), min(hi, audio.shape[0])
        if b > a:
            row[a - lo: b - lo] = audio[a:b]
    return out


def voice_order(previous: dict, current: dict, *, overlap: int) -> tuple[int, ...]:
    """The order of `current`'s voices that continues `previous`'s: controls of two
    consecutive chunks (`log2_f0` `[V, F]`, `log_amp` `[V, F, H]`, no batch axis) whose last
    / first `2 * overlap` frames cover the same span of the clip."""
    n_voices = previous["log2_f0"].shape[0]
    if n_voices == 1:
        return (0,)
    width = 2 * overlap
    f_prev, f_cur = previous["log2_f0"][:, -width:], current["log2_f0"][:, :width]
    p_prev = np.sum(np.exp(2.0 * previous["log_amp"][:, -width:]), axis=-1)
    p_cur = np.sum(np.exp(2.0 * current["log_amp"][:, :width]), axis=-1)

    def cost(i, j):
        return float(np.sum(np.sqrt(p_prev[i] * p_cur[j]) * np.abs(f_prev[i] - f_cur[j])))

    if n_voices <= 5:
        return min(itertools.permutations(range(n_voices)),
                   key=lambda order: sum(cost(i, j) for i, j in enumerate(order)))
    order, free = [], set(range(n_voices))
    for i in range(n_voices):   # greedy beyond 5 voices (120 permutations)
        j = min(free, key=lambda j: cost(i, j))
        order.append(j)
        free.remove(j)
    return tuple(order)


def _reordered(c: dict, order) -> dict:
    return {k: (v[list(order)] if k != "log_noise" else v) for k, v in c.items()}


def voice_orders(chunk_controls: list[dict]) -> list[tuple[int, ...]]:
    """Per chunk, the order of its voices that continues the clip's voices (the first
    chunk's order is the identity); controls as in `stitch`."""
    orders = [tuple(range(chunk_controls[0]["log2_f0"].shape[0]))]
    previous = chunk_controls[0]
    for c in chunk_controls[1:]:
        orders.append(voice_order(previous, c, overlap=OVERLAP_FRAMES))
        previous = _reordered(c, orders[-1])
    return orders


def stitch(chunk_controls: list[dict], chunk_plan: Plan, orders: list | None = None) -> dict:
    """The clip's controls (leaves with a batch axis of 1, frames cut to the clip) from
    each chunk's settled controls (leaves without a batch axis: `log2_f0` `[V, F]`,
    `log_amp` `[V, F, H]`, `log_noise` `[F, B]`, `log_inharm` `[V]`), the voices of
    chunk k taken in `orders[k]` (default: `voice_orders`)."""
    orders = voice_orders(chunk_controls) if orders is None else orders
    ordered = [_reordered(c, order) for c, order in zip(chunk_controls, orders)]
    out = {}
    for name in ordered[0]:
        if name == "log_inharm":
            out[name] = np.median(np.stack([c[name] for c in ordered]), axis=0)[None]
            continue
        axis = 0 if name == "log_noise" else 1
        pieces = [np.take(c[name], np.arange(a, b), axis=axis) for c, (a, b) in zip(ordered, chunk_plan.keep)]
        out[name] = np.concatenate(pieces, axis=axis)[None]
    return out
