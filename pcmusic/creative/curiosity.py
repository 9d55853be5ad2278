"""Curiosity as compression progress: what a PC listener learns from, and a generator
that seeks it.

Schmidhuber (2009, "Driven by compression progress"; 2010, "Formal theory of
creativity, fun, and intrinsic motivation", IEEE TAMD 2(3)): the interestingness of
data is the improvement of the observer's compressor that the data cause. With a PC
listener (`pcmusic.creative.listener`) the coding cost is the settled free energy,
and CP(x) = F(x_heldout; theta_before) - F(x_heldout; theta_after K learning steps on
x_train), inference re-run to convergence both times, on a held-out continuation.

A newborn listener gains most from any sound (it learns loudness levels), so it first
`develop`s: it hears an environment of melodies of every entropy (random walks from
`pcmusic.data.melodies`, random timbres and registers) and noise of random level. The
probes then ask what is interesting to an experienced listener. `sequential_progress`
measures CP on successive new instances of one process (a listener growing familiar with
noise, with looped patterns, ...): what is left once the process itself is known is what
each new instance brings. `motif_audio` makes melodies whose interval entropy is set by
the length of a looped random motif, so entropy and learnable sequential structure vary
together (i.i.d. steps of any entropy have nothing to learn beyond their marginal).

`search` is a data-free generator: a (1, lambda) evolution strategy over `Piece`s
(melody and timbre in Hz, `pcmusic.creative.coevolve`) that keeps the mutant with the
largest CP for the current listener, which then learns from it, so what was
interesting stops being so and the generator moves on.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.dsp import synth
from pcmusic.creative import coevolve as co
from pcmusic.creative import listener as lis
from pcmusic.data.melodies import random_walk, temperature_for_entropy, walk_to_melody
from pcmusic.data.tunings import parse_tuning, scale_frequencies
from pcmusic.errors import ConfigError

_UNIFORM_STEPS = 1e4   # a random-walk temperature at which every step is equally likely


@dataclasses.dataclass(frozen=True)
class Environment:
    """What a listener hears while it develops (static). Each batch holds `n_clips` clips
    of `n_frames` frames: a fraction `noise_fraction` white noise of RMS log-uniform in
    `noise_rms`, the rest melodies of `n_notes` notes on `tuning` in [f_min_hz,
    f_max_hz] whose step entropy is uniform over [0, log2(2 max_step + 1)) bits, with
    random rhythm, stretch and brightness."""
    n_clips: int = 16
    n_frames: int = 64
    n_notes: int = 5
    noise_fraction: float = 0.25
    noise_rms: tuple[float, float] = (0.02, 0.2)
    tuning: str = "12-TET"
    f_min_hz: float = 150.0
    f_max_hz: float = 900.0
    max_step: int = 4
    stretch_range: tuple[float, float] = (0.95, 1.05)
    brightness_range: tuple[float, float] = (0.3, 0.85)
    amplitude: float = 0.3
    gate: float = 0.8
    n_partials: int = 6

    def __post_init__(self):
        if not (0 <= self.noise_fraction < 1 and self.n_clips >= 1 and self.n_notes >= 2):
            raise ConfigError(f"Environment needs 0 <= noise_fraction < 1, n_clips >= 1, n_notes "
                              f">= 2; got {self.noise_fraction}, {self.n_clips}, {self.n_notes}")

    def lattice_hz(self) -> np.ndarray:
        return scale_frequencies(parse_tuning(self.tuning), f_ref_hz=261.6256,
                                 f_min_hz=self.f_min_hz, f_max_hz=self.f_max_hz)

    def temperatures(self, n: int = 32) -> np.ndarray:
        """Temperatures whose step entropies are evenly spaced over the range (host)."""
        return _temperatures(self.max_step, n)


@functools.lru_cache(maxsize=None)
def _temperatures(max_step: int, n: int) -> np.ndarray:
    top = float(np.log2(2 * max_step + 1))
    with jax.ensure_compile_time_eval():  # a host bisection, also when called while tracing
        return np.array([temperature_for_entropy(b, max_step=max_step)
                         for b in np.linspace(0.0, top, n, endpoint=False)], np.float32)


def notes_audio(note_hz, durations_s, *, env: Environment, n_frames: int, spec: lis.ListenerSpec,
                stretch=1.0, brightness=0.7) -> jax.Array:
    """A monophonic line: notes float32 `[n_notes]` (Hz) of durations float32 `[n_notes]`
    (seconds; the last note lasts to the end), each sounding for `env.gate` of its
    duration, rendered over `n_frames` frames: audio float32 `[n_frames * hop]`."""
    durations_s = jnp.asarray(durations_s, jnp.float32)
    n_notes = durations_s.shape[0]
    ends = jnp.cumsum(durations_s)
    t = (jnp.arange(n_frames, dtype=jnp.float32) + 0.5) * jnp.float32(spec.hop / spec.sample_rate)
    note = jnp.clip(jnp.searchsorted(ends, t), 0, n_notes - 1)
    sounding = t - (ends - durations_s)[note] < env.gate * durations_s[note]
    envelope = jnp.where(sounding, jnp.float32(env.amplitude), jnp.float32(0.0))
    return co.render_tone(jnp.asarray(note_hz, jnp.float32)[note], envelope, stretch=stretch,
                          brightness=brightness, n_partials=env.n_partials,
                          sample_rate=spec.sample_rate, hop=spec.hop)


def melody_audio(key, temperature, *, env: Environment, n_notes: int, n_frames: int,
                 spec: lis.ListenerSpec, stretch=1.0, brightness=0.7) -> jax.Array:
    """One random-walk melody (`pcmusic.data.melodies`) at `temperature` filling
    `n_frames` frames (random two-value rhythm): audio float32 `[n_frames * hop]`."""
    seconds = n_frames * spec.hop / spec.sample_rate
    m = walk_to_melody(key, jnp.asarray(env.lattice_hz(), jnp.float32), n_notes=n_notes,
                       temperature=temperature, max_step=env.max_step, seconds=seconds,
                       rest_probability=0.0)
    return notes_audio(m.note_hz, m.durations_s, env=env, n_frames=n_frames, spec=spec,
                       stretch=stretch, brightness=brightness)


def motif_audio(key, n_motif, *, env: Environment, n_notes: int, n_frames: int,
                spec: lis.ListenerSpec, stretch=1.0, brightness=0.7
                ) -> tuple[jax.Array, jax.Array]:
    """A looped random motif: the first `n_motif` notes (int, may be traced) of a
    random walk with uniform steps in [-max_step, max_step] (maximal step entropy,
    `pcmusic.data.melodies`), repeated to `n_notes` isochronous notes over `n_frames`
    frames. n_motif = 1 repeats one pitch (0 bits of interval entropy); n_motif >=
    n_notes never repeats (i.i.d. steps, maximal entropy). Returns (audio float32
    `[n_frames * hop]`, scale degrees int32 `[n_notes]`)."""
    lattice = jnp.asarray(env.lattice_hz(), jnp.float32)
    walk = random_walk(key, n_notes=n_notes, n_degrees=lattice.shape[0],
                       temperature=_UNIFORM_STEPS, max_step=env.max_step)
    degrees = walk[jnp.arange(n_notes) % n_motif]
    durations = jnp.full((n_notes,), n_frames * spec.hop / spec.sample_rate / n_notes, jnp.float32)
    return notes_audio(lattice[degrees], durations, env=env, n_frames=n_frames, spec=spec,
                       stretch=stretch, brightness=brightness), degrees


def heard_interval_entropy(degrees) -> float:
    """Shannon entropy (bits) of the intervals between successive notes of a melody,
    scale degrees `[n_notes]` (host-side plug-in estimate over the notes heard)."""
    _, counts = np.unique(np.diff(np.asarray(degrees)), return_counts=True)
    p = counts / counts.sum()
    return float(max(0.0, -np.sum(p * np.log2(p))))


def tone_pattern_audio(note_hz, *, env: Environment, note_frames: int, n_frames: int,
                       spec: lis.ListenerSpec, brightness=0.7) -> jax.Array:
    """A periodic probe: notes float32 `[n_notes]` (Hz), `note_frames` frames each
    without gaps, looped over `n_frames` frames (one note: a constant tone), in the
    environment's timbre. Audio float32 `[n_frames * hop]`."""
    note_hz = jnp.asarray(note_hz, jnp.float32)
    f0 = note_hz[(jnp.arange(n_frames) // note_frames) % note_hz.shape[0]]
    envelope = jnp.full((n_frames,), env.amplitude, jnp.float32)
    return co.render_tone(f0, envelope, stretch=1.0, brightness=brightness,
                          n_partials=env.n_partials, sample_rate=spec.sample_rate, hop=spec.hop)


def white_noise(key, rms, *, n_frames: int, spec: lis.ListenerSpec) -> jax.Array:
    """White noise float32 `[n_frames * hop]` of RMS `rms` (`pcmusic.dsp.synth.filtered_noise`)."""
    magnitudes = jnp.full((n_frames, 8), 1.0, jnp.float32) * jnp.asarray(rms, jnp.float32)
    return synth.filtered_noise(magnitudes, hop=spec.hop, key=key)


def environment_frames(key, *, env: Environment, spec: lis.ListenerSpec) -> jax.Array:
    """One batch of the development environment, heard: float32 `[n_clips, n_frames, n_bands]`."""
    ks = jax.random.split(key, 6)
    temps = jnp.asarray(env.temperatures())
    t = temps[jax.random.randint(ks[0], (env.n_clips,), 0, temps.shape[0])]
    stretch = jax.random.uniform(ks[1], (env.n_clips,), minval=env.stretch_range[0],
                                 maxval=env.stretch_range[1])
    bright = jax.random.uniform(ks[2], (env.n_clips,), minval=env.brightness_range[0],
                                maxval=env.brightness_range[1])
    melodies = jax.vmap(lambda k, tt, s, b: melody_audio(
        k, tt, env=env, n_notes=env.n_notes, n_frames=env.n_frames, spec=spec, stretch=s,
        brightness=b))(jax.random.split(ks[3], env.n_clips), t, stretch, bright)
    lo, hi = np.log(env.noise_rms[0]), np.log(env.noise_rms[1])
    rms = jnp.exp(jax.random.uniform(ks[4], (env.n_clips,), minval=lo, maxval=hi))
    noise = jax.vmap(lambda k, r: white_noise(k, r, n_frames=env.n_frames, spec=spec))(
        jax.random.split(ks[5], env.n_clips), rms)
    is_noise = jnp.arange(env.n_clips) < round(env.noise_fraction * env.n_clips)
    return lis.hear(jnp.where(is_noise[:, None], noise, melodies), spec=spec)


def develop(params: dict, key, *, env: Environment, spec: lis.ListenerSpec, n_batches: int
            ) -> dict:
    """`n_batches` learning steps, each on a fresh environment batch (key folded with the
    batch index). Returns the experienced listener's params."""
    def body(p, i):
        frames = environment_frames(jax.random.fold_in(key, i), env=env, spec=spec)
        return lis.learn(p, frames, spec=spec, n_steps=1), None

    return jax.lax.scan(body, params, jnp.arange(n_batches))[0]


def repeated_progress(params: dict, train, heldout, *, spec: lis.ListenerSpec, n_learn: int,
                      n_repetitions: int) -> jax.Array:
    """CP of the same (train, heldout) pair on each of `n_repetitions` hearings, the
    listener keeping what it learned: float32 `[n_repetitions]`."""
    def body(p, _):
        cp, p = lis.compression_progress(p, train, heldout, spec=spec, n_learn=n_learn)
        return p, cp

    return jax.lax.scan(body, params, None, length=n_repetitions)[1]


def sequential_progress(params: dict, train, heldout, *, spec: lis.ListenerSpec, n_learn: int
                        ) -> tuple[dict, jax.Array]:
    """CP of successive instances, the listener keeping what it learned from each:
    train `[n_instances, n_train, n_bands]`, heldout `[n_instances, n_heldout, n_bands]`
    (each held-out segment continues its training segment). Returns (params after,
    float32 `[n_instances]`). With instances of one process (fresh noise, new looped
    patterns) the CP of later instances is what a listener that already knows the
    process gains from a new instance of it."""
    def body(p, pair):
        cp, p = lis.compression_progress(p, pair[0], pair[1], spec=spec, n_learn=n_learn)
        return p, cp

    return jax.lax.scan(body, params, (jnp.asarray(train, jnp.float32),
                                       jnp.asarray(heldout, jnp.float32)))


class SearchTrace(NamedTuple):
    """Per generation: the chosen piece (fields `[n_generations, ...]`), its CP and the
    listener's mean free energy on it before learning from it (float32 `[n_generations]`)."""
    pieces: co.Piece
    progress: jax.Array
    free_energy: jax.Array


def search(params: dict, piece: co.Piece, key, *, spec: lis.ListenerSpec, space: co.PieceSpace,
           n_generations: int, n_mutants: int, n_learn: int) -> tuple[dict, SearchTrace]:
    """Data-free CP maximisation by a (1, lambda) evolution strategy.

    Each generation renders `n_mutants` mutants of the current piece, measures each one's
    CP for the current listener (first half of the looped piece to learn from, second
    half held out), keeps the best as the new current piece (the parent is not kept:
    what was interesting must keep earning its place) and lets the listener learn from
    it (`n_learn` steps on the whole clip). Returns (listener params, SearchTrace).
    """
    half = space.n_frames // 2

    def heard(p):
        return lis.hear(co.render_piece(p, space=space, sample_rate=spec.sample_rate,
                                        hop=spec.hop), spec=spec)

    def progress(params, frames):
        return lis.compression_progress(params, frames[:half], frames[half:], spec=spec,
                                        n_learn=n_learn)[0]

    def generation(carry, k):
        params, current = carry
        mutants = jax.vmap(lambda kk: co.mutate_piece(kk, current, space=space))(
            jax.random.split(k, n_mutants))
        frames = jax.vmap(heard)(mutants)
        cps = jax.vmap(progress, in_axes=(None, 0))(params, frames)
        best = jnp.argmax(cps)
        chosen = jax.tree.map(lambda x: x[best], mutants)
        f = jnp.mean(lis.free_energy(params, frames[best], spec=spec))
        params = lis.learn(params, frames[best], spec=spec, n_steps=n_learn)
        return (params, chosen), (chosen, cps[best], f)

    (params, _), (pieces, cps, fs) = jax.lax.scan(
        generation, (params, piece), jax.random.split(key, n_generations))
    return params, SearchTrace(pieces, cps, fs)
