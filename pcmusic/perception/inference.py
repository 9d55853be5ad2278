"""One settle: the inference that perception, training, listening and evaluation share.

Perception is inference: with the sensory level clamped to a sound x (scaled to the
reference level, `pcmusic.model.sensory.normalise`), minimise

    E = pi_s * 0.5 * sum_r w_r ||blur_t(phi_r(x) - phi_r(synth(c)))||^2   sensory
      + prior(c)                                    structural prior (`pcmusic.model.priors`)
      + E_up(c, z2, z3, top)                        with a model (`AudioModel.upper_energy`)

over the controls c and, with a model, the latents above them. Inference starts from
the fixed pitch proposal (`pcmusic.dsp.pitch`, each voice moved an octave down where
that halves the sensory error with partials of its own: `choose_octaves`) and, with a
model, the upper latents
settled on it (`settle_upper`: the top shot through the top-down maps, then z2, z3, top
settled with the controls clamped); then Adam runs on everything with a coarse-to-fine
schedule: the sensory error is blurred along frequency by a Gaussian whose width starts
at `blur` times the clip's median f0 and falls to zero over the first half, so f0 first
finds the right basin and then the exact partial positions. With a model the upper
latents are settled once more on the final controls. Several octave starts (shifts of
the proposal) run under vmap in `settle_batch`; the lowest final energy wins per clip.

Shooting: relaxing the free chain z2, z3, top from the encoder's guess climbs to the top
that explains the controls only slowly (the gradient moves up one level per step), so
`shoot_top` runs Adam on the top alone with every level below it its top-down
prediction, min_top E_up(c, g(top), top), from several starts, keeping per clip the top
of lowest energy.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pcmusic import pc
from pcmusic.dsp import pitch
from pcmusic.model import controls as controls_lib
from pcmusic.model import intents, priors, sensory
from pcmusic.pc import optim

SUB_OCTAVE_GAIN = 0.5        # a voice drops an octave where that halves the sensory error ...
SUB_OCTAVE_WINDOW = 9        # ... summed over this many control frames around the frame ...
SUB_OCTAVE_PEAK_DB = 10.0    # ... its new partials stand this far out of the spectrum ...
SUB_OCTAVE_SHARE_DB = -20.0  # ... and hold at least this share of its partials' power


@dataclasses.dataclass(frozen=True)
class InferenceSpec:
    """How perception settles. Learning rates are Adam step sizes at the start of a
    cosine decay: lr_f0 in octaves of log2 f0 (0.004 = 4.8 cents), lr_amp in natural
    log units of amplitude, lr_noise in natural log units of the noise bands (faster:
    they start near silence, and the noise of a noisy sound must rise several nats
    within the steps), lr_latent for latents above the controls.
    blur: initial blur s.d. as a fraction of the clip's median f0 (0 disables).
    sensory_precision: pi_s. octave_starts: multi-start octave shifts of the proposal.
    n_upper_steps / lr_upper: with a trained model, the latents above the controls are
    also settled alone (controls clamped; cheap, no synthesis) before and after the
    joint inference, with Adam at lr_upper: deep levels converge far more slowly than
    the controls, and a joint run long enough for them would be all synthesis.
    n_shoot_steps / lr_shoot: before that, the top is found by shooting (Adam on the top
    alone through the top-down maps; `shoot_top`); 0 uses the amortised encoder's guess."""

    n_steps: int = 60
    lr_f0: float = 0.004
    lr_amp: float = 0.05
    lr_noise: float = 0.15
    lr_latent: float = 0.05
    blur: float = 0.05
    sensory_precision: float = 0.01
    octave_starts: tuple[float, ...] = (0.0,)
    n_upper_steps: int = 100
    lr_upper: float = 0.01
    n_shoot_steps: int = 100
    lr_shoot: float = 0.03


def _labels(latents: dict) -> dict:
    group = {"log2_f0": "f0", "log_noise": "noise"}
    tree = {"controls": {k: group.get(k, "amp") for k in latents["controls"]},
            "upper": jax.tree.map(lambda _: "latent", latents["upper"])}
    return tree


def latent_optimizer(latents: dict, spec: InferenceSpec, *, clamp=None) -> optax.GradientTransformation:
    """Adam per group of latents with cosine-decayed step sizes (see InferenceSpec).

    `pc.infer` hands the optimiser the list of free (unclamped) leaves, so the group
    labels are given in that order.
    """
    def adam(peak):
        return optax.adam(optax.cosine_decay_schedule(peak, max(spec.n_steps, 1), alpha=0.01))
    part = pc.partition(clamp, latents)
    labels = [label for label, fixed in zip(jax.tree.leaves(_labels(latents)), part.fixed) if not fixed]
    return optax.multi_transform({"f0": adam(spec.lr_f0), "amp": adam(spec.lr_amp),
                                  "noise": adam(spec.lr_noise), "latent": adam(spec.lr_latent)}, labels)


