"""The learned hierarchy above the controls, and generation with refinement."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pcmusic.model import maps as audio_maps
from pcmusic.model import controls as C
from pcmusic import generation as G
from pcmusic import model as M
from pcmusic import perception
from pcmusic.model import priors
from pcmusic.errors import PcmusicError
from tests.test_train import tiny_run  # noqa: F401  (session fixture: configs/tiny.toml trained)

SPEC = M.ModelSpec(controls=C.ControlSpec(n_harmonics=12, n_noise_bands=8), latent_dims=(8, 8, 4),
                   hidden=16)


@pytest.fixture(scope="module")
def model():
    return M.init_model(jax.random.key(0), SPEC)


def test_upsample_linear_reproduces_ramps_and_holds_the_end():
    x = jnp.arange(5, dtype=jnp.float32).reshape(1, 5, 1) * 2.0
    y = np.asarray(audio_maps.upsample_linear(x, 4))[0, :, 0]
    np.testing.assert_allclose(y[:17], np.arange(17) / 2.0, atol=1e-6)
    np.testing.assert_allclose(y[16:], 8.0)


def test_top_down_prediction_has_zero_error_below_the_top(model):
    b = model
    top = jax.random.normal(jax.random.key(1), (2, 1, 4))
    c, z2, z3, t = b.predict_down(top, 32)
    assert c["log_amp"].shape == (2, 1, 32, 12) and z2.shape == (2, 8, 8) and z3.shape == (2, 2, 8)
    _, aux = b.upper_energy(c, (z2, z3, t))
    for err in jax.tree.leaves(aux["errors"][:3]):
        assert float(jnp.max(jnp.abs(err))) < 1e-5
    assert float(b.upper_energy(dict(c, log2_f0=c["log2_f0"] + 0.1), (z2, z3, t))[1]["energies"][0]) > \
        float(aux["energies"][0]) + 1.0


def test_pad_frames_and_shapes_errors():
    assert SPEC.pad_frames(1) == 16 and SPEC.pad_frames(17) == 32
    with pytest.raises(PcmusicError):
        M.ModelSpec(latent_dims=(8, 8))


def test_generation_refinement_lowers_the_energy(model):
    """(That a seed gives the same sound in every run is checked across processes in
    tests/test_listening.py.)"""
    audio, trace = G.generate(model, jax.random.key(2), n=2, seconds=0.2, refine_steps=12)
    assert audio.shape == (2, SPEC.pad_frames(SPEC.controls.n_frames(3200)) * 128)
    assert trace.energy.shape == (2, 13) and trace.energies.shape == (2, 13, 5)
    mean = trace.energy.mean(0)
    assert np.all(np.diff(mean) <= 1e-4 * np.abs(mean[:-1]))
    assert mean[-1] < mean[0]
    np.testing.assert_allclose(trace.energies.sum(-1), trace.energy, rtol=1e-4)


def test_load_model_then_generate_through_the_public_api(tiny_run):
    import pcmusic

    model, cfg = pcmusic.load_model(tiny_run)
    assert isinstance(model, pcmusic.AudioModel) and model.spec == cfg.model
    audio, trace = pcmusic.generate(model, jax.random.key(0), n=2, seconds=0.2, refine_steps=3)
    rate = model.spec.controls.sample_rate
    top_frame = cfg.model.controls.hop * int(np.prod(cfg.model.rate_factors))   # samples
    assert audio.dtype == np.float32 and audio.ndim == 2 and audio.shape[0] == 2
    # 0.2 s rounded up to whole top-level frames
    assert 0.2 * rate <= audio.shape[1] < 0.2 * rate + top_frame and audio.shape[1] % top_frame == 0
    assert np.all(np.isfinite(audio)) and np.all(np.abs(audio).max(axis=1) > 0)
    e = np.asarray(trace.energy)
    assert e.shape == (2, 4) and np.all(np.isfinite(e))
    assert np.all(np.diff(e, axis=1) <= 1e-5 * np.abs(e[:, :-1])), e   # refinement never raises F
    assert np.all(e[:, -1] < e[:, 0]), e


def test_refinement_pulls_an_ancestral_sample_back_towards_its_intent(model):
    """F's minimum under a clamped intent is the top-down mean (every residual 0; the
    efference copy makes the model's own render no surprise), so refinement must move a
    temperature-1 sample's controls towards the temperature-0 ones."""
    intent = jax.random.normal(jax.random.key(6), (3, 1, 4))
    kw = dict(intent=intent, seconds=0.1)
    _, mean = G.generate(model, jax.random.key(7), refine_steps=0, temperature=0.0, **kw)
    _, unrefined = G.generate(model, jax.random.key(7), refine_steps=0, temperature=1.0, **kw)
    _, refined = G.generate(model, jax.random.key(7), refine_steps=30, temperature=1.0, **kw)

    def distance(trace):   # per sample, f0 (log2) and partial amplitudes (log) from the mean's
        return sum(np.sqrt(np.mean((trace.controls[k] - mean.controls[k]) ** 2,
                                   axis=tuple(range(1, mean.controls[k].ndim))))
                   for k in ("log2_f0", "log_amp"))
    assert np.all(distance(unrefined) > 0.01)
    assert np.all(distance(refined) < 0.5 * distance(unrefined))
    assert np.all(refined.energies[:, 0, 0] < 1e-6)     # the model's own render: no sensory error


