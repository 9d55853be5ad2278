"""Does the hierarchy's intent predict the phrase? A run's intent-to-phrase link, measured.

A run trained with `train.note_prior_clips` fits its note prior to the notes it hears in
held-out clips and links each clip's hierarchy intent (its top latent, as the intent bank
holds it) to the phrase intent of those notes (register, tempo, level;
`pcmusic.model.note_prior.fit(..., tops=)`). This script measures that link on clips
neither training nor the prior's fit has seen, and what it does to generation:

1. Held out: per component, the root-mean-square error of predicting a phrase's intent
   from its clip's hierarchy intent, beside the error of the marginal mean (the prior
   without the link), and the held-out negative log-likelihood per phrase under both.
2. Intents: for N_INTENTS hierarchy intents drawn as the model's generation draws them,
   the correlation between the pitch each decodes to (the power-weighted median f0 of the
   model's top-down controls for it) and the register of a phrase intent drawn through
   the link, or from the marginal.
3. Generation: phrases drawn through the link (`generate_phrases(..., model=run)`: a
   hierarchy intent drawn as the model's generation draws it sets the phrase intent and
   the timbre) and, under the same hierarchy intents, phrases whose intents are drawn from
   the marginal. Each phrase is heard by the untrained listener; reported: the
   correlation between the register heard (mean log2 f0 of its notes) and the pitch its
   hierarchy intent decodes to, and the median distance between the two in cents.

    python experiments/intent_predicts_phrase.py RUN [--clips 64] [--n-generate 24]
        [--out runs/intent_predicts_phrase] [--force]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import pcmusic
from pcmusic import perception
from pcmusic.generation import phrases
from pcmusic.model import note_prior
from pcmusic.outputs import write_atomic
from pcmusic.training import checkpoint
from pcmusic.training.loop import TrainingData, fit_note_prior, heard_phrases

COMPONENTS = ("register_oct", "tempo_log_s", "level_db")
N_INTENTS = 256


def decoded_log2_hz(model, tops: np.ndarray) -> np.ndarray:
    """[n]: the power-weighted median log2 f0 of the top-down controls of intents [n, d_top]."""
    cspec = model.spec.controls
    n_frames = model.spec.pad_frames(cspec.n_frames(cspec.sample_rate))
    controls = model.predict_down(jnp.asarray(tops)[:, None], n_frames)[0]
    f0 = np.asarray(controls["log2_f0"], np.float64).reshape(len(tops), -1)
    power = np.sum(np.exp(2.0 * np.asarray(controls["log_amp"], np.float64)), axis=-1).reshape(len(tops), -1)
    out = []
    for x, w in zip(f0, power):
        order = np.argsort(x)
        c = np.cumsum(w[order])
        out.append(x[order][np.searchsorted(c, 0.5 * c[-1])])
    return np.asarray(out)


def held_out(model, config, prior, *, n_clips: int) -> dict:
    heard, tops = heard_phrases(model, TrainingData(config).eval_batches(n_clips, salt=3), n_clips=n_clips,
                                inference=config.inference, intent_shoot_steps=config.train.intent_shoot_steps)
    ok = np.all(np.isfinite(tops), axis=1)
    tops = tops[ok]
    intents = note_prior.phrase_intents([h for h, keep in zip(heard, ok) if keep])   # as the prior's fit reads them
    out = {"n_phrases": int(len(intents))}
    for name, top in (("marginal", None), ("linked", jnp.asarray(tops))):
        mean, sd = note_prior.intent_given(prior, top)
        err = intents - np.broadcast_to(np.asarray(mean), intents.shape)
        z = err / np.asarray(sd)
        nll = 0.5 * np.square(z) + np.log(np.asarray(sd)) + 0.5 * np.log(2 * np.pi)
        out[name] = {"rmse": {c: float(np.sqrt(np.nanmean(np.square(err[:, j])))) for j, c in enumerate(COMPONENTS)},
                     "nll_per_phrase": float(np.mean(np.nansum(nll, axis=1)))}
    return out


def intents(model, prior, key) -> dict:
    from pcmusic.generation import sampling

    k_top, k_linked, k_marginal = jax.random.split(key, 3)
    tops = sampling.sample_intent(model, k_top, N_INTENTS)[:, 0]
    decoded = decoded_log2_hz(model, np.asarray(tops))
    linked = np.asarray(note_prior.sample_intent(k_linked, prior, N_INTENTS, top=tops))[:, 0]
    marginal = np.asarray(note_prior.sample_intent(k_marginal, prior, N_INTENTS))[:, 0]
    return {"n": N_INTENTS, "corr_linked": float(np.corrcoef(linked, decoded)[0, 1]),
            "corr_marginal": float(np.corrcoef(marginal, decoded)[0, 1])}


def generation(model, prior, key, *, n: int, seconds: float) -> dict:
    k_linked, k_marginal, k_phrase = jax.random.split(key, 3)
    linked = phrases.generate_phrases(k_linked, prior, n=n, seconds=seconds, model=model)
    tops = np.stack([p.top for p in linked])
    marginal = phrases.generate_phrases(k_phrase, prior, model=model, seconds=seconds,
                                        intent=note_prior.sample_intent(k_marginal, prior, n))
    decoded = decoded_log2_hz(model, tops)
    out = {}
    for name, made in (("linked", linked), ("marginal", marginal)):
        heard = [perception.perceive(p.audio, model.spec.sample_rate).notes[0] for p in made]
        register = np.asarray([np.mean(np.log2(h[:, 2])) if len(h) else np.nan for h in heard])
        ok = np.isfinite(register)
        out[name] = {"corr_heard_register_vs_decoded": float(np.corrcoef(register[ok], decoded[ok])[0, 1]),
                     "median_abs_cents": float(np.median(np.abs(register[ok] - decoded[ok])) * 1200.0),
                     "corr_intended_register_vs_decoded": float(np.corrcoef([p.intent[0] for p in made],
                                                                            decoded)[0, 1]),
                     "phrases_heard": int(ok.sum())}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a training run (workdir) or builtin:NAME")
    parser.add_argument("--clips", type=int, default=64, help="held-out clips heard (default 64)")
    parser.add_argument("--n-generate", type=int, default=24, help="phrases per arm (default 24)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each phrase (default 4)")
    parser.add_argument("--out", type=Path, default=Path("runs/intent_predicts_phrase"))
    parser.add_argument("--force", action="store_true", help="replace an existing results.json")
    args = parser.parse_args(argv)
    target = args.out / "results.json"
    if target.exists() and not args.force:
        print(f"{target} exists; nothing was run: choose another --out or add --force", file=sys.stderr)
        return 2
    began = time.time()
    model, config = pcmusic.load_model(args.run)
    path = checkpoint.note_prior_path(args.run)
    prior = note_prior.load(path) if path is not None else None
    if prior is None or not note_prior.has_link(prior):
        print("the run's note prior has no intent link; fitting one to 64 held-out clips", file=sys.stderr)
        prior = fit_note_prior(model, TrainingData(config).eval_batches(64, salt=2), n_clips=64,
                               period_oct=config.train.note_period_oct, inference=config.inference,
                               intent_shoot_steps=config.train.intent_shoot_steps)
    results = {"run": args.run, "held_out": held_out(model, config, prior, n_clips=args.clips),
               "intents": intents(model, prior, jax.random.key(12)),
               "generation": generation(model, prior, jax.random.key(11), n=args.n_generate, seconds=args.seconds),
               "link_sd_over_marginal_sd": (np.asarray(prior.link_sd) / np.asarray(prior.intent_sd)).tolist()}
    results["seconds"] = round(time.time() - began, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(target, json.dumps(results, indent=2) + "\n")
    h, g = results["held_out"], results["generation"]
    print(f"held out ({h['n_phrases']} phrases): rmse marginal -> linked")
    for c in COMPONENTS:
        print(f"  {c:14s} {h['marginal']['rmse'][c]:8.3f} -> {h['linked']['rmse'][c]:8.3f}")
    print(f"  nll/phrase     {h['marginal']['nll_per_phrase']:8.2f} -> {h['linked']['nll_per_phrase']:8.2f}")
    i = results["intents"]
    print(f"intents ({i['n']}): corr(register drawn, decoded pitch) linked {i['corr_linked']:.2f}, "
          f"marginal {i['corr_marginal']:.2f}")
    print("generation | corr(heard register, decoded) | median |heard - decoded| cents | corr(intended, decoded)")
    for name in ("linked", "marginal"):
        r = g[name]
        print(f"  {name:9s} | {r['corr_heard_register_vs_decoded']:6.2f} | {r['median_abs_cents']:7.0f} | "
              f"{r['corr_intended_register_vs_decoded']:6.2f}")
    print(f"wrote {target} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
