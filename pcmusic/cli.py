"""The `pcmusic` command line: demo, train, config, perceive, generate, probe, bench.

Each sub-command imports its library module lazily, so `pcmusic --help` is fast
and a missing optional dependency only affects the command that needs it.
Errors the user can fix (`PcmusicError`) are printed as one message, exit 2.
Outputs are written whole or not at all (temporary file, then rename) and existing
outputs are never overwritten without --force. Compiled programs are cached on disk
(`pcmusic.training.loop.enable_compilation_cache`), so a second run starts in seconds.
"""
from __future__ import annotations

import argparse
import warnings
import json
import sys
from pathlib import Path

from pcmusic import checks
from pcmusic.errors import PcmusicError


def _cmd_bench(args: argparse.Namespace) -> None:
    from pcmusic.bench import run_all

    run_all(quick=args.quick, sections=args.only)


def _cmd_demo(args: argparse.Namespace) -> None:
    from pcmusic import demo

    demo.run(args.workdir, force=args.force, n_steps=args.steps)


def _cmd_train(args: argparse.Namespace) -> None:
    from pcmusic import training

    checks.writable_dir(args.workdir, "--workdir")
    cfg = training.load_config(args.config, overrides=args.set)
    summary = training.train(cfg, args.workdir, progress=not args.quiet)
    print(json.dumps(summary, indent=2))


def _cmd_config(args: argparse.Namespace) -> None:
    from pcmusic import configio
    from pcmusic.training import config

    overrides = getattr(args, "set", [])
    if args.config is None:
        cfg = configio.apply_overrides(config.default_config(), overrides)
    else:
        cfg = config.load_config(args.config, overrides=overrides)
    if args.action == "show":
        sys.stdout.write(configio.config_to_toml(cfg))
    else:
        for key, type_name, value in configio.config_keys(cfg):
            print(f"{key}: {type_name} = {configio.format_value(value)}")


def _model_and_inference(ckpt, n_steps, step=None):
    """(model or None, InferenceSpec): the run's own inference unless --steps is given."""
    return _load_run(ckpt, n_steps, step)[:2]


def _load_run(ckpt, n_steps, step=None):
    """(model or None, InferenceSpec, the run's Config or None), as `_model_and_inference`."""
    import dataclasses

    from pcmusic import perception
    from pcmusic.training import load_model

    model, inference, cfg = None, perception.InferenceSpec(), None
    if ckpt is None and step is not None:
        raise PcmusicError(f"--step {step} needs --ckpt: it picks a checkpoint of a run")
    if n_steps is not None:
        checks.integer(n_steps, "--steps", minimum=1)
    if ckpt is not None:
        model, cfg = load_model(ckpt, step=step)
        inference = cfg.inference
    if n_steps is not None:
        inference = dataclasses.replace(inference, n_steps=n_steps)
    return model, inference, cfg


def _load_audio(path: str):
    from pcmusic.dsp import audio

    return audio.load(path)