def make_energy_fn(observed: tuple, blur0_hz: jax.Array, *, cspec, sspec, prior, inference,
                   model=None):
    """`(latents, step) -> (E, aux)` for `pc.infer`; aux["energies"] is per level
    (sensory, controls, then the model's upper levels)."""
    def fn(latents, step):
        c = latents["controls"]
        e_sens, errors = sensory.annealed_sensory_energy(
            c, observed, blur0_hz, step, n_steps=inference.n_steps, blurred=inference.blur != 0,
            cspec=cspec, sspec=sspec, precision=inference.sensory_precision)
        terms = [jnp.sum(e_sens), jnp.sum(priors.energy(c, prior, cspec))]
        all_errors = [errors, None]
        if model is not None:
            e_up, aux_up = model.upper_energy(c, latents["upper"], step=step)
            terms[1] = terms[1] + aux_up["energies"][0]
            terms += list(aux_up["energies"][1:])
            all_errors[1] = aux_up["errors"][0]
            all_errors += list(aux_up["errors"][1:])
        energies = jnp.stack(terms)
        return jnp.sum(energies), {"energies": energies, "errors": tuple(all_errors)}

    return fn


def initial_controls(audio: jax.Array, *, cspec: controls_lib.ControlSpec, n_frames: int) -> dict:
    """Encoder proposal for one clip: audio `[n]` -> Controls with batch 1."""
    f0 = pitch.propose(audio, sample_rate=cspec.sample_rate, hop=cspec.hop, n_frames=n_frames,
                         n_voices=cspec.n_voices, f0_min_hz=cspec.f0_min_hz, f0_max_hz=cspec.f0_max_hz)
    amps = pitch.read_amplitudes(audio, f0, sample_rate=cspec.sample_rate, hop=cspec.hop,
                                   n_harmonics=cspec.n_harmonics) / cspec.n_voices
    c = controls_lib.zeros(cspec, 1, n_frames)
    c["log2_f0"] = jnp.log2(f0)[None]
    c["log_amp"] = jnp.log(amps + 1e-5)[None]
    c["log_noise"] = jnp.full_like(c["log_noise"], np.log(1e-3))
    return c