def test_refinement_hears_what_hearing_does_to_the_sound(model):
    """The model's own render heard as is: no sensory error. Heard through a 6 dB cut it
    no longer matches the believed controls: the sensory error is > 0 and refinement
    lowers it."""
    intent = jax.random.normal(jax.random.key(8), (2, 1, 4))
    kw = dict(intent=intent, seconds=0.1, temperature=0.0)
    _, clean = G.generate(model, jax.random.key(9), refine_steps=0, **kw)
    _, cut = G.generate(model, jax.random.key(9), refine_steps=30, hearing=G.Hearing(gain_db=-6.0), **kw)
    assert np.all(clean.energies[:, 0, 0] < 1e-6) and np.all(cut.energies[:, 0, 0] > 1.0)
    assert np.all(cut.energies[:, -1, 0] < cut.energies[:, 0, 0] - 0.05)


def test_zero_temperature_without_refinement_renders_the_top_down_mean(model):
    intent = jnp.zeros((1, 1, 4))
    audio, trace = G.generate(model, jax.random.key(3), seconds=0.2, refine_steps=0, intent=intent,
                              temperature=0.0)
    np.testing.assert_allclose(audio, trace.unrefined_audio)
    c, *_ = model.predict_down(intent, 32)
    np.testing.assert_allclose(trace.controls["log_amp"], c["log_amp"], atol=1e-6)
    with pytest.raises(PcmusicError, match="intent"):
        G.generate(model, jax.random.key(3), seconds=0.2, intent=jnp.zeros((1, 3)))


def test_hearing_lowpass_attenuates_highs_and_is_differentiable():
    sr, n = 16000, 4096
    t = np.arange(n) / sr
    x = jnp.asarray(np.stack([np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 4000 * t)]), jnp.float32)
    y = G.Hearing(lowpass_hz=500.0).apply(x, sample_rate=sr, key=jax.random.key(0))
    rms = np.sqrt(np.mean(np.asarray(y) ** 2, axis=1)) * np.sqrt(2)
    assert rms[0] > 0.85 and rms[1] < 0.15
    g = jax.grad(lambda a: jnp.sum(G.Hearing(lowpass_hz=500.0).apply(a, sample_rate=sr,
                                                                     key=jax.random.key(0)) ** 2))(x)
    assert np.all(np.isfinite(np.asarray(g)))