def _cmd_perceive(args: argparse.Namespace) -> None:
    from pcmusic import outputs, perception

    formats = _formats(args.format)
    if args.voices is not None:
        checks.integer(args.voices, "--voices", minimum=1, maximum=perception.MAX_VOICES)
    checks.integer(args.batch, "--batch", minimum=1)
    sources = _audio_sources(args.audio)
    intent_out = _intent_out(args, sources)
    midi_out = None
    if args.midi is not None:
        if len(sources) > 1 or args.out is not None:
            raise PcmusicError("--midi OUT.mid writes one file's notes; with several files use --out DIR "
                               "--format mid")
        midi_out = checks.writable_file(args.midi, "--midi", force=args.force, suffixes=(".mid", ".midi"))
    if args.out is None:
        if len(sources) > 1 or args.format is not None:
            raise PcmusicError("several files, or --format, need --out DIR (one file alone prints JSON "
                               "or writes --json OUT)")
        out = None if args.json is None else checks.writable_file(args.json, "--json", force=args.force)
    elif args.json is not None:
        raise PcmusicError("--json OUT writes one file's JSON; with --out DIR use --format json")
    else:
        out_dir = checks.writable_dir(args.out, "--out")
    model, inference, run = _load_run(args.ckpt, args.steps, args.step)
    model, cspec = _perception_specs(model, args)
    if intent_out is not None:
        _write_perceived_intent(sources[0][0], intent_out, model, inference, run)
        if args.out is None and args.json is None and getattr(args, "midi", None) is None:
            return
    if args.out is None:
        audio, rate = _load_audio(sources[0][0])
        percept = perception.perceive(audio, rate, model=model, n_voices=args.voices, cspec=cspec,
                                      inference=inference, batch_size=args.batch)
        text = json.dumps({"audio": str(sources[0][0]), "checkpoint": args.ckpt,
                           **outputs.percept_json(percept, audio)}) + "\n"
        if midi_out is not None:
            from pcmusic import midi
            midi.write(midi_out, percept.notes, overwrite=args.force)
            print(f"wrote {midi_out}", file=sys.stderr if out is None else sys.stdout)
            if out is None:
                return
        if out is None:
            sys.stdout.write(text)
        else:
            outputs.write_atomic(out, text)
            print(f"wrote {out}")
        return
    _perceive_files(sources, out_dir, formats, model=model, cspec=cspec, n_voices=args.voices,
                    inference=inference, batch=args.batch, force=args.force, quiet=args.quiet)


def _intent_out(args, sources) -> Path | None:
    """--intent-out FILE.npz, checked before any work (None when not asked)."""
    if args.intent_out is None:
        return None
    if args.ckpt is None:
        raise PcmusicError(f"--intent-out {args.intent_out} needs --ckpt: an intent is the top of a trained "
                           "model's hierarchy (pcmusic train, or the demo's runs/demo/train)")
    if len(sources) != 1:
        raise PcmusicError(f"--intent-out writes the intent of one clip; {len(sources)} files were given: "
                           "perceive them one at a time")
    return checks.writable_file(args.intent_out, "--intent-out", force=args.force, suffixes=(".npz",))


def _write_perceived_intent(path: Path, out: Path, model, inference, run) -> None:
    """The intent the run's model hears in the clip at `path`, as `generate --intent` reads it."""
    from pcmusic import outputs, perception

    audio, rate = _load_audio(path)
    intent = perception.perceive_intent(model, audio, rate, inference=inference,
                                        intent_shoot_steps=run.train.intent_shoot_steps)
    outputs.write_intent(out, intent)
    print(f"wrote {out}")


def _formats(text: str | None) -> tuple[str, ...]:
    from pcmusic.outputs import PERCEPT_FORMATS

    formats = tuple(f.strip().lower() for f in (text or "json").split(",") if f.strip())
    unknown = [f for f in formats if f not in PERCEPT_FORMATS]
    if unknown or not formats:
        raise PcmusicError(f"--format {text!r}: choose from {', '.join(PERCEPT_FORMATS)} (comma-separated)")
    return formats


def _audio_sources(paths: list[str]) -> list[tuple[Path, Path]]:
    """(file, output stem relative to --out) of every audio file named or found in a folder."""
    from pcmusic.data.folders import EXTENSIONS

    sources = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
            if not found:
                raise PcmusicError(f"{path}: no audio files ({', '.join(EXTENSIONS)}) in this folder")
            sources += [(p, p.relative_to(path).with_suffix("")) for p in found]
        elif not path.exists():
            raise PcmusicError(f"{path}: no such file or folder; check the path (cwd is {Path.cwd()})")
        else:
            sources.append((path, Path(path.stem)))
    stems = [str(stem) for _, stem in sources]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise PcmusicError(f"several inputs would write the same outputs ({', '.join(twice[:4])}); "
                           "perceive them into different --out folders")
    return sources


