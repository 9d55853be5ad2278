"""The main job (`pcmusic demo`): train, perceive, generate, on the embedded default.

Nothing to download. In `workdir` (default runs/demo):
  1. train/      a small hierarchy trained on synthetic harmonic notes (12-TET,
                 110-880 Hz, half-second clips) for DEMO_STEPS steps: checkpoints,
                 metrics.jsonl, TensorBoard events, training.png;
  2. perceive/   a real instrument note (a clarinet E4 from FluidSynth and a GM
                 soundfont, if installed; else a synthetic note) perceived by the trained
                 network: note.wav, percept.json, pitch_track.png;
  3. generate/   sounds generated from intents like those met in training, refined
                 (REFINE_STEPS), then listened to with the network's own perception and
                 corrected (LISTEN_STEPS, `pcmusic.generation.listening`): sample_i.wav,
                 sample_i_unrefined.wav, sample_i.png (spectrogram, energy per step),
                 sample_i_intent.npz and sample_i_controls.npz (for generate --intent);
  4. notes/      a 5-TET melody (FluidSynth flute with pitch bends, else the oscillator
                 bank) heard as notes by the untrained listener (melody.wav,
                 melody_reference.mid, melody_heard.mid, melody_notes.json), and a
                 phrase generated from a note prior fitted to 5-TET melodies, heard
                 once by its own perception (phrase.wav, phrase.mid);
  5. summary.json and a printed list of what is where.

A workdir is used only if it is empty or new; a previous demo's workdir (it holds
DEMO_MARKER) is reused with `force=True` (`--force`): training resumes from its last
checkpoint (or is already done) and the outputs are overwritten. Anything else is
refused. The model is configs/tiny.toml's with a longer schedule (see `demo_config`).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import jax
import numpy as np

from pcmusic.training.config import Config, config_from_dict
from pcmusic.errors import PcmusicError

DEMO_MARKER = ".pcmusic-demo"
DEMO_STEPS = 200            # ~1.5 min of training on a 2-core CPU (0.4 s per step, quiet)
NOTE_MIDI, NOTE_PROGRAM = 64, "clarinet"    # E4, 329.6 Hz: inside the training range
N_SOUNDS, SOUND_SECONDS, REFINE_STEPS, LISTEN_STEPS = 4, 1.0, 50, 3
PERCEIVE_STEPS = 200        # perception settles longer than training's 30 steps
# A 5-TET melody (degree, duration s, gap s after it): a rest, a legato pair, no 12-TET pitch.
MELODY = ((0, 0.35, 0.05), (2, 0.35, 0.05), (3, 0.3, 0.0), (1, 0.45, 0.25), (4, 0.3, 0.05),
          (2, 0.3, 0.05), (0, 0.6, 0.0))
MELODY_REF_HZ, MELODY_STEP_CENTS = 261.63, 240.0
PHRASE_SECONDS, PHRASE_HEARINGS = 3.0, 1


def demo_config(n_steps: int = DEMO_STEPS) -> Config:
    """configs/tiny.toml's model, data and inference with the demo's schedule
    (tests check that the two differ only in `pcmusic.training.config.SCHEDULE_KEYS`)."""
    return config_from_dict(Config, {
        "model": {"latent_dims": [16, 16, 8], "rate_factors": [4, 4], "hidden": 32, "kernel_size": 5,
                  "controls": {"hop": 128, "n_harmonics": 24, "n_noise_bands": 8,
                               "f0_min_hz": 50.0, "f0_max_hz": 2000.0},
                  "sensory": {"resolutions": [1024, 512, 256]}},
        "data": {"synthetic": "notes", "tuning": "12-TET", "f0_min_hz": 110.0, "f0_max_hz": 880.0,
                 "seconds": 0.5, "n_harmonics": 16},
        "train": {"n_steps": n_steps, "batch_size": 8, "learning_rate": 3e-3,
                  "encoder_learning_rate": 3e-3, "log_every": 5, "eval_every": 50, "n_eval": 8,
                  "sample_every": 0, "ckpt_every": 50, "bank_refresh_clips": 64},
        "inference": {"n_steps": 30}}, source="pcmusic.demo")


def _claim(workdir: Path, force: bool) -> None:
    """Refuse a workdir that holds anything but a previous demo (and that without --force)."""
    if workdir.exists() and not workdir.is_dir():
        raise PcmusicError(f"--workdir {workdir} is a file; give a directory")
    if workdir.is_dir() and any(workdir.iterdir()):
        if not (workdir / DEMO_MARKER).exists():
            raise PcmusicError(f"--workdir {workdir} is not empty and holds no previous demo; "
                               "nothing was touched: choose a new or empty directory")
        if not force:
            raise PcmusicError(f"--workdir {workdir} holds a previous demo; pass --force to resume its "
                               "training and overwrite its outputs, or choose another --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / DEMO_MARKER).write_text("made by `pcmusic demo`; `pcmusic demo --force` may reuse it\n")


def _note(sample_rate: int) -> tuple[np.ndarray, str, float]:
    """(audio, description, nominal f0 in Hz): a real instrument if FluidSynth can play one."""
    from pcmusic.data import fluid

    if fluid.available():
        note = fluid.Note(program=fluid.GM_PROGRAMS[NOTE_PROGRAM], pitches=(NOTE_MIDI,), duration_s=0.8)
        audio = fluid.render_notes([note], sample_rate=sample_rate, release_s=0.2)[0]
        return audio, f"{NOTE_PROGRAM} MIDI {NOTE_MIDI} (FluidSynth)", float(fluid.midi_to_hz(NOTE_MIDI))
    from pcmusic import data

    spec = data.SyntheticSpec(kind="notes", batch_size=1, sample_rate=sample_rate, seconds=1.0,
                              f0_min_hz=300.0, f0_max_hz=340.0)  # the one 12-TET pitch there: E4
    batch = data.synthetic_batch(jax.random.key(7), spec)
    nominal = float(np.nanmax(np.asarray(batch.note_hz)))
    return np.asarray(batch.audio[0]), "synthetic harmonic note (no FluidSynth found)", nominal


def _perceive(model, config: Config, out: Path) -> dict:
    from pcmusic.dsp import audio as audio_io
    from pcmusic import outputs, perception, plots

    rate = config.model.controls.sample_rate
    sound, what, nominal_hz = _note(rate)
    inference = dataclasses.replace(config.inference, n_steps=PERCEIVE_STEPS)
    percept = perception.perceive(sound, rate, model=model, inference=inference)
    audio_io.save(out / "note.wav", sound, rate, overwrite=True)
    record = {"note": what, "nominal_f0_hz": nominal_hz, **outputs.percept_json(percept, sound)}
    outputs.write_atomic(out / "percept.json", json.dumps(record) + "\n")
    plots.save_pitch_track(out / "pitch_track.png", sound, rate, percept.f0_hz, percept.frame_rate_hz,
                           reference_hz=nominal_hz, title=what)
    skip = int(0.05 * percept.frame_rate_hz)   # the attack: pitch is not yet defined
    cents = 1200 * np.log2(percept.f0_hz[0, skip:] / nominal_hz)
    cents = cents[np.isfinite(cents)]
    return {"note": what, "nominal_f0_hz": nominal_hz,
            "median_error_cents": float(np.median(np.abs(cents))) if cents.size else None,
            "voiced_fraction": float(np.mean(percept.voiced[0])),
            "energy_first_last": [float(percept.energy[0]), float(percept.energy[-1])]}


def _generate(model, config: Config, out: Path) -> dict:
    from pcmusic import generation, outputs

    sounds, trace = generation.generate(model, jax.random.key(0), n=N_SOUNDS, seconds=SOUND_SECONDS,
                                      refine_steps=REFINE_STEPS, refine=config.refine,
                                      listen=generation.Listening(steps=LISTEN_STEPS,
                                                                  inference=config.inference))
    records = outputs.write_sounds(out, sounds, trace, config.model.controls.sample_rate,
                                   overwrite=True, title="generated")
    mean = trace.energy.mean(axis=0)
    heard = trace.listened.energy.mean(axis=0)
    return {"n": N_SOUNDS, "seconds": SOUND_SECONDS, "refine_steps": REFINE_STEPS,
            "listen_steps": LISTEN_STEPS, "mean_energy_first_last": [float(mean[0]), float(mean[-1])],
            "mean_heard_energy_first_last": [float(heard[0]), float(heard[-1])], "samples": records}


def _melody() -> np.ndarray:
    """MELODY as note records `[n, 5]` (onset_s, offset_s, f0_hz, loudness_db, 1)."""
    rows, t = [], 0.1
    for degree, dur, gap in MELODY:
        rows.append((t, t + dur, MELODY_REF_HZ * 2.0 ** (degree * MELODY_STEP_CENTS / 1200.0), -10.0, 1.0))
        t += dur + gap
    return np.asarray(rows, np.float64)


def _matches(reference: np.ndarray, heard: np.ndarray) -> int:
    """Reference notes with a heard note within 50 ms of onset and 50 cents of pitch
    (each heard note used once)."""
    used, hits = set(), 0
    for on, _, f0, *_ in reference:
        for j, row in enumerate(heard):
            if j not in used and abs(row[0] - on) <= 0.05 and abs(1200 * np.log2(row[2] / f0)) <= 50:
                used.add(j)
                hits += 1
                break
    return hits


def _notes(out: Path) -> dict:
    """A 5-TET melody (FluidSynth flute with pitch bends, else the oscillator bank) heard
    as notes; then a phrase generated from a note prior fitted to 5-TET melodies."""
    from pcmusic import midi, outputs
    from pcmusic.data import fluid
    from pcmusic.dsp import audio as audio_io
    from pcmusic.generation import phrases
    from pcmusic.model import ControlSpec, note_prior
    from pcmusic.model import notes as notes_lib
    from pcmusic.perception import perceive

    rate = ControlSpec().sample_rate
    truth = _melody()
    midi.write(out / "melody_reference.mid", [truth], overwrite=True, program=fluid.GM_PROGRAMS["flute"])
    if fluid.available():
        sound, what = fluid.render_midi(out / "melody_reference.mid", sample_rate=rate), "FluidSynth flute"
    else:
        notes = phrases.notes_from_records([truth], cspec=ControlSpec(), spec=notes_lib.NoteSpec())
        n_frames = ControlSpec().n_frames(int((truth[-1, 1] + 0.3) * rate))
        sound = np.asarray(phrases.render_notes(notes, n_frames, cspec=ControlSpec(),
                                                spec=notes_lib.NoteSpec(), key=jax.random.key(0)))[0]
        what = "oscillator bank"
    percept = perceive(sound, rate)
    heard = percept.notes[0]
    audio_io.save(out / "melody.wav", sound, rate, overwrite=True)
    midi.write(out / "melody_heard.mid", [heard], overwrite=True, program=fluid.GM_PROGRAMS["flute"])
    outputs.write_atomic(out / "melody_notes.json", json.dumps({"notes": outputs.notes_json(percept)}) + "\n")
    hits = _matches(truth, heard)
    rng = np.random.default_rng(0)
    corpus = []
    for _ in range(16):
        degrees = np.clip(np.cumsum(rng.integers(-2, 3, size=8)), -3, 8)
        onsets = np.cumsum(rng.choice([0.2, 0.4], size=8)) - 0.2
        corpus.append(np.stack([onsets, onsets + 0.18, MELODY_REF_HZ * 2.0 ** (degrees * MELODY_STEP_CENTS / 1200),
                                np.full(8, -12.0)], axis=1))
    prior = note_prior.fit(corpus)
    (phrase,) = phrases.generate_phrases(jax.random.key(1), prior, n=1, seconds=PHRASE_SECONDS,
                                         listen_steps=PHRASE_HEARINGS)
    audio_io.save(out / "phrase.wav", phrase.audio, rate, overwrite=True)
    midi.write(out / "phrase.mid", [phrase.intended], overwrite=True)
    off = np.mod(1200 * np.log2(phrase.intended[:, 2] / MELODY_REF_HZ), MELODY_STEP_CENTS)
    errors = phrase.pitch_error_cents
    return {"melody": what, "notes": int(len(truth)), "heard": int(len(heard)), "matched": hits,
            "heard_notes": outputs.notes_json(percept)[0],
            "phrase_notes": int(len(phrase.intended)),
            "phrase_off_lattice_cents_median": float(np.median(np.minimum(off, MELODY_STEP_CENTS - off))),
            "phrase_heard_pitch_error_cents_median": (float(np.nanmedian(np.abs(errors)))
                                                      if np.any(np.isfinite(errors)) else None)}


def run(workdir: str | Path = "runs/demo", *, force: bool = False, n_steps: int | None = None) -> dict:
    """Run the demo (module docstring) and print where everything is; returns the summary.
    `n_steps` shortens training (tests); the demo's own is DEMO_STEPS."""
    from pcmusic import outputs, training

    began = time.time()
    workdir = Path(workdir)
    _claim(workdir, force)
    config = demo_config(DEMO_STEPS if n_steps is None else n_steps)
    print(f"pcmusic demo: training a {config.model.latent_dims} hierarchy on synthetic notes "
          f"for {config.train.n_steps} steps in {workdir / 'train'}")
    trained = training.train(config, workdir / "train")
    model, _ = training.load_model(workdir / "train")
    dirs = {name: workdir / name for name in ("perceive", "generate", "notes")}
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)   # outputs of a previous demo (force=True)
        d.mkdir()
    print("pcmusic demo: perceiving a note, then generating with refinement")
    summary = {"workdir": str(workdir), "train": trained,
               "perceive": _perceive(model, config, dirs["perceive"]),
               "generate": _generate(model, config, dirs["generate"])}
    print("pcmusic demo: hearing a 5-TET melody as notes, then generating a phrase of notes")
    summary["notes"] = _notes(dirs["notes"])
    summary["seconds"] = round(time.time() - began, 1)
    outputs.write_atomic(workdir / "summary.json", json.dumps(summary, indent=2) + "\n")
    p, g, n = summary["perceive"], summary["generate"], summary["notes"]
    err = "n/a" if p["median_error_cents"] is None else f"{p['median_error_cents']:.1f} cents"
    print(f"""pcmusic demo: done in {summary['seconds']:.0f} s
  trained model        {workdir / 'train'} (checkpoints/, metrics.jsonl, tb/, training.png)
                       energy per clip {trained['energy']}, held-out {trained['eval_energy']}
  perceived note       {dirs['perceive']} (note.wav, percept.json, pitch_track.png)
                       {p['note']}: median |f0 error| {err} re {p['nominal_f0_hz']:.1f} Hz
  generated sounds     {dirs['generate']} (sample_i.wav, sample_i_unrefined.wav, sample_i.png,
                       sample_i_intent.npz, sample_i_controls.npz)
                       mean energy {g['mean_energy_first_last'][0]:.4g} -> {g['mean_energy_first_last'][1]:.4g} over {REFINE_STEPS} refinement steps
                       heard energy {g['mean_heard_energy_first_last'][0]:.4g} -> {g['mean_heard_energy_first_last'][1]:.4g} over {LISTEN_STEPS} listening steps
  notes                {dirs['notes']} (melody.wav, melody_reference.mid, melody_heard.mid,
                       melody_notes.json, phrase.wav, phrase.mid)
                       {n['melody']}: {n['matched']} of {n['notes']} notes heard (onset 50 ms, pitch 50 cents), {n['heard']} notes in all
                       phrase of {n['phrase_notes']} notes, {n['phrase_off_lattice_cents_median']:.1f} cents (median) off the 5-TET lattice
  summary              {workdir / 'summary.json'}""")
    return summary
