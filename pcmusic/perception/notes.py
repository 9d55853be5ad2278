"""Perceive notes: settle the note level on the controls beneath it.

After the controls of a chunk have settled (`pcmusic.perception.inference`), the
network settles the note level on

    E = E_below(x, c, upper)                     the settled levels below: a constant
      + E_notes(c | notes)                       `pcmusic.model.notes.energy`
      + E_prior(notes)                           `pcmusic.model.note_prior.energy`

with the controls c (and a model's latents above them) clamped at their settled state,
as the model's upper latents are settled with the controls clamped: the note level
reads the controls' pitch, loudness and timbre (moving the controls as well would make
every step a synthesis of the sound).

Notes settle starting from a proposal (`propose`): each voice's voiced frames cut into
segments where the pitch moves away from the segment's by more than SPLIT_CENTS for
SPLIT_FRAMES frames, or the partials' power jumps by ONSET_DB within two frames after
falling from the note's loudest with a jump of the spectrum (not the smooth dip of a
beat), or the note is struck again at its pitch (a peak of spectral flux that brings new
power, `_strikes`; glides and short pieces joined to their notes: `_segments`); each
segment becomes a note whose onset is traced back to where its sound began (`_onsets`:
for a note that follows another, where its own partials, read from the chunk's spectra,
began to rise under the last one's release) and whose level, timbre and decay are the
least-squares fit of its partials. Onsets, durations, pitches, attacks,
loudness and the gates (whether each note is there at all) then move by the energy's
gradient; the notes whose gate ends on are the percept's notes (`records`).
Chunks' notes are joined where a note runs across a seam (`join`).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pcmusic import pc
from pcmusic.dsp import spectral
from pcmusic.model import controls as controls_lib
from pcmusic.model import note_prior as note_prior_lib
from pcmusic.model import notes as notes_lib
from pcmusic.model import sensory
from pcmusic.perception import voicing
from pcmusic.perception.inference import make_energy_fn

SPLIT_CENTS = 40.0       # a pitch this far from the segment's starts a new note ...
SPLIT_FRAMES = 3         # ... when it holds there this many frames
ONSET_DB = 6.0           # a rise of the partials' power this large within two frames is an onset ...
ONSET_DIP_DB = 1.0       # ... when it rises from this far below the note's loudest so far (not a swell)
ONSET_FLUX_DB = 2.0      # ... and the spectrum's flux (`_strikes`) exceeds this there (not a beat)
RISE_DB = 40.0           # a note's attack is traced back to where its power is this far below its peak
MAX_ATTACK_S = 0.1       # ... or at most this far back
MIN_NOTE_S = 0.03        # settled notes shorter than this are dropped
MIN_SEGMENT_S = 0.06     # shorter segments join the segment before them
TRANSITION_S = 0.15      # a shorter piece between two notes whose pitch sweeps is a glide
JOIN_CENTS = 50.0        # a note across a chunk seam continues one within this many cents
OWN_FFT_HOPS = 8         # window of the spectra a note's own partials are read from (control frames)
OWN_EXCLUDE_BINS = 2.5   # a partial this close to one of the previous note's is not the note's own
OWN_RISEN_DB = 6.0       # a note's own partials are traced back from where they come this near their peak ...
OWN_RISE_DB = 0.5        # ... while they rise by more than this per frame
STRIKE_FFT_HOPS = 4      # window of the spectra a strike is heard in (control frames)
STRIKE_FLUX_DB = 3.0     # a strike: the spectrum rises by this much (mean dB over its audible bins) ...
STRIKE_RISE_DB = 2.0     # ... and its power by this much over the next STRIKE_RISE_S
STRIKE_RISE_S = 0.064
STRIKE_FLOOR_DB = 60.0   # bins this far below the chunk's loudest are not heard
NOTE_LEVELS = ("notes", "note_prior")   # the energy terms the note level adds


@dataclasses.dataclass(frozen=True)
class NoteInference:
    """How the note level settles: n_steps of Adam at these step sizes (cosine decay):
    onsets in seconds, durations, attacks and levels in natural log units, pitch in
    octaves, gates in logits."""

    n_steps: int = 40
    lr_onset_s: float = 0.002
    lr_log_dur: float = 0.02
    lr_log2_f0: float = 0.0005
    lr_level: float = 0.05
    lr_log_attack: float = 0.05
    lr_gate: float = 0.1
    spec: notes_lib.NoteSpec = notes_lib.NoteSpec()


def _segments(f0_oct: np.ndarray, power_db: np.ndarray, voiced: np.ndarray, frame_rate_hz: float,
              strike: np.ndarray | None = None, flux: np.ndarray | None = None) -> list[tuple[int, int]]:
    """[(first, stop)] frames of the notes of one voice (module docstring).

    Voiced runs are cut where the (5-frame median) pitch leaves the segment's by more
    than SPLIT_CENTS and holds (within SPLIT_CENTS / 2) for SPLIT_FRAMES frames, or the
    power rises by ONSET_DB within two frames from ONSET_DIP_DB below the segment's
    loudest so far (a swell that keeps rising is one note) while the spectral flux
    (`flux` `[T]`, `_strikes`; where given) exceeds ONSET_FLUX_DB within two frames
    (an ensemble's beating dips and recovers smoothly), not within the first 2
    MIN_NOTE_S of a segment (that is its own attack), or where a note is struck again
    (`strike` bool `[T]`, `_strikes`), not within the first MAX_ATTACK_S. Then a piece
    shorter than TRANSITION_S that follows a note without an onset and leads straight
    into the next, its pitch spanning more than 2 SPLIT_CENTS, is the glide from one note
    to the next and is shared between them at its middle; pieces shorter than
    MIN_SEGMENT_S join the note before; a piece that opens with an onset and lasts less
    than TRANSITION_S is the attack of the note it leads into; neighbours within
    SPLIT_CENTS are one note.
    """
    k = 2
    padded = np.pad(f0_oct, (k, k), mode="edge")
    pitch = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1), axis=-1)
    split = SPLIT_CENTS / 1200.0
    min_frames = max(2, int(round(MIN_NOTE_S * frame_rate_hz)))
    attack_frames = int(round(MAX_ATTACK_S * frame_rate_hz))
    cuts: list[list] = []          # [first, stop, starts with an attack]
    start, attacked = None, False
    n = f0_oct.shape[0]
    for t in range(n):
        if not voiced[t]:
            if start is not None:
                cuts.append([start, t, attacked])
                start = None
            continue
        if start is None:
            start, attacked = t, True
            continue
        ref = np.median(pitch[max(start, t - 8):t])
        ahead = pitch[t:min(n, t + SPLIT_FRAMES)]
        moved = (ahead.size == SPLIT_FRAMES and np.all(np.abs(ahead - ref) > split)
                 and np.ptp(ahead) < 0.5 * split and np.all(voiced[t:t + SPLIT_FRAMES]))
        attack = t - start >= 2 * min_frames and (
            (power_db[t] - power_db[t - 2] > ONSET_DB
             and power_db[t - 2] < np.max(power_db[start:t - 1]) - ONSET_DIP_DB
             and (flux is None or np.max(flux[t - 2:t + 2]) > ONSET_FLUX_DB))
            or (strike is not None and bool(strike[t]) and t - start >= attack_frames))
        if moved or attack:
            cuts.append([start, t, attacked])
            start, attacked = t, bool(attack)
    if start is not None:
        cuts.append([start, n, attacked])

    def joined_to_previous(i):
        return i > 0 and cuts[i - 1][1] == cuts[i][0] and not cuts[i][2]

    transition = round(TRANSITION_S * frame_rate_hz)
    for i in range(1, len(cuts) - 1):          # glides between two notes
        a, b, _ = cuts[i]
        if (b - a < transition and joined_to_previous(i) and cuts[i + 1][0] == b
                and np.ptp(pitch[a:b]) > 2 * split):
            middle = (a + b) // 2
            cuts[i - 1][1], cuts[i + 1][0] = middle, middle
            cuts[i][1] = cuts[i][0] = middle
    cuts = [c for c in cuts if c[1] > c[0]]
    shortest = max(2, int(round(MIN_SEGMENT_S * frame_rate_hz)))
    out: list[list] = []
    for a, b, attack in cuts:
        if out and out[-1][1] == a and not attack and (
                b - a < shortest or out[-1][1] - out[-1][0] < shortest
                or (out[-1][2] and out[-1][1] - out[-1][0] < transition)
                or abs(np.median(pitch[a:b]) - np.median(pitch[out[-1][0]:out[-1][1]])) < split):
            out[-1][1] = b
        else:
            out.append([a, b, attack])
    return [(a, b) for a, b, _ in out if b - a >= min_frames]


def _partials_power_db(spectra: np.ndarray, f0_hz: float, other_hz, bin_hz: float) -> np.ndarray | None:
    """float64 `[T]`: the power (dB) of a note's own partials in magnitude-squared spectra
    `[T, n_bins]` (bin width bin_hz): per frame, the sum over its harmonics k f0_hz of the
    largest bin within one bin of each, leaving out harmonics within OWN_EXCLUDE_BINS of a
    harmonic of any pitch in other_hz (Hz, a scalar or an array: the notes whose partials
    would mask its own). None when fewer than two of its harmonics are its own."""
    n_bins = spectra.shape[1]
    k = np.arange(1, int((n_bins - 2) * bin_hz / f0_hz) + 1)
    if k.size == 0:
        return None
    freq = k * f0_hz
    other = np.unique(np.atleast_1d(np.asarray(other_hz, np.float64)))
    own = np.ones(k.size, bool)
    for f in other[other > 0]:
        own &= np.abs(freq - np.round(freq / f) * f) > OWN_EXCLUDE_BINS * bin_hz
    if own.sum() < 2:
        return None
    centre = np.round(freq[own] / bin_hz).astype(int)
    idx = np.clip(centre[:, None] + np.arange(-1, 2)[None, :], 0, n_bins - 1)
    power = np.max(spectra[:, idx], axis=-1).sum(axis=-1)
    return 10 * np.log10(np.maximum(power, 1e-20))


def _spectra(audio: np.ndarray, n_frames: int, hop: int, *, n_hops: int) -> np.ndarray:
    """float64 `[n_frames, n_hops * hop / 2 + 1]`: power spectra of `audio` in Hann windows
    of n_hops hops centred on samples n * hop (`pcmusic.dsp.spectral.stft`)."""
    spectrum = spectral.stft(audio, n_fft=n_hops * hop, hop=hop)[:n_frames]
    return np.asarray(spectral.power(spectrum), np.float64)


def _strikes(audio: np.ndarray, f0_hz: np.ndarray, sounding: np.ndarray, *, hop: int,
             sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(strike bool `[V, T]`, flux float64 `[T]` dB): the frames at which each voice's note
    is struck (a hammer, a pluck, a tongue, a bow change), heard in Hann-windowed spectra
    of STRIKE_FFT_HOPS hops centred on each frame whether or not the pitch or the
    partials' power moves, and the spectral flux they are found from. f0_hz / sounding:
    `[V, T]` each voice's pitch and whether it sounds (T control frames of `hop` samples).

    A strike is a peak of the spectral flux

        flux(t) = mean_b max(0, L_b(t) - max(L_b(t-1), L_b(t-2))),

    L_b the level (dB) of bin b, over the bins within STRIKE_FLOOR_DB of the chunk's
    loudest, above STRIKE_FLUX_DB, after which the power rises by at least STRIKE_RISE_DB
    within STRIKE_RISE_S over its least in the frames t-3..t (a click in a held sound,
    such as a sample's loop, brings no new power). With one voice that power is the
    spectrum's; with several it is the voice's own partials' (`_partials_power_db`: its
    harmonics away from those of every other voice sounding from t-3 to the end of the
    rise), so a strike is the voice's whose partials it renews, not every voice's."""
    n_voices, n_frames = f0_hz.shape
    rate = sample_rate / hop
    power = _spectra(audio, n_frames, hop, n_hops=STRIKE_FFT_HOPS)
    level = 10 * np.log10(np.maximum(power, 1e-20))
    heard = level > level.max() - STRIKE_FLOOR_DB
    before = np.maximum(np.roll(level, 1, axis=0), np.roll(level, 2, axis=0))
    rise = np.where(heard, np.maximum(level - before, 0.0), 0.0)
    flux = rise.sum(axis=1) / np.maximum(heard.sum(axis=1), 1)
    flux[:2] = 0.0
    total = 10 * np.log10(np.maximum(power.sum(axis=1), 1e-20))
    bin_hz = sample_rate / (STRIKE_FFT_HOPS * hop)
    ahead = max(1, int(round(STRIKE_RISE_S * rate)))
    out = np.zeros((n_voices, n_frames), bool)
    for t in range(3, n_frames - 1):
        if not (flux[t] > STRIKE_FLUX_DB and flux[t] >= flux[t - 1] and flux[t] > flux[t + 1]):
            continue
        span = slice(t - 3, t + ahead + 1)
        for v in range(n_voices):
            if n_voices == 1:
                p = total[span]
            else:
                others = np.concatenate([f0_hz[w, span][sounding[w, span]] for w in range(n_voices) if w != v])
                p = _partials_power_db(power[span], f0_hz[v, t], others, bin_hz)
            out[v, t] = p is not None and np.max(p[3:]) - np.min(p[:4]) >= STRIKE_RISE_DB
    return out, flux


def _onsets(segs: list[tuple[int, int]], power_db: np.ndarray, frame_rate_hz: float,
            own: list | None = None, struck: list | None = None) -> list[tuple[float, float]]:
    """(onset frame, attack s) of each segment `(first, stop)` of one voice: where its
    sound began to rise, which is before its pitch or its power can be read.

    A segment that follows another began where its own partials began to rise
    (`own[k]`: their power per frame, `_partials_power_db`, the partials it shares with the note
    before left out): traced back from the first frame at which they come within OWN_RISEN_DB of
    their peak while they rise by more than OWN_RISE_DB a frame and stay within RISE_DB
    of the peak, no further back than MAX_ATTACK_S, the previous segment's middle (when
    the two touch) or its end. A segment that repeats the pitch of the one it follows
    (fewer than two partials of its own) and was cut where a strike was heard
    (`struck[k]`, `_strikes`) began at that strike. Where `own` gives nothing (no audio,
    or a repeated pitch not struck), a segment that follows a sounding one
    without a rest began where the power of their crossfade is lowest within that span (the
    last note fading, the new one rising under it). One that starts from silence began at
    the earliest frame reached by tracing its power back while it falls by more than 1 dB
    a frame and stays within RISE_DB of the segment's peak (at most MAX_ATTACK_S back).
    The attack is the time from there to the segment's first frame (at least
    notes_lib.ATTACK_S).
    """
    reach = max(1, int(round(MAX_ATTACK_S * frame_rate_hz)))
    out = []
    for k, (a, b) in enumerate(segs):
        lo = max(0, a - reach)
        touching = k > 0 and segs[k - 1][1] == a
        if touching:
            lo = max(lo, segs[k - 1][0] + (a - segs[k - 1][0]) // 2)
        elif k:
            lo = max(lo, segs[k - 1][1])
        mine = own[k] if own is not None else None
        if mine is not None:
            stop = min(b, a + reach)
            peak = float(np.max(mine[lo:stop]))
            start = lo + int(np.argmax(mine[lo:stop] >= peak - OWN_RISEN_DB))
            while start > lo and mine[start] - mine[start - 1] > OWN_RISE_DB \
                    and mine[start - 1] > peak - RISE_DB:
                start -= 1
        elif touching and struck is not None and struck[k]:
            start = a
        elif touching:
            start = lo + int(np.argmin(power_db[lo:a + 1]))
        else:
            peak = float(np.max(power_db[a:b]))
            start = a
            while start > lo and power_db[start] - power_db[start - 1] > 1.0 \
                    and power_db[start - 1] > peak - RISE_DB:
                start -= 1
        onset = start - 0.5
        out.append((onset, max((a - onset) / frame_rate_hz, notes_lib.ATTACK_S)))
    return out


def _fit_note(log_amp: np.ndarray, times_s: np.ndarray, basis: np.ndarray, floor: float
              ) -> tuple[float, np.ndarray, float]:
    """(level, timbre `[K]`, decay) of one note's partials `[T, H]` at `times_s` (relative to
    its onset), least squares over the partials above `floor`."""
    t, h = log_amp.shape
    y = np.maximum(log_amp, floor).reshape(-1)
    cols = [np.ones(t * h), *[np.tile(b, t) for b in basis], -np.repeat(times_s, h)]
    design = np.stack(cols, axis=1)
    if t < 3:
        design = design[:, :-1]
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    decay = float(np.clip(coef[-1], -5.0, 30.0)) if t >= 3 else 0.0
    return float(coef[0]), coef[1:1 + basis.shape[0]].astype(np.float32), decay


def propose(controls: dict, *, cspec: controls_lib.ControlSpec, spec: notes_lib.NoteSpec,
            voicing_db: float = 30.0, audio=None) -> dict:
    """Initial notes `[1, V, max_notes]` of one chunk's controls (leaves without batch
    axis, at the reference level); the longest max_notes segments per voice. audio: the
    chunk float32 `[n_frames * hop]` at the reference level, whose spectra give each note's
    own partials (`_onsets`); None: onsets from the controls alone."""
    f0 = np.asarray(controls["log2_f0"], np.float64)
    log_amp = np.asarray(controls["log_amp"], np.float64)
    amps = np.exp(np.clip(log_amp, *controls_lib.LOG_AMP_RANGE))
    power = 0.5 * np.sum(np.square(amps), axis=-1)
    noise = np.exp(np.clip(np.asarray(controls["log_noise"], np.float64), *controls_lib.LOG_AMP_RANGE))
    noise_power = np.mean(np.square(noise), axis=-1)[None, :]
    voiced = voicing.voiced_frames(power, noise_power, voicing_db=voicing_db, frame_rate_hz=cspec.frame_rate_hz)
    power_db = 10 * np.log10(np.maximum(power, 1e-20))
    rate = cspec.frame_rate_hz
    n_voices, n_frames = f0.shape
    notes = jax.tree.map(np.asarray, notes_lib.empty(1, n_voices, spec, end_s=n_frames / rate))
    notes = {k: np.array(v) for k, v in notes.items()}
    basis = notes_lib.timbre_basis(cspec.n_harmonics, spec.n_timbre)
    floor = float(np.max(log_amp)) - spec.floor_db / 20.0 * np.log(10.0)
    spectra = None if audio is None else _spectra(audio, n_frames, cspec.hop, n_hops=OWN_FFT_HOPS)
    strikes, flux = (None, None) if audio is None else _strikes(
        audio, 2.0 ** f0, voiced, hop=cspec.hop, sample_rate=cspec.sample_rate)
    bin_hz = cspec.sample_rate / (OWN_FFT_HOPS * cspec.hop)
    for v in range(n_voices):
        segs = _segments(f0[v], power_db[v], voiced[v], rate, None if strikes is None else strikes[v], flux)
        segs = sorted(sorted(segs, key=lambda s: s[0] - s[1])[:spec.max_notes])
        pitches = [float(np.median(f0[v, a:b])) for a, b in segs]
        own = None if spectra is None else [None] + [
            _partials_power_db(spectra, 2.0 ** pitches[k], 2.0 ** pitches[k - 1], bin_hz) for k in range(1, len(segs))]
        struck = None if strikes is None else [bool(strikes[v, a]) for a, _ in segs]
        for slot, ((a, b), (onset, attack)) in enumerate(zip(segs, _onsets(segs, power_db[v], rate, own, struck))):
            times = (np.arange(a, b) - onset) / rate
            level, timbre, decay = _fit_note(log_amp[v, a:b], times, basis, floor)
            notes["onset_s"][0, v, slot] = onset / rate
            notes["log_dur"][0, v, slot] = np.log((b - onset) / rate)
            notes["log_attack"][0, v, slot] = np.log(attack)
            notes["log2_f0"][0, v, slot] = pitches[slot]
            notes["level"][0, v, slot] = level
            notes["timbre"][0, v, slot] = timbre
            notes["decay"][0, v, slot] = decay
            notes["gate"][0, v, slot] = notes_lib.GATE_ON
        if segs:
            notes["log2_f0"][0, v, len(segs):] = notes["log2_f0"][0, v, len(segs) - 1]
    return {k: np.asarray(v, np.float32) for k, v in notes.items()}


def _optimizer(notes: dict, spec: NoteInference) -> optax.GradientTransformation:
    """Adam per note parameter, for the free leaves of {"controls" (clamped), "notes"}."""
    def adam(peak):
        return optax.adam(optax.cosine_decay_schedule(peak, max(spec.n_steps, 1), alpha=0.05))
    rates = {"onset_s": spec.lr_onset_s, "log_dur": spec.lr_log_dur, "log2_f0": spec.lr_log2_f0,
             "level": spec.lr_level, "timbre": spec.lr_level, "decay": 10 * spec.lr_level,
             "log_attack": spec.lr_log_attack, "gate": spec.lr_gate}
    return optax.multi_transform({name: adam(rate) for name, rate in rates.items()},
                                 jax.tree.leaves({k: k for k in notes}))


def settle_notes(audio, controls: dict, notes0: dict, upper=(), model=None, *, cspec, sspec, prior,
                 inference, note_inference: NoteInference, note_prior,
                 record_stride: int | None = None) -> pc.InferenceResult:
    """Settle the note level on clips float32 `[B, n_frames * hop]` at the reference level
    (traceable), the controls beneath it clamped. controls: Controls `[B, ...]` settled
    without notes; notes0: the proposal `[B, V, max_notes]`; upper: the model's settled
    (z2, z3, top), held fixed. Returns the `pc.InferenceResult` over {"controls",
    "notes"}; its aux["energies"] are (sensory, controls, [z2, z3, top,] notes, note
    prior) and its aux["errors"] end with the note level's {"log2_f0", "log_amp"} errors
    (NOTE_LEVELS); record_stride as in `pc.infer`."""
    observed = sensory.observe(audio, sspec)
    blur0 = jnp.zeros(audio.shape[:1], jnp.float32)
    base = make_energy_fn(observed, blur0, cspec=cspec, sspec=sspec, prior=prior, inference=inference,
                          model=model)
    # Everything below the notes is clamped: its energy is one constant of the loop.
    e_below, below = base({"controls": controls, "upper": upper}, jnp.int32(inference.n_steps))
    nspec = note_inference.spec

    def fn(latents, step):
        e_notes, errors = notes_lib.energy(latents["controls"], latents["notes"], cspec=cspec, spec=nspec)
        e_prior = note_prior_lib.energy(latents["notes"], note_prior)
        energies = jnp.concatenate([below["energies"], jnp.stack([e_notes, e_prior])])
        return e_below + e_notes + e_prior, {"energies": energies, "errors": below["errors"] + (errors,)}

    latents = {"controls": controls, "notes": notes0}
    return pc.infer(fn, latents, optimizer=_optimizer(notes0, note_inference),
                    clamp={"controls": True, "notes": False}, n_steps=note_inference.n_steps,
                    record_stride=record_stride)


@functools.partial(jax.jit, static_argnames=("cspec", "sspec", "prior", "inference", "note_inference",
                                             "record_stride"))
def settle_notes_batch(audio, controls, notes0, upper=(), model=None, note_prior=None, *, cspec, sspec,
                       prior, inference, note_inference, record_stride=None) -> pc.InferenceResult:
    """`settle_notes` each clip of `[B, n_frames * hop]` alone (vmapped); leaves of the
    result have a leading axis B. note_prior: a `NotePrior` (None: the flat one)."""
    note_prior = note_prior_lib.flat() if note_prior is None else note_prior

    def one(x, c, n, u):
        add = functools.partial(jax.tree.map, lambda a: a[None])
        r = settle_notes(x[None], add(c), add(n), add(u), model, cspec=cspec, sspec=sspec, prior=prior,
                         inference=inference, note_inference=note_inference, note_prior=note_prior,
                         record_stride=record_stride)
        return r._replace(latents=jax.tree.map(lambda a: a[0], r.latents))
    return jax.vmap(one)(audio, controls, notes0, upper)


def records(notes: dict, *, start_s: float, gain: float, spec: notes_lib.NoteSpec,
            n_harmonics: int) -> list[np.ndarray]:
    """Per voice float64 `[n, 5]` note records (onset_s, offset_s, f0_hz, loudness_db,
    presence) of one chunk's settled notes (leaves `[V, N]`, no batch axis), times
    shifted by start_s, loudness in dB re full scale of the input (the note's partials'
    RMS at its onset, `gain` undone), only notes present (gate on) and at least
    MIN_NOTE_S long, in onset order."""
    n = jax.tree.map(lambda a: np.asarray(a, np.float64), notes)
    basis = notes_lib.timbre_basis(n_harmonics, spec.n_timbre).astype(np.float64)
    log_partials = n["level"][..., None] + np.einsum("vnk,kh->vnh", n["timbre"], basis)
    power = 0.5 * np.sum(np.exp(2.0 * np.clip(log_partials, *controls_lib.LOG_AMP_RANGE)), axis=-1)
    loud_db = 10 * np.log10(np.maximum(power, 1e-20)) - 20 * np.log10(gain)
    presence = 1.0 / (1.0 + np.exp(-n["gate"]))
    dur = np.exp(n["log_dur"])
    out = []
    for v in range(n["onset_s"].shape[0]):
        keep = (presence[v] > 0.5) & (dur[v] >= MIN_NOTE_S)
        rec = np.stack([n["onset_s"][v] + start_s, n["onset_s"][v] + dur[v] + start_s,
                        np.exp2(n["log2_f0"][v]), loud_db[v], presence[v]], axis=1)[keep]
        out.append(rec[np.argsort(rec[:, 0], kind="stable")])
    return out


def join(chunk_records: list[list[np.ndarray]], bounds_s: list[tuple[float, float]]) -> list[np.ndarray]:
    """The clip's notes per voice from each chunk's records (voices already in the clip's
    order) and the span (first_s, stop_s) of the clip that each chunk keeps.

    A chunk contributes the notes whose onset lies in its span (the first and last
    spans open-ended). A kept note that runs
    to the end of its chunk's span continues into the next chunk's note that sounds at
    the seam within JOIN_CENTS of its pitch: it takes that note's offset (and so on
    across several seams)."""
    n_voices = len(chunk_records[0]) if chunk_records else 0
    bounds_s = [(-np.inf if k == 0 else lo, np.inf if k == len(bounds_s) - 1 else hi)
                for k, (lo, hi) in enumerate(bounds_s)]
    out = []
    for v in range(n_voices):
        notes = []
        for k, (recs, (lo, hi)) in enumerate(zip(chunk_records, bounds_s)):
            for row in recs[v]:
                if not lo <= row[0] < hi:
                    continue
                row = row.copy()
                j = k
                while row[1] >= bounds_s[j][1] - 0.02 and j + 1 < len(chunk_records):
                    seam = bounds_s[j][1]
                    nxt = [r for r in chunk_records[j + 1][v] if r[0] <= seam + 0.02 and r[1] > seam
                           and abs(1200 * np.log2(r[2] / row[2])) <= JOIN_CENTS]
                    if not nxt:
                        break
                    row[1] = max(row[1], nxt[0][1])
                    j += 1
                notes.append(row)
        out.append(np.asarray(notes, np.float64).reshape(-1, 5))
    return out


def note_confidence(rec: np.ndarray, confidence: np.ndarray, frame_rate_hz: float) -> np.ndarray:
    """Per note: its presence times the mean frame confidence `[F]` over its span."""
    if rec.shape[0] == 0:
        return rec
    out = rec.copy()
    for row in out:
        a = int(np.clip(np.floor(row[0] * frame_rate_hz), 0, confidence.shape[0] - 1))
        b = int(np.clip(np.ceil(row[1] * frame_rate_hz), a + 1, confidence.shape[0]))
        row[4] = row[4] * float(np.mean(confidence[a:b]))
    return out