def _perception_specs(model, args):
    """(model, cspec) with --fmin/--fmax applied: the f0 range perception searches."""
    import dataclasses

    from pcmusic.model import ControlSpec

    if args.fmin is None and args.fmax is None:
        return model, None
    base = model.spec.controls if model is not None else ControlSpec(n_voices=args.voices or 1)
    fmin = base.f0_min_hz if args.fmin is None else checks.real(args.fmin, "--fmin", minimum=0.0,
                                                                  strict_minimum=True)
    fmax = base.f0_max_hz if args.fmax is None else checks.real(args.fmax, "--fmax", minimum=0.0,
                                                                  strict_minimum=True)
    try:
        cspec = dataclasses.replace(base, f0_min_hz=fmin, f0_max_hz=fmax)
    except PcmusicError as err:
        raise PcmusicError(f"--fmin {fmin:g} / --fmax {fmax:g}: {err}") from None
    if model is None:
        return None, cspec
    return dataclasses.replace(model, spec=dataclasses.replace(model.spec, controls=cspec)), None


def _perceive_files(sources, out_dir: Path, formats, *, model, cspec, n_voices, inference, batch: int,
                    force: bool, quiet: bool) -> None:
    """Perceive many files into out_dir, `batch` files at a time; skip files whose outputs
    exist (unless force); one failed file does not stop the others."""
    from tqdm.auto import tqdm

    from pcmusic import outputs, perception
    from pcmusic.dsp import audio as audio_lib

    kw = dict(model=model, n_voices=n_voices, cspec=cspec, inference=inference, batch_size=batch)
    spec = perception.resolve_specs(model=model, n_voices=n_voices or 1, cspec=cspec)[0]
    n_voices, rate = spec.n_voices, spec.sample_rate
    todo, skipped, failed, done = [], [], [], 0
    for path, stem in sources:
        targets = outputs.percept_paths(out_dir / stem, formats, n_voices)
        if not force and all(t.exists() for t in targets):
            skipped.append(path)
        else:
            todo.append((path, out_dir / stem))
    bar = tqdm(total=len(todo), disable=quiet, desc="perceive", unit="file")
    try:
        for first in range(0, len(todo), batch):
            group, loaded = todo[first:first + batch], []
            for path, stem in group:
                try:
                    loaded.append((path, stem, audio_lib.load(path, sample_rate=rate)[0]))
                except PcmusicError as err:
                    failed.append((path, str(err)))
            if loaded:
                try:
                    percepts = perception.perceive_batch([a for _, _, a in loaded], rate, **kw)
                except PcmusicError:   # one bad clip: perceive the group's files one by one
                    percepts = []
                    for path, _, a in loaded:
                        try:
                            percepts.append(perception.perceive(a, rate, **kw))
                        except PcmusicError as err:
                            failed.append((path, str(err)))
                            percepts.append(None)
                for (path, stem, a), percept in zip(loaded, percepts):
                    if percept is not None:
                        stem.parent.mkdir(parents=True, exist_ok=True)
                        outputs.write_percept(stem, percept, a, formats, source=str(path))
                        done += 1
            bar.update(len(group))
    finally:
        bar.close()
    print(f"perceived {done} file(s) into {out_dir}; skipped {len(skipped)} whose outputs exist "
          f"(--force redoes them); {len(failed)} failed")
    for path, why in failed:
        print(f"  failed: {path}: {why}")
    if failed:
        raise PcmusicError(f"{len(failed)} of {len(sources)} file(s) could not be perceived (listed above)")


