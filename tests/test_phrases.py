"""Phrases from a learned note prior: the CLI's fit -> generate loop, and listening."""
import dataclasses
import json

import jax
import numpy as np
import pytest

import pcmusic
from pcmusic import midi
from pcmusic.cli import main
from pcmusic.generation import phrases, sampling
from pcmusic.model import note_prior
from pcmusic.model import notes as notes_lib

REF_HZ = 261.63


def _corpus(step_cents, seed, n=12, length=8):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        degrees = np.clip(np.cumsum(rng.integers(-2, 3, size=length)), -6, 8)
        f0 = REF_HZ * 2.0 ** (degrees * step_cents / 1200.0)
        ioi = rng.choice([0.2, 0.4], size=length)
        onsets = np.concatenate([[0.0], np.cumsum(ioi)[:-1]])
        out.append(np.stack([onsets, onsets + 0.8 * ioi, f0, np.full(length, -18.0), np.ones(length)], 1))
    return out


def _off_lattice_cents(f0_hz, step_cents):
    c = np.mod(1200 * np.log2(np.asarray(f0_hz) / REF_HZ), step_cents)
    return np.minimum(c, step_cents - c)


def test_fit_from_midi_then_generate_phrases_in_the_learned_tuning(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, phrase in enumerate(_corpus(240.0, 0)):
        midi.write(corpus / f"p{i}.mid", [phrase])
    prior_path = tmp_path / "prior.npz"
    assert main(["notes", "fit", str(corpus), "--out", str(prior_path), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "tuning peaks at" in said
    peaks = note_prior.lattice_cents(note_prior.load(prior_path))
    assert len(peaks) == 5                                     # five steps per octave, learned
    assert np.all(np.abs(np.diff(peaks) - 240.0) < 5.0)
    out = tmp_path / "gen"
    assert main(["generate", "--notes", str(prior_path), "--out", str(out), "--n", "2", "--seconds", "3",
                 "--listen", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for record in summary["samples"]:
        notes = midi.read(out / record["mid"])[0]
        assert notes.shape[0] == record["n_notes"] >= 4
        assert np.all(np.diff(notes[:, 0]) > 0)                # a phrase: notes one after another
        assert np.median(_off_lattice_cents(notes[:, 2], 240.0)) < 15.0
        csv = np.loadtxt(out / f"sample_{summary['samples'].index(record)}.notes.csv", delimiter=",", ndmin=2)
        np.testing.assert_allclose(csv[:, 2], notes[:, 2], rtol=1e-4)
        assert (out / record["wav"]).stat().st_size > 1000
    assert main(["generate", "--notes", str(prior_path), "--out", str(out), "--n", "2", "--listen", "0"]) == 2
    assert "already holds" in capsys.readouterr().err


def test_bad_note_prior_inputs_fail_in_one_line(tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", tuning=np.zeros(3))
    assert main(["generate", "--notes", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.npz lacks" in err and "pcmusic notes fit" in err and len(err.strip().splitlines()) == 1
    assert main(["generate", "--out", str(tmp_path / "o")]) == 2
    assert "--ckpt" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("hi")
    assert main(["notes", "fit", str(tmp_path / "x.txt"), "--out", str(tmp_path / "p.npz")]) == 2
    assert "not audio" in capsys.readouterr().err


def test_a_generated_phrase_is_heard_at_the_pitches_it_intended():
    """Listening: the untrained listener hears the phrase's notes within 15 cents (median)
    of the note level's intended pitches, in a tuning that is not 12-TET."""
    prior = note_prior.fit(_corpus(240.0, 1))
    intent = np.asarray([[np.log2(300.0), np.log(0.3), -18.0]], np.float32)
    (phrase,) = phrases.generate_phrases(jax.random.key(3), prior, intent=intent, seconds=2.0, listen_steps=2)
    assert phrase.intended.shape[0] >= 3
    assert np.mean(np.isfinite(phrase.pitch_error_cents)) >= 0.75          # most notes heard as notes
    assert np.nanmedian(np.abs(phrase.pitch_error_cents)) < 15.0
    assert np.median(_off_lattice_cents(phrase.intended[:, 2], 240.0)) < 15.0


def test_a_models_phrases_take_the_spectral_shape_of_its_own_sounds():
    # The builtin model's sounds fall ~2 dB per partial over the first eight; a note in
    # its timbre (phrases.model_timbre) follows them within 2 dB, the default k^-1
    # timbre does not (4-6 dB off).
    model, _ = pcmusic.load_model("builtin:tiny")
    cspec, spec = model.spec.controls, notes_lib.NoteSpec()
    controls = model.predict_down(sampling.sample_intent(model, jax.random.key(5), 16), 128)[0]
    log_amp = np.asarray(controls["log_amp"], np.float64)[:, 0]                 # [n, F, H]
    power = np.sum(np.exp(2 * log_amp), axis=-1)[..., None]
    own = np.sum(power * (log_amp - log_amp.max(-1, keepdims=True)), axis=(0, 1)) / power.sum()

    def shape_db(timbre):
        notes = phrases.notes_from_records([np.asarray([[0.0, 0.5, 220.0, -20.0]])], cspec=cspec, spec=spec,
                                           timbre=timbre)
        a = np.asarray(notes_lib.predict_controls(notes, 64, cspec=cspec, spec=spec)["log_amp"])[0, 0, 30]
        return 20 / np.log(10) * (a - a.max() - own)[:8]

    # the same 16 sounds (the same key) that the test averaged
    assert np.max(np.abs(shape_db(phrases.model_timbre(model, jax.random.key(5), spec, n=16)))) < 2.0
    assert np.max(np.abs(shape_db(None))) > 3.0


def test_a_linked_prior_draws_each_phrase_under_one_hierarchy_intent():
    # A prior whose link reads the register off the first dimension of the model's
    # intent (s.d. ~0): each phrase's register is its own drawn intent's prediction, and
    # its timbre that intent's sound; a prior without a link draws no intent.
    model, _ = pcmusic.load_model("builtin:tiny")
    d_top = model.spec.latent_dims[-1]
    weight = np.zeros((d_top, 3), np.float32)
    weight[0, 0] = 0.5
    base = note_prior.fit(_corpus(240.0, 2))
    prior = base._replace(top_mean=np.zeros(d_top, np.float32), link_weight=weight,
                          link_sd=np.asarray([1e-4, 1e-4, 1e-3], np.float32))
    made = phrases.generate_phrases(jax.random.key(4), prior, n=3, seconds=1.0, model=model, listen_steps=0)
    tops = np.stack([p.top for p in made])
    assert tops.shape == (3, d_top) and np.ptp(tops[:, 0]) > 0.0
    np.testing.assert_allclose([p.intent[0] for p in made], base.intent_mean[0] + 0.5 * tops[:, 0], atol=1e-3)
    spec = notes_lib.NoteSpec()
    cspec = dataclasses.replace(model.spec.controls, n_voices=1)
    timbres = phrases.intent_timbres(model, tops[:, None], spec)

    def render(records, timbre):
        notes = phrases.notes_from_records([records], cspec=cspec, spec=spec, timbre=timbre)
        return np.asarray(phrases.render_notes(notes, cspec.n_frames(cspec.sample_rate), cspec=cspec, spec=spec,
                                               key=jax.random.key(0)))[0]

    for p, timbre in zip(made, timbres):        # each sound is its own intent's timbre, not the pooled one
        np.testing.assert_allclose(p.audio, render(p.intended, timbre), atol=1e-3)   # noise: silent, not 0
        pooled = render(p.intended, phrases.intent_timbres(model, tops[:, None], spec, pooled=True)[0])
        assert np.max(np.abs(p.audio - pooled)) > 1e-2
    (plain,) = phrases.generate_phrases(jax.random.key(4), base, n=1, seconds=1.0, model=model, listen_steps=0)
    assert plain.top.size == 0
    wrong = prior._replace(top_mean=np.zeros(d_top + 1, np.float32), link_weight=np.zeros((d_top + 1, 3), np.float32))
    with pytest.raises(pcmusic.PcmusicError, match=f"links hierarchy intents of {d_top + 1} dims"):
        phrases.generate_phrases(jax.random.key(4), wrong, n=1, seconds=1.0, model=model, listen_steps=0)
