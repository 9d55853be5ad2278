"""Learning the audio model: settle on a batch of sounds, then one step on the params.

`train_step` is one pure function (jit it):
  1. scale every clip to the reference RMS (what perception hears);
  2. perceive the batch: the spectral encoder proposes the controls, the amortised
     encoder the upper latents, and joint inference settles everything with the
     sensory level clamped (the energy sums over the batch);
  3. one optax step on the hierarchy's params (maps, log-precisions, top mean)
     along -dE/dtheta at the settled latents (energy per clip), plus, with
     `topdown_weight` > 0, the gradient of the top-down consistency term (below);
  4. one step on the amortised encoder towards the settled latents (hybrid inference);
  5. the sampling statistics (running mean and s.d. of the settled tops, rms of the
     settled errors at z2 and z3) move towards the batch's and its settled tops enter
     the bank of recent tops: generation samples from them (`pcmusic.model.intents`).
A batch whose inference diverged leaves the params untouched and is counted.
Data parallelism (a `data` mesh axis) is the caller's: shard `audio` over the batch
axis and replicate the state; the sums above become all-reduces (`pcmusic.training.loop`).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from pcmusic import pc
from pcmusic.model import AudioModel, ModelSpec, init_model, intents, sensory
from pcmusic.model.maps import UserMaps, control_features
from pcmusic.pc import optim
from pcmusic.perception import InferenceSpec, intent_of, settle


class TrainState(NamedTuple):
    """Everything a run needs to continue exactly: a pytree of arrays.

    params: the model params {"pc", "encoder"}. opt_state / enc_opt_state: optax
    states of the two optimisers. step: int32[] steps taken. key: uint32 key data of
    the run's PRNG key (raw, so checkpoints hold plain arrays).
    """

    params: dict
    opt_state: Any
    enc_opt_state: Any
    step: jax.Array
    key: jax.Array


def init_train_state(key: jax.Array, spec: ModelSpec, *, optimizer: optax.GradientTransformation,
                     encoder_optimizer: optax.GradientTransformation,
                     maps: UserMaps | None = None) -> TrainState:
    """Fresh model params and optimiser states; `key` is split, never reused. maps: the
    user's maps (`pcmusic.model.init_model`)."""
    k_model, k_run = jax.random.split(key)
    model = init_model(k_model, spec, maps=maps)
    return TrainState(params=model.params, opt_state=optimizer.init(model.params["pc"]),
                      enc_opt_state=encoder_optimizer.init(model.params["encoder"]),
                      step=jnp.int32(0), key=jax.random.key_data(k_run))


def optimizers(*, learning_rate: float, encoder_learning_rate: float
               ) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """Adam for the hierarchy's params and for the amortised encoder."""
    return optax.adam(learning_rate), optax.adam(encoder_learning_rate)


def topdown_energy(model, controls: dict, top: jax.Array) -> jax.Array:
    """Control-level energy of `controls` under the top's mean prediction, per clip: f32[].

    The control-level term of the hierarchy's energy (the same precisions, held fixed,
    and audibility weights) with z2 and z3 replaced by their top-down predictions
    g3(g_top(top)) and g_top(top): how well the top alone, through every map, predicts
    the settled controls `[B, ...]`. `top` `[B, 1, d_top]` is held fixed. PC learning
    fits each map to the settled level below it and lets the residuals at z2 and z3
    carry what the top does not; this term asks the whole top-down path to carry it,
    which is what generation from an intent relies on (`pcmusic.generate`).
    """
    n_frames = controls["log2_f0"].shape[-1]
    hierarchy = model.hierarchy(n_frames, log_det=False)
    top = jax.lax.stop_gradient(top)
    _, z2, z3, _ = pc.predict_top_down(hierarchy, model.params["pc"], top)
    _, aux = pc.energy(hierarchy, model.params["pc"], [jax.lax.stop_gradient(controls), z2, z3, top])
    return aux["energies"][0] / jnp.float32(top.shape[0])


def train_step(state: TrainState, audio: jax.Array, *, spec: ModelSpec,
               inference: InferenceSpec, optimizer: optax.GradientTransformation,
               encoder_optimizer: optax.GradientTransformation,
               topdown_weight: float = 0.0, intent_shoot_steps: int = 0,
               maps: UserMaps | None = None) -> tuple[TrainState, dict]:
    """One step of learning on `audio` float32 `[B, n_frames * hop]` (pure; jit it).

    n_frames must be a multiple of `spec.frames_per_top`. topdown_weight: weight of
    `topdown_energy` added to the params' objective (0: plain PC learning). Returns
    the new state and metrics (float32 scalars): energy per clip in total and per level
    (sensory, controls, z2, z3, top), the learning objective, encoder loss, the
    top-down energy per clip, diverged (0/1). maps: the user's maps the state was
    initialised with (`init_train_state(..., maps=)`; None: the built-in ones).
    """
    model = AudioModel(spec, state.params, maps)
    result = settle(sensory.normalise(audio), inference=inference, model=model)
    settled = result.latents
    c, upper = settled["controls"], settled["upper"]
    hierarchy = model.hierarchy(c["log2_f0"].shape[-1])
    grads, objective = pc.param_gradients(hierarchy, state.params["pc"], [c, *upper])

    intent = intent_of(model, c, upper[-1], n_steps=intent_shoot_steps, learning_rate=inference.lr_shoot)

    def topdown(p):
        return topdown_energy(AudioModel(spec, dict(state.params, pc=p), maps), c, intent)

    if topdown_weight > 0:
        td_value, td_grads = jax.value_and_grad(topdown)(state.params["pc"])
        grads = jax.tree.map(lambda g, t: g + jnp.float32(topdown_weight) * t, grads, td_grads)
    else:
        td_value = topdown(state.params["pc"])
    new_pc, opt_state = optim.apply(optimizer, grads, state.opt_state, state.params["pc"])
    # the z2, z3 and top precisions are fixed (`ModelSpec.latent_log_precision`)
    new_pc = dict(new_pc, log_precision=(new_pc["log_precision"][0],
                                         *state.params["pc"]["log_precision"][1:]))
    enc_levels = [control_features(c), *upper]
    enc_params, enc_opt_state, enc_loss = pc.amortised_step(
        model.encoder(), state.params["encoder"], state.enc_opt_state, enc_levels,
        optimizer=encoder_optimizer)
    ok = ~result.diverged
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)  # noqa: E731
    upper_errors = result.aux["errors"][1:]   # (controls, z2, z3, top) at the settled state
    new_params = intents.update_intent_stats({"pc": new_pc, "encoder": enc_params,
                                              "intent": state.params["intent"]},
                                             (*upper[:-1], intent), upper_errors)
    new_state = TrainState(params=keep(new_params, state.params),
                           opt_state=keep(opt_state, state.opt_state),
                           enc_opt_state=keep(enc_opt_state, state.enc_opt_state),
                           step=state.step + 1, key=state.key)
    n_batch = jnp.float32(audio.shape[0])
    energies = result.aux["energies"] / n_batch
    metrics = {"energy": result.energy / n_batch, "objective": objective, "encoder_loss": enc_loss,
               "topdown_energy": td_value,
               "diverged": result.diverged.astype(jnp.float32),
               **{f"energy_{name}": energies[i] for i, name in enumerate(LEVEL_NAMES)}}
    return new_state, metrics


LEVEL_NAMES = ("sensory", "controls", "z2", "z3", "top")


def model_of(state: TrainState, spec: ModelSpec, maps: UserMaps | None = None) -> AudioModel:
    """The AudioModel a train state holds (with the user's maps it was trained with)."""
    return AudioModel(spec, state.params, maps)