def _cmd_generate(args: argparse.Namespace) -> None:
    import jax

    from pcmusic import generation, outputs
    from pcmusic.training import load_model
    from pcmusic.training.checkpoint import note_prior_path

    if args.ckpt is None:
        if args.notes is None:
            raise PcmusicError("generate needs --ckpt (a trained run) or --notes (a note prior from pcmusic "
                               "notes fit)")
        return _generate_phrases(args, args.notes)
    if args.notes is not None and (args.no_notes or args.intent is not None):
        raise PcmusicError("--notes makes phrases of notes; --no-notes and --intent make sounds from the "
                           "run's hierarchy: give one or the other")
    out = checks.writable_dir(args.out, "--out")
    if args.n is not None:
        checks.integer(args.n, "--n", minimum=1)
    checks.real(args.seconds, "--seconds", minimum=0.0, strict_minimum=True)
    checks.integer(args.refine, "--refine", minimum=0)
    model, cfg = load_model(args.ckpt, step=args.step)
    prior = args.notes or (None if args.no_notes or args.intent is not None else note_prior_path(args.ckpt))
    if prior is not None:
        return _generate_phrases(args, prior, model=model, cfg=cfg)
    args.listen = 4 if args.listen is None else checks.integer(args.listen, "--listen", minimum=0)
    intent, n = None, 4 if args.n is None else args.n
    if args.intent is not None:
        intent = outputs.read_intent(args.intent, d_top=model.spec.latent_dims[-1])
        if args.n is not None and args.n != intent.shape[0]:
            raise PcmusicError(f"--n {args.n} but --intent {args.intent} holds {intent.shape[0]} intent(s), "
                               "one per sound: leave out --n")
        n = intent.shape[0]
    clash = [name for name in outputs.sound_names(n) + ["summary.json"] if (out / name).exists()]
    if clash and not args.force:
        raise PcmusicError(f"{out} already holds {', '.join(clash[:4])}{' ...' if len(clash) > 4 else ''}; "
                           "nothing was written: choose another --out or pass --force")
    sounds, trace = generation.generate(model, jax.random.key(args.seed), n=n, seconds=args.seconds,
                                      intent=intent, refine_steps=args.refine, refine=cfg.refine,
                                      listen=generation.Listening(steps=args.listen, inference=cfg.inference))
    out.mkdir(parents=True, exist_ok=True)
    rate = model.spec.controls.sample_rate
    samples = outputs.write_sounds(out, sounds, trace, rate, overwrite=args.force,
                                   title=f"seed {args.seed}, sample")
    summary = {"checkpoint": str(args.ckpt), "seed": args.seed, "n": n, "seconds": args.seconds,
               "refine_steps": args.refine, "listen_steps": args.listen, "sample_rate": rate,
               "intent_file": None if args.intent is None else str(args.intent), "samples": samples}
    outputs.write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"wrote {n} sample(s) to {out}")


