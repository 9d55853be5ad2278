"""A small predictive-coding listener: it hears spectral frames and predicts the next one.

The ear turns audio into log-mel frames x_t (`hear`). For every frame the listener runs
a three-level `pcmusic.pc.Hierarchy`:

    level 2 (clamped)  c_t = x_{t-n_context} .. x_{t-1}   what was just heard (context)
    level 1 (free)     s_t in R^n_latent                  the listener's state
    level 0 (clamped)  x_t                                the frame heard now

    F_t = 0.5 pi_0 ||x_t - (W s_t + b)||^2 + 0.5 pi_1 ||s_t - (U c_t + a)||^2

minimised over s_t (Rao & Ballard 1999; Friston 2005): the state is predicted from the
context, the frame from the state. The maps are linear, so F_t is quadratic in s_t and
the settled value is the surprise of the frame given its context up to a constant,
0.5 e^T (I/pi_0 + W W^T/pi_1)^-1 e with e = x_t - W(U c_t + a) - b (the marginal of a
linear-Gaussian model). Inference is gradient descent preconditioned by the state
energy's Hessian H = pi_0 W^T W + pi_1 I (fixed within a call): each step removes the
fraction `infer_rate` of the distance to the minimum in every direction, so the energy
falls monotonically and converges however learning shapes W. Learning is the PC rule
(the gradient of F per frame at the settled states, `pcmusic.pc.param_gradients`) with
a normalised-LMS step, so the listener adapts to what it hears at a rate that does not
depend on how loud it is. Its surprise on a sound therefore falls as it learns
the sound's regularities, which is what the oddball, curiosity (compression progress)
and coevolution experiments measure.

Everything is a pure function of plain pytrees: params are the `pcmusic.pc` params dict,
`spec` is a static, hashable `ListenerSpec`. Leading axes of `frames` are clips (each
with its own silence before it, or a given `history`), and every function vmaps over a
population of listeners (params with a leading axis).
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pcmusic.dsp import spectral
from pcmusic.errors import ConfigError, PcmusicError
from pcmusic.pc import maps
from pcmusic.pc.energy import Hierarchy, init_params
from pcmusic.pc.hierarchy import settle
from pcmusic.pc.learning import param_gradients


@dataclasses.dataclass(frozen=True)
class ListenerSpec:
    """Ear and network of a listener (static: pass it to `jit` as a static argument).

    Ear: `sample_rate` Hz, STFT of `n_fft` samples every `hop` samples, `n_bands` HTK mel
    bands over [f_min_hz, f_max_hz]; a frame is log10(1 + P / P_floor) per band (bels
    above a floor `floor_db` dB, so silence is exactly 0), P in the STFT's scaling (a
    full-scale sinusoid on a bin has power 0.25, about -6 dB).
    Network: `n_context` frames of context, `n_latent` state units, precisions pi_0
    (`sensory_precision`, per bel^2) and pi_1 (`state_precision`); `n_infer_steps` steps
    of preconditioned descent removing `infer_rate` of the distance each; learning by
    normalised LMS at `learning_rate` (stable below 2) on the mean energy per frame,
    the step's norm clipped to `clip`.
    """

    sample_rate: int = 16000
    n_fft: int = 512
    hop: int = 160
    n_bands: int = 32
    f_min_hz: float = 100.0
    f_max_hz: float = 6000.0
    floor_db: float = -70.0
    n_context: int = 16
    n_latent: int = 32
    sensory_precision: float = 1.0
    state_precision: float = 1.0
    n_infer_steps: int = 12
    infer_rate: float = 0.6
    learning_rate: float = 1.0
    clip: float = 10.0

    def __post_init__(self):
        for name in ("sample_rate", "n_fft", "hop", "n_bands", "n_context", "n_latent",
                     "sensory_precision", "state_precision", "n_infer_steps", "learning_rate",
                     "clip"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"ListenerSpec.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.infer_rate <= 1:
            raise ConfigError(f"ListenerSpec.infer_rate must be in (0, 1], got {self.infer_rate}")
        if not 0 <= self.f_min_hz < self.f_max_hz <= self.sample_rate / 2:
            raise ConfigError(f"ListenerSpec needs 0 <= f_min_hz < f_max_hz <= Nyquist "
                               f"({self.sample_rate / 2} Hz); got {self.f_min_hz}, {self.f_max_hz}")

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate / self.hop


@functools.lru_cache(maxsize=None)
def _network(spec: ListenerSpec) -> tuple[Hierarchy, tuple]:
    """One Hierarchy object per spec, so jit caches keyed on it are shared."""
    to_state = maps.dense(spec.n_context * spec.n_bands, spec.n_latent)
    to_frame = maps.dense(spec.n_latent, spec.n_bands)
    return Hierarchy(maps=(to_frame, to_state), top_prior=False), (to_frame, to_state)


@functools.lru_cache(maxsize=None)
def _mel(spec: ListenerSpec) -> np.ndarray:
    fb = spectral.mel_filterbank(sample_rate=spec.sample_rate, n_fft=spec.n_fft,
                                 n_mels=spec.n_bands, f_min_hz=spec.f_min_hz,
                                 f_max_hz=spec.f_max_hz)
    empty = np.flatnonzero(fb.sum(axis=0) == 0)
    if empty.size:
        raise PcmusicError(f"ListenerSpec: mel bands {empty.tolist()} are narrower than an FFT "
                           f"bin ({spec.sample_rate / spec.n_fft:.1f} Hz); raise n_fft or "
                           f"f_min_hz, or lower n_bands")
    return fb


def hear(audio, *, spec: ListenerSpec) -> jax.Array:
    """Audio float32 `[..., n_samples]` at `spec.sample_rate` -> frames float32
    `[..., n_samples // hop, n_bands]` in bels above the floor (see `ListenerSpec`)."""
    audio = jnp.asarray(audio, jnp.float32)
    n_frames = audio.shape[-1] // spec.hop
    power = spectral.power(spectral.stft(audio, n_fft=spec.n_fft, hop=spec.hop))
    mel = power[..., :n_frames, :] @ jnp.asarray(_mel(spec))
    floor = jnp.float32(10.0 ** (spec.floor_db / 10.0))
    return jnp.log10(1.0 + mel / floor)


def init_listener(spec: ListenerSpec, *, key: jax.Array) -> dict:
    """Fresh params (the `pcmusic.pc` params dict): random maps, fixed precisions."""
    hierarchy, (to_frame, to_state) = _network(spec)
    k_frame, k_state = jax.random.split(key)
    shapes = [jnp.zeros((1, spec.n_bands)), jnp.zeros((1, spec.n_latent)),
              jnp.zeros((1, spec.n_context * spec.n_bands))]
    params = init_params(hierarchy, [to_frame.init(k_frame), to_state.init(k_state)], shapes)
    log_pi = (math.log(spec.sensory_precision), math.log(spec.state_precision), 0.0)
    return {**params, "log_precision": tuple(jnp.float32(v) for v in log_pi)}


def contexts(frames, *, n_context: int, history=None) -> jax.Array:
    """The context of every frame: frames `[..., n_frames, n_bands]` -> float32
    `[..., n_frames, n_context * n_bands]`, row t = frames t-n_context..t-1 (oldest first).
    Before the first frame come `history` `[..., n_context, n_bands]` (default silence)."""
    frames = jnp.asarray(frames, jnp.float32)
    if history is None:
        history = jnp.zeros(frames.shape[:-2] + (n_context, frames.shape[-1]), jnp.float32)
    padded = jnp.concatenate([jnp.asarray(history, jnp.float32), frames], axis=-2)
    n_frames = frames.shape[-2]
    index = np.arange(n_frames)[:, None] + np.arange(n_context)[None, :]
    windows = padded[..., index, :]                      # [..., n_frames, n_context, n_bands]
    return windows.reshape(frames.shape[:-2] + (n_frames, n_context * frames.shape[-1]))


def _check_frames(frames, spec: ListenerSpec) -> jax.Array:
    frames = jnp.asarray(frames, jnp.float32)
    if frames.ndim < 2 or frames.shape[-1] != spec.n_bands:
        raise PcmusicError(f"frames must be [..., n_frames, n_bands={spec.n_bands}] (from `hear`); "
                           f"got shape {frames.shape}")
    return frames


def _inverse_spd(h: jax.Array, n_iter: int = 30) -> jax.Array:
    """Inverse of a symmetric positive definite matrix by Newton-Schulz iteration,
    X <- X (2I - H X) from X = I / trace(H) (Pan & Schreiber 1991): matmuls only, as a
    LAPACK call costs milliseconds on a CPU. The error contracts quadratically once the
    eigenvalues of H X pass 1/2, after about log2(trace(H) / lambda_min) steps; the
    condition of H is at most 1 + pi_0 sigma_max(W)^2 / pi_1."""
    eye = jnp.eye(h.shape[0], dtype=jnp.float32)
    x = eye / jnp.trace(h)
    return jax.lax.fori_loop(0, n_iter, lambda _, x: x @ (2.0 * eye - h @ x), x)


def _preconditioned(params: dict, spec: ListenerSpec) -> optax.GradientTransformation:
    """Descent on s preconditioned by H = pi_0 W^T W + pi_1 I (the state energy's Hessian)."""
    w = params["maps"][0]["w"]                           # [n_latent, n_bands]
    pi0, pi1 = (jnp.exp(params["log_precision"][i]) for i in (0, 1))
    hessian = pi0 * (w @ w.T) + pi1 * jnp.eye(spec.n_latent, dtype=jnp.float32)
    inverse = _inverse_spd(hessian)

    def update(grads, state, params=None):
        return jax.tree.map(lambda g: g @ inverse, grads), state

    precondition = optax.GradientTransformation(lambda p: optax.EmptyState(), update)
    return optax.chain(precondition, optax.sgd(spec.infer_rate))


def _settle(params: dict, frames, ctx, spec: ListenerSpec):
    """Settle the states of a flat batch of frames `[n, n_bands]` with contexts `[n, d]`."""
    hierarchy, _ = _network(spec)
    start = hierarchy.maps[1](params["maps"][1], ctx)    # the state the context predicts
    return settle(hierarchy, params, [frames, start, ctx], clamp=[True, False, True],
                  optimizer=_preconditioned(params, spec), n_steps=spec.n_infer_steps,
                  divergence_factor=None)


def _flat(frames, history, spec: ListenerSpec):
    frames = _check_frames(frames, spec)
    ctx = contexts(frames, n_context=spec.n_context, history=history)
    return frames.reshape(-1, spec.n_bands), ctx.reshape(-1, ctx.shape[-1]), frames.shape[:-1]


def free_energy(params: dict, frames, *, spec: ListenerSpec, history=None) -> jax.Array:
    """Settled free energy of every frame given its context, float32 `[..., n_frames]`
    (nats up to a constant; frames `[..., n_frames, n_bands]`, history as in `contexts`)."""
    flat, ctx, shape = _flat(frames, history, spec)
    result = _settle(params, flat, ctx, spec)
    err_frame, err_state = result.aux["errors"][:2]
    pi0, pi1 = (jnp.exp(params["log_precision"][i]) for i in (0, 1))
    per_frame = 0.5 * pi0 * jnp.sum(jnp.square(err_frame), axis=-1) \
        + 0.5 * pi1 * jnp.sum(jnp.square(err_state), axis=-1)
    return per_frame.reshape(shape)


def inference_energies(params: dict, frames, *, spec: ListenerSpec, history=None) -> jax.Array:
    """Total energy before each inference step, float32 `[n_infer_steps]` (a probe)."""
    flat, ctx, _ = _flat(frames, history, spec)
    return _settle(params, flat, ctx, spec).energy_history


def _normalised_gradients(params: dict, settled, spec: ListenerSpec) -> tuple[dict, jax.Array]:
    """dF/dtheta per frame, each map's gradient divided by its input's mean squared norm
    plus one (the bias input): the normalised LMS step (Haykin, "Adaptive Filter Theory",
    ch. 6), stable for 0 < learning_rate < 2 whatever the loudness of the frames."""
    hierarchy, _ = _network(spec)
    grads, value = param_gradients(hierarchy, params, settled)
    frame, state, ctx = settled
    scale = [1.0 / (1.0 + jnp.mean(jnp.sum(jnp.square(u), axis=-1))) for u in (state, ctx)]
    grads["maps"] = tuple(jax.tree.map(lambda g, c=c: g * c, g_map)
                          for g_map, c in zip(grads["maps"], scale))
    return grads, value


def learn(params: dict, frames, *, spec: ListenerSpec, n_steps: int, history=None) -> dict:
    """`n_steps` PC learning steps on `frames` (each: settle the states, then one
    normalised-LMS step on the maps along -dF/dtheta per frame, clipped to norm
    `spec.clip`; precisions stay fixed). Returns the new params."""
    flat, ctx, _ = _flat(frames, history, spec)

    def step(p, _):
        settled = _settle(p, flat, ctx, spec).latents
        grads, value = _normalised_gradients(p, settled, spec)
        grads = {**grads, "log_precision": jax.tree.map(jnp.zeros_like, grads["log_precision"])}
        norm = optax.tree.norm(grads["maps"])
        factor = spec.learning_rate * jnp.minimum(1.0, spec.clip / jnp.maximum(norm, 1e-12))
        return jax.tree.map(lambda x, g: x - factor * g, p, grads), value

    return jax.lax.scan(step, params, None, length=n_steps)[0]


def listen(params: dict, frames, *, spec: ListenerSpec, chunk: int, n_learn: int
           ) -> tuple[dict, jax.Array]:
    """Hear a stream online: for each chunk of `chunk` frames, first the free energy of
    its frames under the current params (the surprise), then `n_learn` learning steps on
    it. frames `[n_frames, n_bands]` (silence before; a short last chunk is padded with
    silence that is not reported). Returns (params after, float32 `[n_frames]`)."""
    frames = _check_frames(frames, spec)
    n_frames = frames.shape[0]
    n_chunks = -(-n_frames // chunk)
    padded = jnp.concatenate([jnp.zeros((spec.n_context, spec.n_bands), jnp.float32), frames,
                              jnp.zeros((n_chunks * chunk - n_frames, spec.n_bands), jnp.float32)])

    def body(p, i):
        start = i * chunk
        history = jax.lax.dynamic_slice_in_dim(padded, start, spec.n_context)
        now = jax.lax.dynamic_slice_in_dim(padded, start + spec.n_context, chunk)
        f = free_energy(p, now, spec=spec, history=history)
        return learn(p, now, spec=spec, n_steps=n_learn, history=history), f

    params, f = jax.lax.scan(body, params, jnp.arange(n_chunks))
    return params, f.reshape(-1)[:n_frames]


def compression_progress(params: dict, train, heldout, *, spec: ListenerSpec, n_learn: int,
                         continuation: bool = True) -> tuple[jax.Array, dict]:
    """Schmidhuber's compression progress on a held-out segment.

    CP = mean F(heldout; theta_before) - mean F(heldout; theta_after), theta_after after
    `n_learn` learning steps on `train`, inference re-run to convergence both times
    (Schmidhuber 2010, "Formal theory of creativity, fun, and intrinsic motivation").
    train `[..., n_train, n_bands]`, heldout `[..., n_heldout, n_bands]`; with
    `continuation` the held-out segment follows the training one in time (its context
    starts with train's last frames), else it starts after silence. Returns (CP float32
    [] in nats per frame, params after).
    """
    train, heldout = _check_frames(train, spec), _check_frames(heldout, spec)
    history = train[..., -spec.n_context:, :] if continuation else None
    if continuation and train.shape[-2] < spec.n_context:
        raise PcmusicError(f"compression_progress: train has {train.shape[-2]} frames; a "
                           f"continuation needs at least n_context={spec.n_context}")
    before = jnp.mean(free_energy(params, heldout, spec=spec, history=history))
    after_params = learn(params, train, spec=spec, n_steps=n_learn)
    after = jnp.mean(free_energy(after_params, heldout, spec=spec, history=history))
    return before - after, after_params
