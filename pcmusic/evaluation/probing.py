"""Probing: the trajectory of latents, prediction errors and energies during perception.

`probe(audio, sample_rate, model=..., stride=k)` perceives the sound and records,
every k inference steps, per level (sensory, controls, and with a trained model z2,
z3, top): the latents, the prediction errors and the energy terms. Keys of
`Probe.arrays()` (also the keys of `save_npz` files), with R records:

    step                  int32 [R]          inference step of each record
    energy                float32 [R]        total free energy at that state
    energies              float32 [R, L]     per-level terms, in the order of level_names
    level_names           str [L]            "sensory", "controls", ("z2", "z3", "top")
    latents/controls/<k>  [R, 1, ...]        control leaves (log2_f0, log_amp, log_noise, ...)
    latents/<level>       [R, 1, frames, d]  z2, z3, top (trained model only)
    errors/sensory/<n>    [R, 1, frames_n, n/2+1]  phi(x) - phi(synth(c)) at FFT size n
    errors/controls/<k>   [R, 1, ...]        c - g2(z2) (trained model only)
    errors/<level>        [R, 1, ...]        z_l - g(z_{l+1}) (top: top - mean)

`Probe.recompute_energy()` replays the energy from the recorded latents; it equals the
recorded energy (the test of a probe's consistency).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic import checks, files, pc
from pcmusic.model import sensory
from pcmusic.perception import Percept, chunks, make_energy_fn, prepare_batch, resolve_specs, settle_batch
from pcmusic.perception.percept import BYTES_PER_SAMPLE, check_request, percept_of

VOICING_DB = 30.0   # as `pcmusic.perceive`'s default

BASE_LEVELS = ("sensory", "controls")
MODEL_LEVELS = ("z2", "z3", "top")


class Probe(NamedTuple):
    """A recorded perception. trajectory: `pc.infer`'s record (see module docstring);
    percept: the settled `Percept`; context: what `recompute_energy` needs."""

    trajectory: dict
    percept: Percept
    level_names: tuple
    context: dict

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat name -> array mapping (module docstring)."""
        t = self.trajectory
        out = {"step": np.asarray(t["step"]), "energy": np.asarray(t["energy"]),
               "energies": np.asarray(t["energies"]), "level_names": np.asarray(self.level_names)}
        for name, x in t["latents"]["controls"].items():
            out[f"latents/controls/{name}"] = np.asarray(x)
        for name, x in zip(MODEL_LEVELS, t["latents"]["upper"]):
            out[f"latents/{name}"] = np.asarray(x)
        errors = t["errors"]
        for n_fft, e in zip(self.context["sspec"].resolutions, errors[0]):
            out[f"errors/sensory/{n_fft}"] = np.asarray(e)
        if errors[1] is not None:
            for name, e in errors[1].items():
                out[f"errors/controls/{name}"] = np.asarray(e)
        for name, e in zip(MODEL_LEVELS, errors[2:]):
            out[f"errors/{name}"] = np.asarray(e)
        return out

    def recompute_energy(self) -> np.ndarray:
        """float32 [R]: the energy of every recorded state, recomputed from its latents."""
        ctx = self.context
        first = jax.tree.map(lambda x: x[0], self.trajectory["latents"])
        blur0 = sensory.initial_blur_hz(first["controls"], ctx["inference"].blur)
        fn = make_energy_fn(sensory.observe(ctx["audio"], ctx["sspec"]), blur0, cspec=ctx["cspec"],
                            sspec=ctx["sspec"], prior=ctx["prior"], inference=ctx["inference"],
                            model=ctx["model"])
        return np.asarray(jax.jit(lambda t: pc.replay(fn, t))(self.trajectory))


def probe(audio, sample_rate: int, *, model=None, stride: int = 10, n_voices: int | None = None,
          cspec=None, sspec=None, prior=None, inference=None) -> Probe:
    """Perceive `audio` (1-D float) whole, as one clip, and record every `stride` inference steps.

    Arguments as in `pcmusic.perceive`; only the best start's run is kept when the
    inference spec has several octave starts. Memory grows with the clip's length and
    with n_steps / stride.
    """
    stride = checks.integer(stride, "stride", minimum=1)
    n_voices = check_request(model, n_voices, cspec, voicing_db=VOICING_DB)
    cspec, sspec, prior, inference = resolve_specs(model=model, n_voices=n_voices, cspec=cspec, sspec=sspec,
                                                   prior=prior, inference=inference)
    batch, gains, lengths = prepare_batch([audio], sample_rate, cspec=cspec, model=model)
    n_records = inference.n_steps // stride + 1
    checks.check_memory(batch.size * len(inference.octave_starts) * cspec.n_voices
                        * (BYTES_PER_SAMPLE + 64 * n_records),
                        f"probing {batch.shape[1] / cspec.sample_rate:.4g} s with stride {stride}",
                        "a shorter clip or a larger stride")
    result = jax.device_get(settle_batch(jnp.asarray(batch), model, cspec=cspec, sspec=sspec, prior=prior,
                                         inference=inference, record_stride=stride))
    clip = jax.tree.map(lambda a: a[0], result)                       # [n_starts, ...]
    n_frames = batch.shape[1] // cspec.hop
    whole = chunks.Plan(n_frames, (0,), ((0, lengths[0]),), lengths[0])
    percept = percept_of([clip], whole, gain=gains[0], cspec=cspec, voicing_db=VOICING_DB)
    trajectory = jax.tree.map(lambda a: a[int(np.argmin(clip.energy))], clip.trajectory)
    levels = BASE_LEVELS + (MODEL_LEVELS if model is not None else ())
    context = {"audio": jnp.asarray(batch), "cspec": cspec, "sspec": sspec, "prior": prior,
               "inference": inference, "model": model}
    return Probe(trajectory=trajectory, percept=percept, level_names=levels, context=context)


def save_npz(result: Probe, path, *, overwrite: bool = False) -> Path:
    """Write `result.arrays()` to a compressed .npz atomically; refuse to overwrite."""
    path = checks.writable_file(path, "probe output", force=overwrite, suffixes=(".npz",))
    return files.write_npz(path, result.arrays())


