"""Voicing: in which frames a voice sounds.

A voice is voiced in a frame where its partials' power is within `voicing_db` of the
loudest power of that voice within WINDOW_S around the frame, above MIN_VOICED_POWER
(-40 dB re the reference level), and above the noise part's power; the decision is
then smoothed by a running median over SMOOTH_FRAMES frames.
"""
from __future__ import annotations

import numpy as np

from pcmusic.model import sensory

MIN_VOICED_POWER = (sensory.REFERENCE_RMS * 1e-2) ** 2
WINDOW_S = 1.0         # loudness is judged against the loudest within this window
SMOOTH_FRAMES = 5      # running median of the voicing decision (40 ms at 125 frames/s)


def voiced_frames(power: np.ndarray, noise_power: np.ndarray, *, voicing_db: float,
                  frame_rate_hz: float) -> np.ndarray:
    """bool `[V, F]`: the voiced frames of a voice's partial powers `[V, F]` given the noise
    part's power `[1, F]` (both at the reference level; module docstring)."""
    n_frames = power.shape[-1]
    half = max(1, int(round(0.5 * WINDOW_S * frame_rate_hz)))
    padded = np.pad(power, ((0, 0), (half, half)), mode="edge")
    local_loudest = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=-1).max(-1)
    voiced = ((power >= local_loudest * 10 ** (-voicing_db / 10)) & (power >= MIN_VOICED_POWER)
              & (power >= noise_power))
    k = SMOOTH_FRAMES // 2
    if n_frames > 2 * k:
        padded = np.pad(voiced, ((0, 0), (k, k)), mode="edge")
        voiced = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1, axis=-1), axis=-1) > 0.5
    return voiced