def _generate_phrases(args: argparse.Namespace, prior_path, *, model=None, cfg=None) -> None:
    """`generate --notes PRIOR.npz` or `--ckpt RUN` with a note prior: phrases of notes,
    corrected by listening (with the run's model: its timbre, heard by its perception)."""
    import jax
    import numpy as np

    from pcmusic import builtin, midi, outputs
    from pcmusic.dsp import audio
    from pcmusic.generation import phrases
    from pcmusic.model import ControlSpec, note_prior

    if args.intent is not None:
        raise PcmusicError("--intent clamps the hierarchy's intent; phrases of notes draw their own: "
                           "leave out --notes, or add --no-notes with --ckpt")
    out = checks.writable_dir(args.out, "--out")
    n = 4 if args.n is None else checks.integer(args.n, "--n", minimum=1)
    checks.real(args.seconds, "--seconds", minimum=0.0, strict_minimum=True)
    listen = 2 if args.listen is None else checks.integer(args.listen, "--listen", minimum=0)
    prior = note_prior.load(builtin.note_prior_path(prior_path))
    names = [f"sample_{i}{suffix}" for i in range(n) for suffix in (".wav", ".mid", ".notes.csv")]
    clash = [name for name in names + ["summary.json"] if (out / name).exists()]
    if clash and not args.force:
        raise PcmusicError(f"{out} already holds {', '.join(clash[:4])}{' ...' if len(clash) > 4 else ''}; "
                           "nothing was written: choose another --out or pass --force")
    rate = (ControlSpec() if model is None else model.spec.controls).sample_rate
    made = phrases.generate_phrases(jax.random.key(args.seed), prior, n=n, seconds=args.seconds,
                                    listen_steps=listen, model=model,
                                    inference=None if cfg is None else cfg.inference)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for i, phrase in enumerate(made):
        peak = float(np.max(np.abs(phrase.audio))) if phrase.audio.size else 0.0
        audio.save(out / f"sample_{i}.wav", phrase.audio * np.float32(0.99 / peak if peak > 1 else 1.0),
                   rate, overwrite=args.force)
        midi.write(out / f"sample_{i}.mid", [phrase.intended], overwrite=args.force)
        outputs.write_atomic(out / f"sample_{i}.notes.csv", outputs.note_lines(phrase.intended))
        errors = phrase.pitch_error_cents
        records.append({"wav": f"sample_{i}.wav", "mid": f"sample_{i}.mid", "n_notes": int(len(phrase.intended)),
                        "intent": [round(float(x), 4) for x in phrase.intent],
                        **({"hierarchy_intent": [round(float(x), 5) for x in phrase.top]} if phrase.top.size else {}),
                        "heard_notes": int(len(phrase.heard)),
                        "median_abs_pitch_error_cents": (None if not np.any(np.isfinite(errors)) else
                                                         round(float(np.nanmedian(np.abs(errors))), 2))})
    summary = {"checkpoint": None if args.ckpt is None else str(args.ckpt), "note_prior": str(prior_path),
               "seed": args.seed, "n": n, "seconds": args.seconds,
               "listen_steps": listen, "sample_rate": rate, "samples": records}
    outputs.write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"wrote {n} phrase(s) to {out}")


def _cmd_notes(args: argparse.Namespace) -> None:
    """`pcmusic notes fit`: learn a note prior (tuning, intervals, rhythm) from a corpus."""
    from pcmusic import midi, perception
    from pcmusic.data.folders import EXTENSIONS
    from pcmusic.model import note_prior

    out = checks.writable_file(args.out, "--out", force=args.force, suffixes=(".npz",))
    checks.real(args.period_oct, "--period-oct", minimum=0.0, strict_minimum=True)
    wanted = tuple(EXTENSIONS) + (".mid", ".midi")
    found = []
    for name in args.inputs:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in wanted and p.is_file())
        elif not path.exists():
            raise PcmusicError(f"{path}: no such file or folder; check the path (cwd is {Path.cwd()})")
        elif path.suffix.lower() not in wanted:
            raise PcmusicError(f"{path}: not audio ({', '.join(EXTENSIONS)}) or MIDI (.mid)")
        else:
            found.append(path)
    if not found:
        raise PcmusicError(f"no audio or MIDI files in {', '.join(args.inputs)}")
    phrases = []
    for path in found:
        if path.suffix.lower() in (".mid", ".midi"):
            phrases += [v for v in midi.read(path) if len(v)]
        else:
            x, rate = _load_audio(path)
            phrases += [v for v in perception.perceive(x, rate, n_voices=args.voices).notes if len(v)]
        if not args.quiet:
            print(f"  {path}: {sum(len(p) for p in phrases)} notes so far", file=sys.stderr)
    prior = note_prior.fit(phrases, period_oct=args.period_oct)
    note_prior.save(out, prior, overwrite=args.force)
    peaks = note_prior.lattice_cents(prior)
    print(f"wrote {out}: {sum(len(p) for p in phrases)} notes in {len(phrases)} phrase(s) from {len(found)} "
          f"file(s); tuning peaks at {', '.join(f'{c:.0f}' for c in peaks)} cents (mod "
          f"{1200 * args.period_oct:g}, re 1 Hz)")