def test_shooting_finds_the_top_that_predicts_the_controls(model):
    """Controls predicted from known tops: shooting recovers those tops (energy at the
    truth's or below) where the untrained encoder's guess is far off."""
    b = model
    intent = jax.random.normal(jax.random.key(4), (6, 1, 4))
    c, z2, z3, _ = b.predict_down(intent, 32)
    guess = b.encode_upper(c)
    shot = perception.settle_upper(b, c, perception.InferenceSpec(n_shoot_steps=300, lr_shoot=0.03,
                                                                  n_upper_steps=0))
    energy = lambda upper: float(b.upper_energy(c, upper)[0])  # noqa: E731
    dist = lambda upper: np.linalg.norm(np.asarray(upper[2] - intent)[:, 0], axis=-1).mean()  # noqa: E731
    assert energy(shot) <= energy((z2, z3, intent)) + 1.0 < energy(guess) - 100.0
    assert dist(shot) < 0.4 * dist(guess)
    assert all(u.shape == v.shape for u, v in zip(shot, (z2, z3, intent)))


def test_refinement_structural_prior_scores_departures_from_the_prediction(model):
    """Refinement's structural prior scores c - g2(z2) (the control-level error of the upper
    energy): zero at the prediction however rough the prediction is, large for a rough
    departure from it; on the controls themselves it would charge the prediction."""
    b = model
    c, z2, z3, top = b.predict_down(jax.random.normal(jax.random.key(5), (2, 1, 4)), 32)

    def prior(controls):   # as refinement calls it: the departure is the upper energy's error
        departure = b.upper_energy(controls, (z2, z3, top))[1]["errors"][0]
        return priors.energy(departure, dataclasses.replace(SPEC.prior, inharm_precision=0.0), SPEC.controls)
    assert float(jnp.max(prior(c))) < 1e-6
    assert float(jnp.min(priors.energy(c, SPEC.prior, SPEC.controls))) > 1.0
    wiggle = 0.01 * jnp.sin(jnp.arange(32, dtype=jnp.float32) * 2.0).reshape(1, 1, 32)   # rough in time
    rough = dict(c, log2_f0=c["log2_f0"] + wiggle)
    assert float(jnp.min(prior(rough))) > 10.0


def test_latent_decay_adds_a_zero_mean_prior_on_z2_and_z3(model):
    n = SPEC.frames_per_top * 2
    b = model
    top = jax.random.normal(jax.random.key(4), (2, 1, 4))
    c, z2, z3, _ = b.predict_down(top, n)
    z2 = z2 + 3.0    # an offset that the maps' biases could absorb, but the prior charges
    e_decay, aux = b.upper_energy(c, (z2, z3, top))
    plain = M.AudioModel(dataclasses.replace(SPEC, latent_decay=0.0), model.params)
    e_plain, aux_plain = plain.upper_energy(c, (z2, z3, top))
    expected = 0.5 * SPEC.latent_decay * (float(jnp.sum(z2 ** 2)) + float(jnp.sum(z3 ** 2)))
    np.testing.assert_allclose(float(e_decay - e_plain), expected, rtol=1e-3)   # float32 difference
    np.testing.assert_allclose(np.asarray(aux["energies"])[[0, 3]], np.asarray(aux_plain["energies"])[[0, 3]],
                               rtol=1e-6)


