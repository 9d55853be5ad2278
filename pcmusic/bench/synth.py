"""Benchmark of the oscillator bank against an obviously correct naive bank.

`reference_sinusoids` / `reference_harmonic` implement the conventions of
`pcmusic.dsp.synth` the plain way (DDSP's route): every control materialised at the
audio rate as [..., n_samples, n_partials], the phase a cumulative sum, one sin per
partial and sample, a sum. They take `xp` (numpy or jax.numpy) so the tests can
run them in float64 numpy as ground truth, and the benchmark in float32 JAX as
the naive baseline.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np


def _upsample(x, hop, xp):
    """[..., n_frames, P] -> [..., n_frames*hop, P], linear, last frame held."""
    nxt = xp.concatenate([x[..., 1:, :], x[..., -1:, :]], axis=-2)
    alpha = (xp.arange(hop) / hop).astype(x.dtype).reshape((1,) * (x.ndim - 1) + (hop, 1))
    up = x[..., :, None, :] + alpha * (nxt - x)[..., :, None, :]
    return up.reshape(x.shape[:-2] + (x.shape[-2] * hop, x.shape[-1]))


def reference_sinusoids(freqs_hz, amplitudes, *, sample_rate, hop, xp=np,
                        initial_phase_turns=None, nyquist_taper=0.03):
    """Naive bank: freqs_hz, amplitudes [..., n_frames, P] -> [..., n_frames*hop]."""
    f = xp.abs(freqs_hz)
    prev = xp.concatenate([f[..., :1, :], f[..., :-1, :]], axis=-2)
    nxt = xp.concatenate([f[..., 1:, :], f[..., -1:, :]], axis=-2)
    peak = xp.maximum(xp.maximum(prev, f), nxt)
    nyquist = sample_rate / 2
    s = xp.clip((nyquist - peak) / (nyquist_taper * nyquist), 0.0, 1.0)
    amp = _upsample(amplitudes * (s * s * (3 - 2 * s)), hop, xp)
    freq = _upsample(freqs_hz, hop, xp)
    freq = xp.concatenate([freq, freq[..., -1:, :]], axis=-2)  # the held sample after the end
    increment = (freq[..., :-1, :] + freq[..., 1:, :]) / (2 * sample_rate)
    phase = xp.cumsum(increment, axis=-2) - increment
    if initial_phase_turns is not None:
        phase = phase + initial_phase_turns[..., None, :]
    return xp.sum(amp * xp.sin(2 * np.pi * phase), axis=-1)


def reference_harmonic(f0_hz, amplitudes, *, sample_rate, hop, xp=np, initial_phase_turns=None):
    """Naive harmonic bank: f0_hz [..., n_frames], amplitudes [..., n_frames, H]."""
    k = xp.arange(1, amplitudes.shape[-1] + 1).astype(f0_hz.dtype)
    freqs = f0_hz[..., None] * k.reshape((1,) * f0_hz.ndim + k.shape)
    phase = None
    if initial_phase_turns is not None:
        phase = initial_phase_turns[..., None] * k.reshape((1,) * initial_phase_turns.ndim + k.shape)
    return reference_sinusoids(freqs, amplitudes, sample_rate=sample_rate, hop=hop, xp=xp,
                               initial_phase_turns=phase)


# ----------------------------------------------------------------------------- benchmark

def _controls(n_voices, n_frames, n_harmonics, seed=0):
    """Gliding f0 (100-400 Hz) and decaying random spectra, float32."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(np.log(100.0), np.log(400.0), (n_voices, 1))
    glide = np.linspace(0.0, 1.0, n_frames)[None, :] * rng.uniform(-0.3, 0.3, (n_voices, 1))
    f0 = np.exp(start + glide).astype(np.float32)
    amps = rng.uniform(0.5, 1.0, (n_voices, n_frames, n_harmonics)) / np.arange(1, n_harmonics + 1)
    return f0, (amps / n_harmonics).astype(np.float32)


def _chunked(render, n_chunks):
    """Apply `render(f0, amps)` to voice chunks with lax.map; rematerialise per chunk."""
    import jax
    from jax import lax

    def run(f0, amps):
        if n_chunks == 1:
            return render(f0, amps)
        f0c = f0.reshape((n_chunks, -1) + f0.shape[1:])
        ac = amps.reshape((n_chunks, -1) + amps.shape[1:])
        out = lax.map(jax.checkpoint(lambda a: render(*a)), (f0c, ac))
        return out.reshape((-1,) + out.shape[2:])

    return run