def choose_octaves(audio: jax.Array, controls: dict, observed: tuple, *, cspec, sspec) -> dict:
    """The proposal with each voice moved an octave down where the energy says so.

    A harmonic-sum proposal may take a tone whose second partial is its loudest for the
    octave above (its odd partials then have no voice), and gradient descent cannot
    cross an octave. Per voice, in turn: the controls with that voice an octave down
    (partial amplitudes read off the spectrum at the new partials) are compared with the
    current ones by their sensory error, frame by frame (the resolution whose hop is
    nearest the control hop, summed over SUB_OCTAVE_WINDOW frames). A frame takes the
    lower octave where that error is at most SUB_OCTAVE_GAIN times the current one, the
    partials only the lower octave has stand SUB_OCTAVE_PEAK_DB out of the spectrum
    (`pitch.odd_partial_prominence_db`) and hold SUB_OCTAVE_SHARE_DB of the power of all
    its partials (both medians over the window), and the pitch stays above f0_min_hz.
    The lower octave can explain every partial of the higher one, and its extra partials
    soak up noise between them (a bowed or blown tone), faint artefacts far below the
    tone (the log-spectral error weighs a partial 50 dB down as much as the loudest) or
    a note ringing on under the next: it must pay for itself with partials of its own.
    audio `[B, n_samples]`, controls `[B, ...]`, observed = `sensory.observe(audio)`;
    traceable.
    """
    hops = [n // 4 for n in sspec.resolutions]
    r = int(np.argmin([abs(h - cspec.hop) for h in hops]))
    n_frames = controls["log2_f0"].shape[-1]
    rows = np.minimum(np.round(np.arange(n_frames) * cspec.hop / hops[r]).astype(np.int32),
                      observed[r].shape[1] - 1)
    kernel = jnp.ones(SUB_OCTAVE_WINDOW, jnp.float32)

    def frame_error(c):                                     # [B, n_frames], windowed
        predicted = sensory.predict(c, cspec, sspec)[r]
        e = jnp.sum(jnp.square(observed[r] - predicted), axis=-1)[:, rows]
        return jax.vmap(lambda row: jnp.convolve(row, kernel, mode="same"))(e)

    def read(x, f0):                                        # [n_samples], [V, F] -> [V, F, H]
        return pitch.read_amplitudes(x, f0, sample_rate=cspec.sample_rate, hop=cspec.hop,
                                     n_harmonics=cspec.n_harmonics) / cspec.n_voices

    def windowed_median(p):                                 # [B, F] -> [B, F]
        half = SUB_OCTAVE_WINDOW // 2
        padded = jnp.pad(p, ((0, 0), (half, half)), mode="edge")
        windows = jnp.stack([padded[:, i:i + n_frames] for i in range(SUB_OCTAVE_WINDOW)], axis=-1)
        return jnp.median(windows, axis=-1)

    def prominence(x, f0):                                  # [n_samples], [V, F] -> [V, F]
        return pitch.odd_partial_prominence_db(x, f0, sample_rate=cspec.sample_rate, hop=cspec.hop)

    c = controls
    for v in range(cspec.n_voices):
        lower = c["log2_f0"].at[:, v].add(-1.0)
        amps = jax.vmap(read)(audio, jnp.exp2(lower))
        candidate = dict(c, log2_f0=lower, log_amp=c["log_amp"].at[:, v].set(jnp.log(amps[:, v] + 1e-5)))
        peaks = windowed_median(jax.vmap(prominence)(audio, jnp.exp2(c["log2_f0"]))[:, v])   # [B, F]
        power = jnp.square(amps[:, v])                                               # [B, F, H]
        share = windowed_median(10.0 * jnp.log10((jnp.sum(power[..., 0::2], -1) + 1e-12)
                                                 / (jnp.sum(power, -1) + 1e-12)))
        take = ((frame_error(candidate) <= SUB_OCTAVE_GAIN * frame_error(c))
                & (peaks >= SUB_OCTAVE_PEAK_DB) & (share >= SUB_OCTAVE_SHARE_DB)
                & (lower[:, v] >= np.log2(cspec.f0_min_hz)))                        # [B, F]
        c = dict(c, log2_f0=c["log2_f0"].at[:, v].set(jnp.where(take, lower[:, v], c["log2_f0"][:, v])),
                 log_amp=c["log_amp"].at[:, v].set(jnp.where(take[..., None], candidate["log_amp"][:, v],
                                                             c["log_amp"][:, v])))
    return c


def resolve_specs(*, model=None, n_voices: int = 1, cspec=None, sspec=None, prior=None,
                  inference=None) -> tuple:
    """(cspec, sspec, prior, inference): the model's control and sensory specs where a model
    is given (its prior unless `prior` is), else the given ones or the defaults."""
    if model is not None:
        cspec, sspec = model.spec.controls, model.spec.sensory
        prior = prior or model.spec.prior
    cspec = cspec or controls_lib.ControlSpec(n_voices=n_voices)
    sspec = sensory.resolve(sspec or sensory.SensorySpec(), cspec.sample_rate)
    return cspec, sspec, prior or priors.ControlPrior(), inference or InferenceSpec()


def shoot_top(model, controls: dict, starts: list, *, n_steps: int, learning_rate: float) -> tuple:
    """(z2, z3, top) for controls `[B, ...]`: the top shot from each of `starts` (tops
    `[B, 1, d_top]`) for n_steps of Adam at learning_rate, the lowest-energy one per clip,
    with z2, z3 its top-down predictions. `model`: an `AudioModel`."""
    n_frames = controls["log2_f0"].shape[-1]

    def energy(t, c):                            # summed over clips; each top moves alone
        _, z2, z3, _ = model.predict_down(t, n_frames)
        return model.upper_energy(c, (z2, z3, t))[0]

    def clip_energies(t):                        # [B]
        one = lambda tt, cc: energy(tt[None], jax.tree.map(lambda x: x[None], cc))  # noqa: E731
        return jax.vmap(one)(t, controls)

    opt = optax.adam(learning_rate)

    def step(carry, _):
        t, state = carry
        t, state = optim.apply(opt, jax.grad(energy)(t, controls), state, t)
        return (t, state), None

    def shoot(t0):
        (t, _), _ = jax.lax.scan(step, (t0, opt.init(t0)), None, length=n_steps)
        return t, clip_energies(t)

    best_top, best = shoot(starts[0])
    for t0 in starts[1:]:   # a loop, not a vmap over starts: a vmap deadlocked sharded training
        t, e = shoot(t0)
        best_top, best = jnp.where((e < best)[:, None, None], t, best_top), jnp.minimum(e, best)
    _, z2, z3, _ = model.predict_down(best_top, n_frames)
    return (z2, z3, best_top)


def settle_upper(model, controls: dict, inference: InferenceSpec, *, top=None) -> tuple:
    """(z2, z3, top) for clamped controls `[B, ...]`: the top shot from the amortised
    guess, the intent mean and `top` `[B, 1, d_top]` where given (`shoot_top`;
    inference.n_shoot_steps 0 keeps the guess), then z2, z3, top settled together for
    inference.n_upper_steps (`AudioModel.settle_upper`)."""
    upper = model.encode_upper(controls)
    if inference.n_shoot_steps > 0:
        guess = upper[-1]
        mean = intents.intent_stats(model.params)[0]
        starts = [guess, jnp.broadcast_to(mean, guess.shape)] + ([] if top is None else [top])
        upper = shoot_top(model, controls, starts, n_steps=inference.n_shoot_steps,
                          learning_rate=inference.lr_shoot)
    return model.settle_upper(controls, upper, n_steps=inference.n_upper_steps,
                              learning_rate=inference.lr_upper)


def settle(audio, *, inference: InferenceSpec, model=None, cspec=None, sspec=None, prior=None,
           shift=0.0, record_stride: int | None = None) -> pc.InferenceResult:
    """Settle clips float32 `[B, n_frames * hop]` at the reference level (traceable).

    The pitch proposal gives each clip's controls (shifted by `shift` octaves), the model
    (an `AudioModel`, or None for the structural prior alone) the upper latents, and one
    inference over the batch settles them (module docstring). cspec / sspec / prior as in
    `resolve_specs`. Returns the `pc.InferenceResult`: latents {"controls", "upper"} with
    leading batch axis B, the energy summed over the batch, per-level terms in
    aux["energies"] (sensory, controls, then z2, z3, top with a model).
    """
    cspec, sspec, prior, inference = resolve_specs(model=model, cspec=cspec, sspec=sspec, prior=prior,
                                                   inference=inference)
    n_frames = audio.shape[-1] // cspec.hop
    c = jax.vmap(lambda x: initial_controls(x, cspec=cspec, n_frames=n_frames))(audio)
    c = jax.tree.map(lambda a: a[:, 0], c)   # drop the per-clip batch axis of 1
    observed = sensory.observe(audio, sspec)
    c = choose_octaves(audio, c, observed, cspec=cspec, sspec=sspec)
    c = dict(c, log2_f0=c["log2_f0"] + shift)
    blur0 = sensory.initial_blur_hz(c, inference.blur)
    upper = () if model is None else settle_upper(model, c, inference)
    latents = {"controls": c, "upper": upper}
    fn = make_energy_fn(observed, blur0, cspec=cspec, sspec=sspec, prior=prior,
                        inference=inference, model=model)
    result = pc.infer(fn, latents, optimizer=latent_optimizer(latents, inference),
                      n_steps=inference.n_steps, record_stride=record_stride)
    if model is None:
        return result
    c = result.latents["controls"]
    latents = {"controls": c, "upper": settle_upper(model, c, inference, top=result.latents["upper"][-1])}
    energy, aux = fn(latents, jnp.int32(inference.n_steps))
    return result._replace(latents=latents, energy=energy, aux=aux)


@functools.partial(jax.jit, static_argnames=("cspec", "sspec", "prior", "inference", "record_stride"))
def settle_batch(audio, model=None, *, cspec, sspec, prior, inference,
                 record_stride=None) -> pc.InferenceResult:
    """`settle` each clip of `[B, n_frames * hop]` (at the reference level) alone, from
    every octave start of `inference.octave_starts`. Returns an InferenceResult with
    leading axes [B, n_starts].

    The (clip, start) pairs run under one vmap: nested vmaps over clips and starts make a
    slower loop on XLA:CPU; a single pair runs without one (a vmap of one clip made each
    step about twice as slow there)."""
    shifts = jnp.asarray(inference.octave_starts, jnp.float32)
    n_clips, n_starts = audio.shape[0], shifts.shape[0]

    def one(x, shift):
        return settle(x[None], inference=inference, model=model, cspec=cspec, sspec=sspec,
                      prior=prior, shift=shift, record_stride=record_stride)
    if n_clips * n_starts == 1:
        result = jax.tree.map(lambda a: a[None], one(audio[0], shifts[0]))
    else:
        result = jax.vmap(one)(jnp.repeat(audio, n_starts, axis=0), jnp.tile(shifts, n_clips))
    return jax.tree.map(lambda a: a.reshape((n_clips, n_starts) + a.shape[1:]), result)