def _cmd_probe(args: argparse.Namespace) -> None:
    from pcmusic.evaluation import probing

    out = checks.writable_file(args.out, "--out", force=args.force, suffixes=(".npz",))
    checks.integer(args.stride, "--stride", minimum=1)
    audio, rate = _load_audio(args.audio)
    model, inference = _model_and_inference(args.ckpt, args.steps, args.step)
    result = probing.probe(audio, rate, model=model, stride=args.stride, inference=inference)
    probing.save_npz(result, out, overwrite=args.force)
    print(f"wrote {out}")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `pcmusic CMD: error: ...; see pcmusic CMD --help`."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pcmusic",
        description="Predictive-coding audio perception and generation through an oscillator bank.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="train a small model, perceive a note, generate (a few minutes)")
    p.add_argument("--workdir", default="runs/demo", help="where everything goes (default runs/demo)")
    p.add_argument("--force", action="store_true",
                   help="reuse a previous demo's workdir: resume its training, overwrite its outputs")
    p.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)  # shorter runs for tests
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train or resume a run from a TOML config")
    p.add_argument("--config", required=True,
                   help="a TOML file, or a shipped config by name: tiny, default, ...")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.n_steps=200 (repeatable)")
    p.add_argument("--workdir", required=True, help="run directory; resumes if it holds a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("config", help="print a resolved config, or every config key")
    actions = p.add_subparsers(dest="action", required=True)
    for action, text in (("show", "print the config, overrides applied, as TOML"),
                         ("keys", "list every key (dotted) with its type and value, one per line")):
        a = actions.add_parser(action, help=text)
        a.add_argument("--config", default=None, help="a TOML file, or a shipped config by name: "
                       "tiny, default, ... (default: every key at its default)")
        if action == "show":
            a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                           help="override a config value, e.g. --set train.n_steps=200 (repeatable)")
        a.set_defaults(func=_cmd_config)

    p = sub.add_parser("perceive", help="f0 tracks, confidence, partials and energy of sounds")
    p.add_argument("audio", nargs="+", help="audio files (WAV, FLAC, OGG) or folders of them")
    p.add_argument("--out", default=None, help="write outputs into this folder (one set per file; "
                   "files whose outputs exist are skipped unless --force)")
    p.add_argument("--format", default=None, help="with --out: json, csv (f0 per frame), npz, notes "
                   "(onset,offset,f0_hz CSV), mid (MIDI with pitch bends), comma-separated (default json)")
    p.add_argument("--midi", default=None, metavar="OUT.mid",
                   help="one file: write its notes as MIDI (a channel per voice, bends for the cents)")
    p.add_argument("--batch", type=int, default=4, help="files and chunks perceived at once (default 4)")
    p.add_argument("--fmin", type=float, default=None, help="lowest f0 to look for, Hz")
    p.add_argument("--fmax", type=float, default=None, help="highest f0 to look for, Hz")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--ckpt", default=None,
                   help="a trained run, or builtin:tiny (the model shipped; default: the untrained prior)")
    p.add_argument("--step", type=int, default=None,
                   help="the checkpoint step to restore (default: the latest)")
    p.add_argument("--voices", type=int, default=None, help="simultaneous voices (default 1)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the JSON here instead of printing it")
    p.add_argument("--force", action="store_true", help="overwrite --json OUT or outputs in --out")
    p.add_argument("--steps", type=int, default=None,
                   help="inference steps (default: the run's own; 200 without --ckpt)")
    p.add_argument("--intent-out", default=None, metavar="FILE.npz",
                   help="with --ckpt and one file: write the intent the model hears in it, for "
                        "generate --intent (the percept is then written only if --json, --out or --midi asks)")
    p.set_defaults(func=_cmd_perceive)

    p = sub.add_parser("generate", help="generate sounds from a trained run, refined by listening")
    p.add_argument("--ckpt", default=None,
                   help="a trained run (workdir or its checkpoints/), or builtin:tiny (the model shipped); "
                        "phrases of notes where the run has a note prior, else sounds from its hierarchy")
    p.add_argument("--step", type=int, default=None,
                   help="the checkpoint step to restore (default: the latest)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--n", type=int, default=None, help="number of sounds (default 4, or one per --intent)")
    p.add_argument("--seconds", type=float, default=1.0, help="length of each (default 1.0)")
    p.add_argument("--refine", type=int, default=50, help="refinement steps (default 50)")
    p.add_argument("--listen", type=int, default=None,
                   help="listening steps after refinement: perceive each sound as the run perceives "
                        "and correct it (default 4; 0: none); for phrases of notes, hearings (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--intent", default=None, metavar="FILE.npz",
                   help="clamp these intents (array 'intent', [n, 1, d_top], [n, d_top] or [d_top]: "
                        "a sample_i_intent.npz of a generation, or perceive --intent-out)")
    p.add_argument("--notes", default=None, metavar="PRIOR.npz",
                   help="phrases of notes from this note prior (pcmusic notes fit, or builtin:tiny's "
                        "12-TET prior), each with its MIDI; with --ckpt, in the run's timbre and heard by "
                        "its perception. A run trained with train.note_prior_clips has its own prior and "
                        "makes phrases without --notes. --listen then counts hearings of itself (hear, "
                        "correct, hear ...); --refine is not used")
    p.add_argument("--no-notes", action="store_true",
                   help="with --ckpt: sounds from the run's hierarchy (intent, refinement, listening) even "
                        "where the run has a note prior")
    p.add_argument("--force", action="store_true", help="overwrite outputs already in --out")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("notes", help="learn a note prior (tuning, intervals, rhythm) from audio or MIDI")
    notes_sub = p.add_subparsers(dest="action", required=True)
    a = notes_sub.add_parser("fit", help="fit a note prior to the notes of audio (perceived) and MIDI files")
    a.add_argument("inputs", nargs="+", help="audio and .mid files, or folders of them")
    a.add_argument("--out", required=True, help="the note prior to write (.npz)")
    a.add_argument("--period-oct", type=float, default=1.0,
                   help="the tuning's period in octaves (1: octave-repeating; 1.585: Bohlen-Pierce's 3:1)")
    a.add_argument("--voices", type=int, default=None, help="voices to hear in audio (default 1)")
    a.add_argument("--quiet", action="store_true", help="no per-file progress")
    a.add_argument("--force", action="store_true", help="overwrite --out")
    a.set_defaults(func=_cmd_notes)

    p = sub.add_parser("probe", help="record latents, errors and energies of perception (.npz)")
    p.add_argument("audio", help="an audio file")
    p.add_argument("--ckpt", required=True,
                   help="a trained run (workdir or its checkpoints/), or builtin:tiny (the model shipped)")
    p.add_argument("--step", type=int, default=None,
                   help="the checkpoint step to restore (default: the latest)")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--stride", type=int, default=10, help="record every k inference steps")
    p.add_argument("--steps", type=int, default=None,
                   help="inference steps (default: the run's own; 200 without --ckpt)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=_cmd_probe)

    p = sub.add_parser("bench", help="print the benchmark tables")
    p.add_argument("--quick", action="store_true", help="small sizes, a few repeats")
    p.add_argument("--only", action="append", default=None,
                   help="run only this section (repeatable): synth, pc, perceive, transcribe, train")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        print(f"pcmusic {args.command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():   # restores the process's own handler afterwards
        warnings.showwarning = one_line_warning
        try:
            if args.command not in ("bench", "config"):
                from pcmusic.training.loop import enable_compilation_cache
                enable_compilation_cache()
            args.func(args)
        except PcmusicError as err:
            print(f"pcmusic {args.command}: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"pcmusic {args.command}: interrupted", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