def _bank_rows(label, n_voices, seconds, sample_rate, n_harmonics, n_chunks, repeats):
    import time

    import jax
    import jax.numpy as jnp

    from pcmusic.dsp import synth
    from pcmusic.bench.table import time_call

    hop = sample_rate // 100
    n_frames = int(round(seconds * sample_rate / hop))
    f0, amps = (jnp.asarray(a) for a in _controls(n_voices, n_frames, n_harmonics))
    ours = lambda f, a: synth.harmonic(f, a, sample_rate=sample_rate, hop=hop)  # noqa: E731
    naive = lambda f, a: reference_harmonic(  # noqa: E731
        f, a, sample_rate=sample_rate, hop=hop, xp=jnp)
    banks = [("ours", ours, n_chunks), ("naive", naive, n_chunks)]
    if n_chunks > 1:  # ours also fits in memory whole; show what chunking costs it
        banks.append(("ours", ours, 1))
    n_osc = n_voices * n_frames * hop * n_harmonics
    rows = []
    for pass_name in ("fwd", "fwd+bwd"):
        times = {}
        for bank, render, chunks in banks:
            chunked = _chunked(render, chunks)
            if pass_name == "fwd":
                fn = jax.jit(chunked)
            else:
                fn = jax.jit(jax.grad(lambda f, a: jnp.mean(chunked(f, a) ** 2), argnums=(0, 1)))
            start = time.perf_counter()
            compiled = fn.lower(f0, amps).compile()
            compile_s = time.perf_counter() - start
            seconds_per_call = time_call(lambda: compiled(f0, amps), n_repeats=repeats[bank])
            times.setdefault(bank, seconds_per_call)
            rows.append({
                "config": label, "pass": pass_name, "bank": bank,
                "chunks": chunks, "repeats": repeats[bank], "compile_s": compile_s,
                "time_s": seconds_per_call,
                "osc_samples_per_s": n_osc / seconds_per_call,
                "realtime_x": n_voices * seconds / seconds_per_call,
                "speedup_vs_naive": times["naive"] / seconds_per_call if "naive" in times
                else float("nan"),
            })
        rows[-len(banks)]["speedup_vs_naive"] = times["naive"] / times["ours"]
    return rows


def measure_tone(audio, sample_rate, freq_hz, *, block_s=0.1):
    """Frequency (Hz, by the phase slope of block-wise quadrature fits against
    `freq_hz`) and phase (turns, relative to sin(2 pi freq_hz t) with t = 0 at the
    first sample of the whole render) of a steady sinusoid; `audio` float64 array
    whose first sample sits at `start` samples is given as (start, samples)."""
    start, samples = audio
    samples = np.asarray(samples, np.float64)
    block = int(block_s * sample_rate)
    n_blocks = len(samples) // block
    t = (start + np.arange(n_blocks * block)) / sample_rate
    phases, centres = [], []
    for b in range(n_blocks):
        sl = slice(b * block, (b + 1) * block)
        basis = np.stack([np.sin(2 * np.pi * freq_hz * t[sl]), np.cos(2 * np.pi * freq_hz * t[sl])], 1)
        (c_sin, c_cos), *_ = np.linalg.lstsq(basis, samples[sl], rcond=None)
        phases.append(np.arctan2(c_cos, c_sin) / (2 * np.pi))  # sin(x + 2 pi p)
        centres.append(t[sl].mean())
    phases = np.unwrap(np.array(phases) * 2 * np.pi) / (2 * np.pi)
    slope, offset = np.polyfit(np.array(centres), phases, 1)
    return freq_hz + slope, phases


def _phase_rows(minutes):
    import jax.numpy as jnp

    from pcmusic.dsp import synth

    rows = []
    for sample_rate in (16000, 48000):
        hop = sample_rate // 100
        n_frames = int(minutes * 60 * 100)
        f0 = jnp.full((n_frames,), 440.0, jnp.float32)
        amp = jnp.ones((n_frames, 1), jnp.float32)
        last = slice(-sample_rate, None)
        n_samples = n_frames * hop
        for bank, render in (("ours", synth.harmonic), ("naive float32 cumsum", None)):
            if render is None:
                audio = reference_harmonic(f0, amp, sample_rate=sample_rate, hop=hop, xp=jnp)
            else:
                audio = render(f0, amp, sample_rate=sample_rate, hop=hop)
            tail = np.asarray(audio[last])
            freq, phases = measure_tone((n_samples - sample_rate, tail), sample_rate, 440.0)
            rows.append({"tone": f"440 Hz, {minutes:g} min", "sample_rate": sample_rate,
                         "bank": bank, "cents_error_last_s": 1200 * np.log2(freq / 440.0),
                         "phase_error_turns_at_end": float(phases[-1])})
    return rows


def run(*, quick: bool) -> Iterator[tuple[str, list[dict]]]:
    """Tables, each yielded when done: harmonic bank throughput (ours vs naive) and
    long-render phase accuracy."""
    n_voices = 64 if quick else 1024
    long_s = 2.0 if quick else 10.0
    # The naive bank takes seconds (quick) to minutes (full) per call: time it once.
    repeats = {"ours": 3 if quick else 5, "naive": 1}
    rows = _bank_rows(f"{n_voices} voices x 64 harm x 1 s @ 16 kHz", n_voices, 1.0, 16000, 64,
                      n_chunks=max(1, n_voices // 64), repeats=repeats)
    rows += _bank_rows(f"1 voice x 64 harm x {long_s:g} s @ 48 kHz", 1, long_s, 48000, 64,
                       n_chunks=1, repeats=repeats)
    minutes = 1.0 if quick else 10.0
    title = ("synth: harmonic bank (hop = sample_rate/100); both banks split voices into the "
             "same `chunks` (lax.map + remat); time_s = median wall, compile excluded")
    yield title, rows  # printed before the phase run starts
    yield "synth: phase accuracy of a steady 440 Hz tone (last second)", _phase_rows(minutes)
