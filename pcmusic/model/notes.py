"""The note level: note events in Hz that predict the control level.

A `Notes` state is a dict of float32 arrays, per clip, voice and note slot
(`[B, n_voices, max_notes]`, slots in onset order):

    "onset_s":   onset time in seconds from the clip's first sample
    "log_dur":   natural log of the duration in seconds
    "log2_f0":   log2 of the pitch in Hz (any tuning: no grid is built in)
    "level":     natural log of the note's amplitude once its attack is over (the timbre sets
                 each partial relative to it)
    "timbre":    [B, V, N, n_timbre] coefficients of the partials' log amplitudes on
                 a cosine basis over log harmonic number (`timbre_basis`)
    "decay":     amplitude decay in natural log units per second after the onset
    "log_attack": natural log of the attack time in seconds: the note's amplitude rises
                 from zero at its onset to its level over about this long
    "gate":      logit of the note being present: a slot whose gate is off predicts
                 nothing, so the number of notes is inferred, not fixed

Prediction of the controls (`predict_controls`), differentiable in every parameter:
note n is present at time t with the soft activity

    a_n(t) = r / sqrt(1 + r^2) sigma((on_n + d_n - t) / w) sigma(gate_n),
    r = w softplus((t - on_n) / w) / attack_n

(w = `edge_s`): a linear rise from the onset that reaches -3 dB after attack_n, a soft
offset. It predicts the partials

    log A_nk(t) = level_n + timbre_n . basis_k - decay_n w softplus((t - on_n) / w)

so each voice's partial amplitudes are log(sum_n a_n A_nk + e^SILENT). Its f0 is the
mean of the notes' pitches under a softmax over notes of -dist_n(t) / glide_s +
GATE_WEIGHT log sigma(gate_n), dist_n(t) the distance in seconds from t to the span
[on_n + attack_n, on_n + d_n] in which note n holds the pitch: inside it the note's
pitch, between notes a glide of width ~glide_s (a note that follows another without a
rest takes the pitch over half-way through its attack, as a sound that fades in under
the last one's release), in a rest the nearest note's pitch.

The level's energy (`energy`) is the controls' error about that prediction: f0 errors
e (octaves) under a Student-t of scale `sigma_f0_oct` and F0_DOF degrees of freedom,
(nu / 2) log(1 + (e / sigma)^2 / nu) (Gaussian near zero; an octave error in a faint
frame cannot outweigh a note), weighed by the frame's loudness; log amplitudes
Gaussian (s.d. `sigma_log_amp`, both sides floored `floor_db` below the loudest
partial of the clip) averaged over partials. The note prior is
`pcmusic.model.note_prior`.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.errors import PcmusicError
from pcmusic.model import controls as controls_lib

NOTE_KEYS = ("onset_s", "log_dur", "log2_f0", "level", "timbre", "decay", "log_attack", "gate")
GATE_WEIGHT = 20.0       # how hard an absent note is kept from setting the pitch
F0_DOF = 1.0             # degrees of freedom of the f0 errors' Student-t
GATE_ON, GATE_OFF = 4.0, -6.0   # initial logits of a proposed note and of an empty slot
ATTACK_S = 0.01          # attack time of a note that states none (s)


@dataclasses.dataclass(frozen=True)
class NoteSpec:
    """Static shape and constants of the note level (hashable).

    max_notes: note slots per voice and clip (an upper bound on the count).
    n_timbre: cosine coefficients of a note's spectral shape. edge_s: softness of
    onsets and offsets (s). glide_s: width of pitch glides between notes (s).
    sigma_f0_oct: s.d. of the controls' log2 f0 around the note's pitch (octaves).
    sigma_log_amp: s.d. of the partials' log amplitude around the note's prediction.
    floor_db: log amplitudes are compared above this many dB below the clip's loudest
    partial (quieter detail is not the note level's to explain). f0_weight_db: a
    frame's f0 error counts half where its voice is this many dB below the clip's
    loudest frame (p / (p + p_half)).
    """

    max_notes: int = 24
    n_timbre: int = 6
    edge_s: float = 0.006
    glide_s: float = 0.01
    sigma_f0_oct: float = 5.0 / 1200.0
    sigma_log_amp: float = 0.5
    floor_db: float = 50.0
    f0_weight_db: float = 30.0

    def __post_init__(self):
        if self.max_notes < 1 or self.n_timbre < 1:
            raise PcmusicError(f"max_notes and n_timbre must be >= 1; got {self.max_notes}, {self.n_timbre}")
        if min(self.edge_s, self.glide_s, self.sigma_f0_oct, self.sigma_log_amp, self.floor_db) <= 0:
            raise PcmusicError("edge_s, glide_s, sigma_f0_oct, sigma_log_amp and floor_db must be > 0")


def timbre_basis(n_harmonics: int, n_timbre: int) -> np.ndarray:
    """float32 `[n_timbre, n_harmonics]`: cos(pi j u_k), j = 1..n_timbre, u_k = log k / log H
    (u in [0, 1]; a smooth spectral envelope over log harmonic number)."""
    k = np.arange(1, n_harmonics + 1, dtype=np.float64)
    u = np.log(k) / max(np.log(n_harmonics), 1e-9)
    j = np.arange(1, n_timbre + 1, dtype=np.float64)[:, None]
    return np.cos(np.pi * j * u[None]).astype(np.float32)


def empty(batch: int, n_voices: int, spec: NoteSpec, *, end_s: float = 0.0, f0_hz: float = 220.0) -> dict:
    """Notes `[batch, n_voices, max_notes]` with every slot off, at `end_s`, 10 ms long."""
    shape = (batch, n_voices, spec.max_notes)
    return {"onset_s": jnp.full(shape, end_s, jnp.float32),
            "log_dur": jnp.full(shape, np.log(0.01), jnp.float32),
            "log2_f0": jnp.full(shape, np.log2(f0_hz), jnp.float32),
            "level": jnp.full(shape, controls_lib.SILENT_LOG_AMP, jnp.float32),
            "timbre": jnp.zeros(shape + (spec.n_timbre,), jnp.float32),
            "decay": jnp.zeros(shape, jnp.float32),
            "log_attack": jnp.full(shape, np.log(ATTACK_S), jnp.float32),
            "gate": jnp.full(shape, GATE_OFF, jnp.float32)}


def check(notes: dict, spec: NoteSpec) -> None:
    """Raise PcmusicError unless `notes` has the keys and shapes of a Notes state."""
    if set(notes) != set(NOTE_KEYS):
        raise PcmusicError(f"notes must have keys {sorted(NOTE_KEYS)}; got {sorted(notes)}")
    shape = tuple(notes["onset_s"].shape)
    if len(shape) != 3 or shape[-1] != spec.max_notes:
        raise PcmusicError(f"notes['onset_s'] must be [batch, n_voices, {spec.max_notes}]; got {shape}")
    for key in NOTE_KEYS:
        want = shape + ((spec.n_timbre,) if key == "timbre" else ())
        if tuple(notes[key].shape) != want:
            raise PcmusicError(f"notes[{key!r}] has shape {tuple(notes[key].shape)}; expected {want}")


def _log_softplus(x: jax.Array) -> jax.Array:
    """log(softplus(x)), exact where softplus underflows (log softplus(x) -> x)."""
    safe = jnp.maximum(x, -20.0)
    return jnp.where(x < -20.0, x, jnp.log(jax.nn.softplus(safe)))


def activity(notes: dict, times_s: jax.Array, spec: NoteSpec) -> jax.Array:
    """log a_n(t): float32 `[B, V, N, T]` for frame times `[T]` (module docstring)."""
    t = times_s[None, None, None, :]
    on = notes["onset_s"][..., None]
    off = on + jnp.exp(notes["log_dur"])[..., None]
    w = spec.edge_s
    log_r = np.log(w) + _log_softplus((t - on) / w) - notes["log_attack"][..., None]
    rise = log_r - 0.5 * jax.nn.softplus(2.0 * log_r)           # log(r / sqrt(1 + r^2))
    return rise + jax.nn.log_sigmoid((off - t) / w) + jax.nn.log_sigmoid(notes["gate"])[..., None]


def predict_controls(notes: dict, n_frames: int, *, cspec: controls_lib.ControlSpec,
                     spec: NoteSpec) -> dict:
    """The controls the notes predict: {"log2_f0": `[B, V, F]`, "log_amp": `[B, V, F, H]`}
    for `n_frames` control frames (frame n at time n / cspec.frame_rate_hz)."""
    times = jnp.arange(n_frames, dtype=jnp.float32) / np.float32(cspec.frame_rate_hz)
    log_a = activity(notes, times, spec)                                   # [B, V, N, T]
    basis = jnp.asarray(timbre_basis(cspec.n_harmonics, spec.n_timbre))    # [K, H]
    shape = notes["level"][..., None] + jnp.einsum("bvnk,kh->bvnh", notes["timbre"], basis)
    since = jax.nn.softplus((times[None, None, None, :] - notes["onset_s"][..., None]) / spec.edge_s) * spec.edge_s
    envelope = log_a - notes["decay"][..., None] * since                   # [B, V, N, T]
    terms = envelope[..., None] + shape[:, :, :, None, :]                   # [B, V, N, T, H]
    silent = jnp.full(terms.shape[:2] + (1,) + terms.shape[3:], controls_lib.SILENT_LOG_AMP, terms.dtype)
    log_amp = jax.nn.logsumexp(jnp.concatenate([terms, silent], axis=2), axis=2)
    on = notes["onset_s"][..., None]
    off = on + jnp.exp(notes["log_dur"])[..., None]
    t = times[None, None, None, :]
    dist = jax.nn.relu(on + jnp.exp(notes["log_attack"])[..., None] - t) + jax.nn.relu(t - off)
    score = -dist / spec.glide_s + GATE_WEIGHT * jax.nn.log_sigmoid(notes["gate"])[..., None]
    weights = jax.nn.softmax(score, axis=2)
    log2_f0 = jnp.sum(weights * notes["log2_f0"][..., None], axis=2)
    return {"log2_f0": log2_f0, "log_amp": log_amp}


def _floored(log_amp: jax.Array, floor: jax.Array) -> jax.Array:
    return jnp.logaddexp(log_amp, floor)


def energy(controls: dict, notes: dict, *, cspec: controls_lib.ControlSpec, spec: NoteSpec):
    """The controls' prediction error under the notes: (E summed over the batch, errors).

    errors: {"log2_f0": `[B, V, F]` octaves, "log_amp": `[B, V, F, H]`} (control minus
    prediction, amplitudes floored as in the module docstring). The audibility weights
    and the floor come from the controls and do not carry gradient.
    """
    n_frames = controls["log2_f0"].shape[-1]
    pred = predict_controls(notes, n_frames, cspec=cspec, spec=spec)
    log_amp = controls["log_amp"]
    loudest = jax.lax.stop_gradient(jnp.max(log_amp, axis=(1, 2, 3), keepdims=True))
    floor = loudest - np.float32(spec.floor_db / 20.0 * np.log(10.0))
    e_amp = _floored(log_amp, floor) - _floored(pred["log_amp"], floor)
    voice_power = jnp.sum(jnp.exp(2.0 * jnp.clip(log_amp, *controls_lib.LOG_AMP_RANGE)), axis=-1)
    half_power = jnp.max(voice_power, axis=(1, 2), keepdims=True) * np.float32(10 ** (-spec.f0_weight_db / 10))
    weight = jax.lax.stop_gradient(voice_power / (voice_power + half_power))
    e_f0 = controls["log2_f0"] - pred["log2_f0"]
    robust = 0.5 * F0_DOF * jnp.log1p(jnp.square(e_f0 / spec.sigma_f0_oct) / F0_DOF)
    total = (jnp.sum(weight * robust)
             + 0.5 * jnp.sum(jnp.mean(jnp.square(e_amp), axis=-1)) / spec.sigma_log_amp ** 2)
    return total, {"log2_f0": e_f0, "log_amp": e_amp}


def present(notes: dict) -> jax.Array:
    """float32 `[B, V, N]` in [0, 1]: sigma(gate), how present each slot's note is."""
    return jax.nn.sigmoid(notes["gate"])