def test_topdown_energy_scores_the_controls_against_the_tops_whole_prediction(model):
    """learn.topdown_energy: zero for controls the top predicts exactly; for an f0 off by
    0.1 octave, 0.5 * pi_f0 * sum(audibility * 0.01) per clip; its gradient reaches the
    top map through every level and leaves the precisions and the top alone."""
    from pcmusic.training import step as learn
    b = model
    top = jax.random.normal(jax.random.key(2), (2, 1, 4))
    c, _, _, _ = b.predict_down(top, 32)
    assert abs(float(learn.topdown_energy(b, c, top))) < 1e-6
    off = dict(c, log2_f0=c["log2_f0"] + 0.1)
    weights = model.audibility(c)["log2_f0"]
    pi_f0 = float(jnp.exp(model.params["pc"]["log_precision"][0]["log2_f0"]))
    expected = 0.5 * pi_f0 * float(jnp.sum(weights)) * 0.01 / 2
    np.testing.assert_allclose(float(learn.topdown_energy(b, off, top)), expected, rtol=1e-4)
    grads = jax.grad(lambda p: learn.topdown_energy(M.AudioModel(SPEC, dict(model.params, pc=p)),
                                                    off, top))(model.params["pc"])
    assert float(jnp.sum(jnp.abs(jax.tree.leaves(grads["maps"][2])[0]))) > 0      # g_top
    assert all(float(jnp.max(jnp.abs(g))) == 0 for g in jax.tree.leaves(grads["log_precision"]))
    assert float(jnp.max(jnp.abs(grads["top_mean"]))) == 0


def test_positional_top_map_predicts_a_course_over_the_phrase_and_the_encoder_hears_order():
    """top_map="positional": one top predicts a z3 that changes from phrase frame to
    phrase frame (the tiled map repeats one vector), the prediction is differentiable
    in the top, the encoder's guess of the top tells a phrase from its time reversal
    (mean pooling cannot), and shooting recovers a top from its prediction."""
    tiled = M.init_model(jax.random.key(0), SPEC)
    spec = dataclasses.replace(SPEC, top_map="positional")
    b = M.init_model(jax.random.key(0), spec)
    top = jax.random.normal(jax.random.key(1), (2, 1, 4))
    z3_tiled, z3 = tiled.predict_down(top, 64)[2], b.predict_down(top, 64)[2]
    assert z3.shape == z3_tiled.shape == (2, 4, 8)
    assert float(jnp.max(jnp.std(z3_tiled, axis=1))) < 1e-6
    assert float(jnp.min(jnp.max(jnp.std(z3, axis=1), axis=-1))) > 1e-3
    grad = jax.grad(lambda t: jnp.sum(b.predict_down(t, 64)[0]["log2_f0"]))(top)
    assert np.all(np.isfinite(np.asarray(grad))) and float(jnp.max(jnp.abs(grad))) > 0
    for model, differs in ((tiled, False), (b, True)):   # the encoder's last map: z3 -> top
        guess = lambda z, m=model: m.encoder().maps[2](m.params["encoder"][2], z)  # noqa: E731
        d = float(jnp.max(jnp.abs(guess(z3) - guess(jnp.flip(z3, axis=1)))))
        assert (d > 1e-3) if differs else (d < 1e-5), d
    c, z2_true, z3_true, _ = b.predict_down(top, 64)
    shot = perception.settle_upper(b, c, perception.InferenceSpec(n_shoot_steps=300, lr_shoot=0.03,
                                                                  n_upper_steps=0))
    assert float(b.upper_energy(c, shot)[0]) <= float(b.upper_energy(c, (z2_true, z3_true, top))[0]) + 1.0
    with pytest.raises(PcmusicError, match="top_map"):
        M.ModelSpec(top_map="attention")


def test_intent_of_shoots_the_top_that_predicts_the_settled_controls(model):
    """intent_of: 0 steps keeps the settled top; n steps move a displaced top back
    to one whose whole top-down prediction fits the controls (top-down energy far below
    the displaced top's, near the true top's zero)."""
    from pcmusic.training import step as learn
    b = model
    truth = jax.random.normal(jax.random.key(5), (3, 1, 4))
    c = b.predict_down(truth, 32)[0]
    displaced = truth + 0.5 * jax.random.normal(jax.random.key(6), truth.shape)
    assert perception.intent_of(b, c, displaced, n_steps=0, learning_rate=0.03) is displaced
    shot = perception.intent_of(b, c, displaced, n_steps=300, learning_rate=0.03)
    before, after = float(learn.topdown_energy(b, c, displaced)), float(learn.topdown_energy(b, c, shot))
    assert shot.shape == truth.shape and after < 0.2 * before, (before, after)
