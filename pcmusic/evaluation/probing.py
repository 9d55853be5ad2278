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

and, from the note level's settling (`pcmusic.perception.notes`; R2 records, every
stride // 2 of its steps, the controls free beneath the notes):

    notes/step, notes/energy, notes/energies   [R2], [R2], [R2, L + 2]
    notes/level_names     str [L + 2]        the levels above, then "notes", "note_prior"
    latents/notes/<k>     [R2, 1, V, N(, K)] onset_s, log_dur, log2_f0, level, timbre, decay, gate
    notes/latents/controls/<k>  [R2, 1, ...] the controls as they move with the notes
    errors/notes/<k>      [R2, 1, V, F(, H)] c - prediction of the notes (log2_f0, log_amp)

`Probe.recompute_energy()` replays the energy from the recorded latents; it equals the
recorded energy (the test of a probe's consistency). `Probe.activations(map_name)`
(`activations`) replays the recorded latents through one of the model's maps and returns
its hidden units' activations at every record, with flax's capture of intermediates,
outside the inference loop.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic import checks, files, pc
from pcmusic.errors import PcmusicError
from pcmusic.model import sensory
from pcmusic.model.maps import MAP_NAMES, control_features, model_maps
from pcmusic.perception import Percept, chunks, make_energy_fn, prepare_batch, resolve_specs, settle_batch
from pcmusic.perception.notes import NOTE_LEVELS, NoteInference
from pcmusic.perception.percept import BYTES_PER_SAMPLE, check_request, percept_of, with_notes

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
        if "notes" in t:
            n = t["notes"]
            out.update({"notes/step": np.asarray(n["step"]), "notes/energy": np.asarray(n["energy"]),
                        "notes/energies": np.asarray(n["energies"]),
                        "notes/level_names": np.asarray(self.level_names + NOTE_LEVELS)})
            for name, x in n["latents"]["notes"].items():
                out[f"latents/notes/{name}"] = np.asarray(x)
            for name, x in n["latents"]["controls"].items():
                out[f"notes/latents/controls/{name}"] = np.asarray(x)
            for name, e in n["errors"][-1].items():
                out[f"errors/notes/{name}"] = np.asarray(e)
        return out

    def recompute_energy(self) -> np.ndarray:
        """float32 [R]: the energy of every recorded state of the first stage (below the
        notes), recomputed from its latents."""
        ctx = self.context
        first = jax.tree.map(lambda x: x[0], self.trajectory["latents"])
        blur0 = sensory.initial_blur_hz(first["controls"], ctx["inference"].blur)
        fn = make_energy_fn(sensory.observe(ctx["audio"], ctx["sspec"]), blur0, cspec=ctx["cspec"],
                            sspec=ctx["sspec"], prior=ctx["prior"], inference=ctx["inference"],
                            model=ctx["model"])
        stage = {k: v for k, v in self.trajectory.items() if k != "notes"}
        return np.asarray(jax.jit(lambda t: pc.replay(fn, t))(stage))

    def activations(self, map_name: str) -> dict[str, np.ndarray]:
        """The hidden activations of the model's map `map_name` at every record:
        `activations(model, trajectory["latents"], map_name)` as numpy, `[R, 1, ...]`."""
        if self.context["model"] is None:
            raise PcmusicError("Probe.activations needs a probe made with a model (probe(..., model=))")
        found = activations(self.context["model"], self.trajectory["latents"], map_name)
        return {name: np.asarray(x) for name, x in found.items()}


def activations(model, latents: dict, map_name: str) -> dict[str, jax.Array]:
    """Replay recorded latents through one map of `model` and return its hidden activations.

    latents: {"controls": control leaves `[R, B, ...]`, "upper": (z2, z3, top), each
      `[R, B, frames, d]`} (a `Probe`'s `trajectory["latents"]`: R records of B clips).
    map_name: one of `pcmusic.model.maps.MAP_NAMES`: g2 (reads z2), g3 (z3), top (the top
      repeated over z3's frames), e2 (`control_features` of the controls), e3 (z2), e_top (z3).
    Returns {path: float32 `[R, B, ...]`}: the output of every method of the map's flax
    module and of its submodules ("hidden": a built-in map's tanh layer, "trunk/__call__"
    its input, "__call__" the map's output), and what the module `sow`s (linen: every
    submodule's output, `capture_intermediates`). Runs the map once on all R * B inputs.
    """
    if map_name not in MAP_NAMES:
        raise PcmusicError(f"map_name must be one of {MAP_NAMES}; got {map_name!r}")
    found = model_maps(model.spec, model.maps)
    the_map = dict(zip(MAP_NAMES, (found.g2, found.g3, found.top, *found.encoder)))[map_name]
    if the_map.intermediates is None:
        raise PcmusicError(f"map {map_name} is not a flax module: it has no intermediates to capture")
    z2, z3, top = latents["upper"]
    n_records, n_clips = z2.shape[:2]
    fold = lambda x: jnp.reshape(x, (n_records * n_clips, *x.shape[2:]))  # noqa: E731
    inputs = {"g2": lambda: fold(z2), "g3": lambda: fold(z3), "e3": lambda: fold(z2),
              "e_top": lambda: fold(z3),
              "top": lambda: jnp.broadcast_to(fold(top), (n_records * n_clips, z3.shape[2], top.shape[-1])),
              "e2": lambda: control_features(jax.tree.map(fold, latents["controls"]))}
    params = dict(zip(MAP_NAMES, (*model.params["pc"]["maps"], *model.params["encoder"])))[map_name]
    hidden = the_map.intermediates(params, inputs[map_name]())
    return {name: jnp.reshape(x, (n_records, n_clips, *x.shape[1:])) for name, x in hidden.items()}


def probe(audio, sample_rate: int, *, model=None, stride: int = 10, n_voices: int | None = None,
          cspec=None, sspec=None, prior=None, inference=None, notes=True) -> Probe:
    """Perceive `audio` (1-D float) whole, as one clip, and record every `stride` inference steps
    (and, with `notes`, every stride // 2 steps of the note level's settling).

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
    note_inference = NoteInference() if notes is True else (notes or None)
    note_trajectory = None
    if note_inference is not None:
        result, settled = with_notes(batch, result, model, note_inference=note_inference, note_prior=None,
                                     voicing_db=VOICING_DB, record_stride=max(1, stride // 2), cspec=cspec,
                                     sspec=sspec, prior=prior, inference=inference)
        note_trajectory = jax.tree.map(lambda a: np.asarray(a)[0], settled.trajectory)
    clip = jax.tree.map(lambda a: a[0], result)                       # [n_starts, ...]
    n_frames = batch.shape[1] // cspec.hop
    whole = chunks.Plan(n_frames, (0,), ((0, lengths[0]),), lengths[0])
    percept = percept_of([clip], whole, gain=gains[0], cspec=cspec, voicing_db=VOICING_DB,
                         note_inference=note_inference)
    trajectory = jax.tree.map(lambda a: a[int(np.argmin(clip.energy))], clip.trajectory)
    if note_trajectory is not None:
        trajectory = dict(trajectory, notes=note_trajectory)
    levels = BASE_LEVELS + (MODEL_LEVELS if model is not None else ())
    context = {"audio": jnp.asarray(batch), "cspec": cspec, "sspec": sspec, "prior": prior,
               "inference": inference, "model": model}
    return Probe(trajectory=trajectory, percept=percept, level_names=levels, context=context)


def save_npz(result: Probe, path, *, overwrite: bool = False) -> Path:
    """Write `result.arrays()` to a compressed .npz atomically; refuse to overwrite."""
    path = checks.writable_file(path, "probe output", force=overwrite, suffixes=(".npz",))
    return files.write_npz(path, result.arrays())


