"""Figures of runs, sounds and percepts (matplotlib, Agg backend: no display needed).

Every `save_*` function writes a PNG atomically (a temporary file in the same
directory, then renamed), so an interrupted run never leaves half a figure.
Spectrograms are computed here in numpy (Hann window, dB re the clip's peak), not
with the model's front end: a figure should show the sound, not what the model hears.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.ticker import MaxNLocator

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pcmusic import files


def spectrogram_db(audio, sample_rate: int, *, n_fft: int = 1024, hop: int = 128,
                   floor_db: float = -80.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times_s `[T]`, freqs_hz `[n_fft/2+1]`, magnitude in dB `[n_fft/2+1, T]`, max 0 dB)."""
    x = np.asarray(audio, np.float64).ravel()
    x = np.pad(x, (n_fft // 2, n_fft // 2 + max(0, n_fft - x.size)))
    n_frames = 1 + (x.size - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][:n_frames]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)).T
    db = 20 * np.log10(np.maximum(mag, 1e-12) / max(mag.max(), 1e-12))
    return (np.arange(n_frames) * hop / sample_rate, np.fft.rfftfreq(n_fft, 1 / sample_rate),
            np.maximum(db, floor_db))


def plot_spectrogram(ax, audio, sample_rate: int, *, f_max_hz: float | None = None, title: str = ""):
    times, freqs, db = spectrogram_db(audio, sample_rate)
    ax.pcolormesh(times, freqs, db, shading="auto", cmap="magma", vmin=-80, vmax=0)
    ax.set_ylim(0, f_max_hz or sample_rate / 2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    if title:
        ax.set_title(title)


def save_figure(fig, path) -> Path:
    """Write `fig` as PNG to `path` atomically and close it."""
    path = Path(path)
    fd, tmp = files.mkstemp_beside(path.parent, prefix=f".{path.stem}-", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path


def save_sample(path, audio, sample_rate: int, *, energy: Sequence[float] | None = None,
                title: str = "", listen_energy: Sequence[float] | None = None) -> Path:
    """A generated sound: its spectrogram, and beside it the energy per refinement step
    (and, given `listen_energy`, the heard energy per listening step on a second axis)."""
    if energy is None or len(energy) < 2:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        plot_spectrogram(ax, audio, sample_rate, f_max_hz=min(5000, sample_rate / 2), title=title)
        return save_figure(fig, path)
    fig, (ax, ax_e) = plt.subplots(1, 2, figsize=(11, 3.5), gridspec_kw={"width_ratios": [2, 1]})
    plot_spectrogram(ax, audio, sample_rate, f_max_hz=min(5000, sample_rate / 2), title=title)
    ax_e.plot(np.arange(len(energy)), np.asarray(energy, np.float64), marker=".")
    ax_e.set_xlabel("refinement step")
    ax_e.set_ylabel("free energy")
    ax_e.set_title("energy while refining")
    ax_e.grid(alpha=0.3)
    if listen_energy is not None and len(listen_energy) > 1:
        top = ax_e.twiny()
        ax_l = top.twinx()
        ax_l.plot(np.arange(len(listen_energy)), np.asarray(listen_energy, np.float64), marker="s",
                  color="tab:orange")
        top.xaxis.set_major_locator(MaxNLocator(integer=True))
        top.set_xlabel("listening step", color="tab:orange")
        ax_l.set_ylabel("heard energy", color="tab:orange")
        ax_e.set_title("energy while refining, then listening")
    fig.tight_layout()
    return save_figure(fig, path)


def save_training_curves(path, records: Sequence[dict]) -> Path:
    """Energy per training step and the held-out energy (records as in metrics.jsonl)."""
    train = [r for r in records if r.get("split") == "train" and r.get("energy") is not None]
    evals = [r for r in records if r.get("split") == "eval" and r.get("energy") is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot([r["step"] for r in train], [r["energy"] for r in train], label="training batch")
    if evals:
        ax.plot([r["step"] for r in evals], [r["energy"] for r in evals], "o-", label="held-out")
    ax.set_xlabel("step")   # linear scale: learned precisions' log-determinants can make E < 0
    ax.set_ylabel("free energy per clip (settled)")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def save_pitch_track(path, audio, sample_rate: int, f0_hz, frame_rate_hz: float, *,
                     reference_hz: float | None = None, title: str = "") -> Path:
    """Perceived f0 `[n_voices, n_frames]` (NaN unvoiced) over the sound's spectrogram."""
    f0 = np.atleast_2d(np.asarray(f0_hz, np.float64))
    fig, (ax, ax_c) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    top = np.nanmax(f0) if np.isfinite(f0).any() else 1000.0
    plot_spectrogram(ax, audio, sample_rate, f_max_hz=min(sample_rate / 2, 8 * top), title=title)
    times = np.arange(f0.shape[1]) / frame_rate_hz
    for v, track in enumerate(f0):
        ax.plot(times, track, color="cyan", lw=1.5, label="perceived f0" if v == 0 else None)
        ax_c.plot(times, track, lw=1.5, label=f"voice {v + 1}")
    if reference_hz is not None:
        ax_c.axhline(reference_hz, color="k", ls="--", lw=1, label=f"nominal {reference_hz:.2f} Hz")
    ax.legend(loc="upper right")
    ax_c.set_xlabel("time (s)")
    ax_c.set_ylabel("f0 (Hz)")
    ax_c.set_title("pitch track")
    ax_c.grid(alpha=0.3)
    ax_c.legend()
    return save_figure(fig, path)
