"""Figures of runs, sounds and percepts, safe in a notebook.

Nothing here touches pyplot or the process's matplotlib backend: every `plot_*`
function returns a `matplotlib.figure.Figure` built without pyplot (a notebook shows
it when it is the cell's value; `fig.savefig` writes it without any backend). A
`plot_*` function that draws one panel takes `ax=` to draw into an axes of the
caller's figure, and then returns that figure.

Every `save_*` function writes a PNG atomically (a temporary file in the same
directory, then renamed), so an interrupted run never leaves half a figure.
Spectrograms are computed here in numpy (Hann window, dB re the clip's peak), not
with the model's front end: a figure should show the sound, not what the model hears.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

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


def _axes(ax, figsize: tuple[float, float]):
    """(figure, axes): the caller's axes and its figure, or one axes on a new Figure."""
    if ax is None:
        ax = Figure(figsize=figsize).add_subplot()
    return ax.figure, ax


def plot_spectrogram(audio, sample_rate: int, *, ax=None, f_max_hz: float | None = None,
                     title: str = "") -> Figure:
    """The spectrogram of float audio `[n_samples]` at `sample_rate` Hz (dB re its peak,
    -80 to 0), 0 to `f_max_hz` (default Nyquist), drawn into `ax` or a new figure;
    returns the figure."""
    fig, ax = _axes(ax, (7, 3.5))
    times, freqs, db = spectrogram_db(audio, sample_rate)
    ax.pcolormesh(times, freqs, db, shading="auto", cmap="magma", vmin=-80, vmax=0)
    ax.set_ylim(0, f_max_hz or sample_rate / 2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    if title:
        ax.set_title(title)
    return fig


def plot_energy(energy: Sequence[float], *, ax=None,
                listen_energy: Sequence[float] | None = None) -> Figure:
    """The free energy per refinement step `[refine_steps + 1]` and, given `listen_energy`
    `[listen steps + 1]`, the heard energy per listening step on twin axes; returns the figure."""
    fig, ax = _axes(ax, (4, 3.5))
    ax.plot(np.arange(len(energy)), np.asarray(energy, np.float64), marker=".")
    ax.set_xlabel("refinement step")
    ax.set_ylabel("free energy")
    ax.set_title("energy while refining")
    ax.grid(alpha=0.3)
    if listen_energy is not None and len(listen_energy) > 1:
        top = ax.twiny()
        ax_l = top.twinx()
        ax_l.plot(np.arange(len(listen_energy)), np.asarray(listen_energy, np.float64), marker="s",
                  color="tab:orange")
        top.xaxis.set_major_locator(MaxNLocator(integer=True))
        top.set_xlabel("listening step", color="tab:orange")
        ax_l.set_ylabel("heard energy", color="tab:orange")
        ax.set_title("energy while refining, then listening")
    return fig


def plot_sample(audio, sample_rate: int, *, energy: Sequence[float] | None = None,
                listen_energy: Sequence[float] | None = None, title: str = "") -> Figure:
    """A generated sound: its spectrogram (to 5 kHz) and, given at least two values of
    `energy`, beside it `plot_energy` of its refinement (and listening)."""
    f_max_hz = min(5000, sample_rate / 2)
    if energy is None or len(energy) < 2:
        return plot_spectrogram(audio, sample_rate, f_max_hz=f_max_hz, title=title)
    fig = Figure(figsize=(11, 3.5))
    ax, ax_e = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    plot_spectrogram(audio, sample_rate, ax=ax, f_max_hz=f_max_hz, title=title)
    plot_energy(energy, ax=ax_e, listen_energy=listen_energy)
    fig.tight_layout()
    return fig


def plot_training_curves(records: Sequence[dict], *, ax=None) -> Figure:
    """Energy per training step and the held-out energy (records as in metrics.jsonl)."""
    fig, ax = _axes(ax, (7, 4))
    train = [r for r in records if r.get("split") == "train" and r.get("energy") is not None]
    evals = [r for r in records if r.get("split") == "eval" and r.get("energy") is not None]
    if train:
        ax.plot([r["step"] for r in train], [r["energy"] for r in train], label="training batch")
    if evals:
        ax.plot([r["step"] for r in evals], [r["energy"] for r in evals], "o-", label="held-out")
    ax.set_xlabel("step")   # linear scale: learned precisions' log-determinants can make E < 0
    ax.set_ylabel("free energy per clip (settled)")
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend()
    return fig


def plot_f0(f0_hz, frame_rate_hz: float, *, ax=None, reference_hz: float | None = None) -> Figure:
    """Perceived f0 `[n_voices, n_frames]` in Hz (NaN unvoiced) against time, one line per
    voice, with an optional dashed reference; returns the figure."""
    fig, ax = _axes(ax, (5, 4))
    f0 = np.atleast_2d(np.asarray(f0_hz, np.float64))
    times = np.arange(f0.shape[1]) / frame_rate_hz
    for v, track in enumerate(f0):
        ax.plot(times, track, lw=1.5, label=f"voice {v + 1}")
    if reference_hz is not None:
        ax.axhline(reference_hz, color="k", ls="--", lw=1, label=f"nominal {reference_hz:.2f} Hz")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("f0 (Hz)")
    ax.set_title("pitch track")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_pitch_track(audio, sample_rate: int, f0_hz, frame_rate_hz: float, *,
                     reference_hz: float | None = None, title: str = "") -> Figure:
    """Perceived f0 `[n_voices, n_frames]` (NaN unvoiced) over the sound's spectrogram,
    and beside it `plot_f0`."""
    f0 = np.atleast_2d(np.asarray(f0_hz, np.float64))
    fig = Figure(figsize=(12, 4))
    ax, ax_c = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    top = np.nanmax(f0) if np.isfinite(f0).any() else 1000.0
    plot_spectrogram(audio, sample_rate, ax=ax, f_max_hz=min(sample_rate / 2, 8 * top), title=title)
    times = np.arange(f0.shape[1]) / frame_rate_hz
    for v, track in enumerate(f0):
        ax.plot(times, track, color="cyan", lw=1.5, label="perceived f0" if v == 0 else None)
    ax.legend(loc="upper right")
    plot_f0(f0, frame_rate_hz, ax=ax_c, reference_hz=reference_hz)
    return fig


def save_figure(fig, path) -> Path:
    """Write `fig` as PNG to `path` atomically. A figure made with pyplot is closed
    afterwards (pyplot keeps it alive otherwise); pyplot itself is never imported here."""
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
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(fig)
    return path


def save_sample(path, audio, sample_rate: int, *, energy: Sequence[float] | None = None,
                title: str = "", listen_energy: Sequence[float] | None = None) -> Path:
    """`plot_sample` written to `path` as PNG."""
    return save_figure(plot_sample(audio, sample_rate, energy=energy, listen_energy=listen_energy,
                                   title=title), path)


def save_training_curves(path, records: Sequence[dict]) -> Path:
    """`plot_training_curves` written to `path` as PNG."""
    return save_figure(plot_training_curves(records), path)


def save_pitch_track(path, audio, sample_rate: int, f0_hz, frame_rate_hz: float, *,
                     reference_hz: float | None = None, title: str = "") -> Path:
    """`plot_pitch_track` written to `path` as PNG."""
    return save_figure(plot_pitch_track(audio, sample_rate, f0_hz, frame_rate_hz,
                                        reference_hz=reference_hz, title=title), path)
