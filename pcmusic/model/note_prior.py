"""Learned priors on the note level: a tuning, intervals, rhythm, and the phrase intent.

Pitches are log2 Hz, so a tuning is a density over pitch class, the position of a
pitch within a period P (octaves; 1 for octave-repeating tunings, log2 3 for
Bohlen-Pierce):

    p_tuning(x) = (1 - eps) * h(x mod P) + eps / P

h a circular histogram of the training notes' pitch classes (TUNING_BINS bins per
period) smoothed by a Gaussian whose width is the data's own: the candidate of
SMOOTH_CENTS that maximises the likelihood of each phrase's notes under the density of
the other phrases (leave one phrase out),

    sum_i log[(1 - eps) (S_w[b_i] - sum_{j in p(i)} k_w(b_i - b_j)) / (n - n_p(i)) + eps / TUNING_BINS],

S_w the histogram smoothed at width w, b_i note i's bin, p(i) its phrase of n_p(i)
notes, k_w the kernel (so precisely intoned or symbolic data gets sharp peaks, a sung
corpus wide ones; the sampler's pitches scatter about each peak by its width). Whole
phrases are left out because a phrase's notes are not independent draws: a pitch
repeated in one performance is heard alike each time. With a single phrase each note
is left out alone. The interval density's width is chosen in the same way.

No grid is built in: 12-TET data learns twelve peaks, 5-TET five, just intonation its
own ratios, and a prior fitted to nothing is flat (eps = 1). Its energy per present
note is -log p_tuning(log2 f0), linearly interpolated so that it has a gradient in the
pitch.

Above it, the phrase prior: successive intervals (a smoothed histogram over cents,
INTERVAL_RANGE_CENTS either way), inter-onset intervals between notes played in turn
(log-normal), articulation (duration / inter-onset interval), the chance of a rest
before a note (a silence longer than the corpus's median gap by half its median
inter-onset interval, and at least REST_GAP_S), and loudness.
The intent of a phrase u is its register (mean log2 f0), tempo (mean log inter-onset
interval) and level: a Gaussian over the training phrases' intents. `sample_phrase`
clamps an intent and draws a phrase: each pitch from the product of the interval,
tuning and register densities on a 1-cent grid.

Above the phrase intent sits the hierarchy's intent (the top latent y `[d_top]` of the
clip the phrase was heard in, `pcmusic.perception.perceive_intents`); where a prior is
fitted with the tops (`fit(..., tops=)`), y predicts u by a linear-Gaussian link,

    u | y ~ N(intent_mean + (y - top_mean) W, diag(link_sd^2)),

the level's energy 0.5 sum_j ((u_j - mu_j(y)) / link_sd_j)^2 (`intent_energy`). W is
the ridge regression of the phrase intents on the standardised tops (the fixed point
of a linear PC layer's weight learning under a Gaussian weight prior); each of u's
three components takes the penalty of LINK_RIDGES (inf: no link) with the least
leave-one-phrase-out squared error, computed in closed form (e_i / (1 - h_ii)), and
link_sd is the root of that held-out error, so a top that says nothing about a
component leaves it at its marginal. A prior without tops has d_top = 0 and samples
its intents from the marginal alone.

All are fitted in closed form (`fit`) from perceived or symbolic phrases: note records
`[n, >=4]` with columns onset_s, offset_s, f0_hz, loudness_db (`NOTE_COLUMNS`).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.errors import PcmusicError

NOTE_COLUMNS = ("onset_s", "offset_s", "f0_hz", "loudness_db", "confidence")
TUNING_BINS = 1200            # bins per period (1 cent for an octave)
INTERVAL_RANGE_CENTS = 2400   # intervals beyond two octaves are not modelled
SMOOTH_CENTS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0)  # widths tried
REST_GAP_S = 0.05             # a rest is at least this long (see `fit`)
NOTE_COST = 3.0               # nats per present note: a note must explain this much
INTENT_SD_FLOOR = (0.05, 0.05, 1.0)   # least s.d. of a phrase intent: register (oct), tempo (log s), level (dB)
LINK_SD_FLOOR = (0.01, 0.01, 0.2)     # least s.d. of a phrase intent about the link's prediction
LINK_RIDGES = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1e3, np.inf)   # penalties tried for the intent link


class NotePrior(NamedTuple):
    """The note level's learned prior (a pytree of float32 arrays and scalars).

    tuning: `[TUNING_BINS]` log density per bin of pitch class (nats, per octave-unit of
      the period). period_oct: the period P. interval: `[2 * INTERVAL_RANGE_CENTS + 1]`
      log probability of each interval in cents (successive notes, -range..range).
    log_ioi_mean / log_ioi_sd: inter-onset intervals (natural log of seconds).
    articulation: mean duration / inter-onset interval. rest_prob: chance of a rest
      before a note. intent_mean / intent_sd: `[3]` register (log2 Hz), tempo (log s),
      level (dB) of a phrase. register_sd: s.d. of pitches about their phrase's mean
      (octaves). note_cost: nats per present note.
    top_mean: `[d_top]` mean of the hierarchy's intents the link was fitted on.
      link_weight: `[d_top, 3]` W, the link from a hierarchy intent to the phrase intent
      (module docstring). link_sd: `[3]` s.d. of a phrase intent about the link's
      prediction. d_top = 0: no link (link_sd = intent_sd).
    """

    tuning: jax.Array
    period_oct: jax.Array
    interval: jax.Array
    log_ioi_mean: jax.Array
    log_ioi_sd: jax.Array
    articulation: jax.Array
    rest_prob: jax.Array
    intent_mean: jax.Array
    intent_sd: jax.Array
    register_sd: jax.Array
    note_cost: jax.Array
    top_mean: jax.Array
    link_weight: jax.Array
    link_sd: jax.Array


def flat(*, period_oct: float = 1.0) -> NotePrior:
    """The prior before any data: every pitch class and interval equally likely."""
    f = np.float32
    intent_sd = jnp.asarray([0.5, 0.3, 6.0], jnp.float32)
    return NotePrior(tuning=jnp.zeros(TUNING_BINS, jnp.float32) - np.float32(np.log(period_oct)),
                     period_oct=f(period_oct),
                     interval=jnp.full(2 * INTERVAL_RANGE_CENTS + 1,
                                       -np.log(2 * INTERVAL_RANGE_CENTS + 1), jnp.float32),
                     log_ioi_mean=f(np.log(0.4)), log_ioi_sd=f(0.4), articulation=f(0.9),
                     rest_prob=f(0.1), intent_mean=jnp.asarray([np.log2(330.0), np.log(0.4), -20.0], jnp.float32),
                     intent_sd=intent_sd, register_sd=f(0.4), note_cost=f(NOTE_COST),
                     **_no_link(intent_sd))


def _no_link(intent_sd) -> dict:
    return {"top_mean": jnp.zeros(0, jnp.float32), "link_weight": jnp.zeros((0, 3), jnp.float32),
            "link_sd": jnp.asarray(intent_sd, jnp.float32)}


def has_link(prior: NotePrior) -> bool:
    """Whether the prior's phrase intents are predicted by a hierarchy intent (d_top > 0)."""
    return prior.link_weight.shape[0] > 0


def fit_link(tops: np.ndarray, intents: np.ndarray) -> dict:
    """The link from hierarchy intents `[n, d_top]` to phrase intents `[n, 3]` (module
    docstring): {"top_mean": `[d_top]`, "link_weight": `[d_top, 3]`, "link_sd": `[3]`},
    float32; each component's ridge penalty and s.d. by leave-one-out error. Needs n >= 3."""
    x = np.asarray(tops, np.float64)
    y = np.asarray(intents, np.float64)
    n = x.shape[0]
    if x.ndim != 2 or y.shape != (n, 3) or n < 3:
        raise PcmusicError(f"the intent link needs tops [n, d_top] and intents [n, 3] with n >= 3; got "
                           f"{x.shape} and {y.shape}")
    mean, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
    u, s, vt = np.linalg.svd((x - mean) / scale, full_matrices=False)
    yc = y - y.mean(axis=0)
    weight, sd = np.zeros((x.shape[1], 3)), np.zeros(3)
    for j in range(3):
        best = (np.inf, None)
        for ridge in LINK_RIDGES:
            shrink = np.zeros_like(s) if np.isinf(ridge) else s ** 2 / (s ** 2 + ridge)
            resid = yc[:, j] - u @ (shrink * (u.T @ yc[:, j]))
            leverage = np.sum(u ** 2 * shrink, axis=1) + 1.0 / n      # the intercept's share too
            mse = float(np.mean(np.square(resid / np.maximum(1.0 - leverage, 1e-6))))
            if mse < best[0]:
                coef = vt.T @ (np.divide(shrink, s, out=np.zeros_like(s), where=s > 0) * (u.T @ yc[:, j]))
                best = (mse, coef / scale)
        weight[:, j] = best[1]
        sd[j] = max(np.sqrt(best[0]), LINK_SD_FLOOR[j])
    return {"top_mean": jnp.asarray(mean, jnp.float32), "link_weight": jnp.asarray(weight, jnp.float32),
            "link_sd": jnp.asarray(sd, jnp.float32)}


def _circular_smooth(hist: np.ndarray, sigma_bins: float) -> np.ndarray:
    n = hist.shape[0]
    d = np.minimum(np.arange(n), n - np.arange(n)).astype(np.float64)
    kernel = np.exp(-0.5 * np.square(d / max(sigma_bins, 1e-6)))
    return np.real(np.fft.ifft(np.fft.fft(hist) * np.fft.fft(kernel / kernel.sum())))


def _linear_smooth(hist: np.ndarray, sigma_bins: float) -> np.ndarray:
    half = int(np.ceil(4 * sigma_bins))
    x = np.arange(-half, half + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * np.square(x / max(sigma_bins, 1e-6)))
    return np.convolve(hist, kernel / kernel.sum(), mode="same")


def _check_phrases(phrases: Sequence) -> list[np.ndarray]:
    out = []
    for i, p in enumerate(phrases):
        a = np.asarray(p, np.float64)
        if a.ndim != 2 or a.shape[1] < 4:
            raise PcmusicError(f"phrase {i} must be note records [n, >=4] (onset_s, offset_s, f0_hz, "
                               f"loudness_db); got shape {a.shape}")
        if a.shape[0] and not (np.all(np.isfinite(a[:, :4])) and np.all(a[:, 2] > 0)):
            raise PcmusicError(f"phrase {i} holds non-finite values or f0_hz <= 0")
        out.append(a[np.argsort(a[:, 0], kind="stable")])
    if sum(a.shape[0] for a in out) < 2:
        raise PcmusicError(f"fitting a note prior needs at least 2 notes; got {sum(a.shape[0] for a in out)}")
    return out


def _cv_smoothed(counts: np.ndarray, bins: np.ndarray, groups: np.ndarray, smooth, widths_bins,
                floor: float, *, circular: bool) -> np.ndarray:
    """counts smoothed (`smooth(counts, width)`) at the width of `widths_bins` under which
    the data (bin index per point, `bins`) are most likely when each group (phrase,
    `groups`) is left out in turn (module docstring); each point alone where there are
    fewer than two groups. float64 like counts."""
    n, size = bins.size, counts.size
    if n < 2 or len(widths_bins) == 1:
        return smooth(counts, widths_bins[0])
    labels = np.unique(groups)
    if labels.size < 2:
        groups, labels = np.arange(n), np.arange(n)
    centre = size // 2
    impulse = np.zeros_like(counts)
    impulse[centre] = 1.0
    members = [np.flatnonzero(groups == g) for g in labels]
    best, best_score = None, -np.inf
    for width in widths_bins:
        smoothed, kernel = smooth(counts, width), smooth(impulse, width)
        own, left = np.zeros(n), np.zeros(n)
        for idx in members:          # each point's share of S from its own group
            d = bins[idx][:, None] - bins[idx][None, :]
            if circular:
                d = (d + centre) % size - centre
            at = centre + d
            inside = (at >= 0) & (at < size)
            own[idx] = np.sum(np.where(inside, kernel[np.clip(at, 0, size - 1)], 0.0), axis=1)
            left[idx] = n - idx.size
        held_out = np.maximum(smoothed[bins] - own, 0.0) / left
        score = np.sum(np.log((1 - floor) * held_out + floor / size))
        if score > best_score:
            best, best_score = smoothed, score
    return best


def _rhythm(phrases: list[np.ndarray]) -> tuple[list, list, list]:
    """Per phrase (records sorted by onset): the inter-onset intervals of notes played in
    turn, their articulations (duration / interval), and whether each interval held a
    rest. A rest is a silence longer than the corpus's usual gap between notes by half a
    usual inter-onset interval (the sampler's rest: the next note one interval later),
    and at least REST_GAP_S."""
    iois, gaps, arts = [], [], []
    for a in phrases:
        ioi = np.diff(a[:, 0])
        ok = ioi > 1e-3
        iois.append(ioi[ok])
        gaps.append((a[1:, 0] - a[:-1, 1])[ok])
        arts.append((a[:-1, 1] - a[:-1, 0])[ok] / ioi[ok])
    all_iois, all_gaps = np.concatenate(iois), np.concatenate(gaps)
    rest_gap = (max(float(np.median(all_gaps)), 0.0) + 0.5 * float(np.median(all_iois))
                if all_iois.size else np.inf)
    rests = [np.maximum(g, 0.0) > max(rest_gap, REST_GAP_S) for g in gaps]
    return ([i[~r] for i, r in zip(iois, rests)], [a[~r] for a, r in zip(arts, rests)], rests)


def _log_iois(played: list) -> np.ndarray:
    return np.log(np.maximum(np.concatenate(played), 1e-3)) if sum(p.size for p in played) else np.log([0.4])


def _intents(phrases: list[np.ndarray], played: list, log_ioi: np.ndarray) -> np.ndarray:
    return np.asarray([[np.mean(np.log2(a[:, 2])),
                        np.mean(np.log(np.maximum(p, 1e-3))) if p.size else log_ioi.mean(),
                        np.mean(a[:, 3])] for a, p in zip(phrases, played) if a.shape[0]])


def phrase_intents(phrases: Sequence) -> np.ndarray:
    """float64 `[n, 3]`: the intent of each phrase with notes (note records `[m, >=4]`,
    NOTE_COLUMNS), as `fit` reads them: register (mean log2 Hz), tempo (mean log
    inter-onset interval of the notes played in turn, rests judged on the whole corpus;
    the corpus's mean for a phrase of one note), level (mean dB)."""
    phrases = _check_phrases(phrases)
    played, _, _ = _rhythm(phrases)
    return _intents(phrases, played, _log_iois(played))


def fit(phrases: Sequence, *, period_oct: float = 1.0, smooth_cents: float | None = None,
        floor: float = 0.02, tops=None) -> NotePrior:
    """The prior of a corpus of phrases (each note records `[n, >=4]`, NOTE_COLUMNS).

    period_oct: the tuning's period (given, in octaves). smooth_cents: s.d. of the
    tuning's and the intervals' smoothing (cents); None: each chosen from SMOOTH_CENTS
    by held-out likelihood (module docstring). floor: eps, the uniform share
    that keeps every pitch possible. tops: optional float `[len(phrases), d_top]`, the
    hierarchy's intent of each phrase's clip: the prior then links them to the phrase
    intents (`fit_link`; phrases without notes or with a non-finite top are left out of
    the link, and fewer than 3 left fit none). Returns a NotePrior.
    """
    if not period_oct > 0:
        raise PcmusicError(f"period_oct must be > 0; got {period_oct}")
    if smooth_cents is not None and not smooth_cents > 0:
        raise PcmusicError(f"smooth_cents must be > 0 (or None: chosen from the data); got {smooth_cents}")
    widths = SMOOTH_CENTS if smooth_cents is None else (smooth_cents,)
    if tops is not None:
        tops = np.asarray(tops, np.float64)
        if tops.ndim != 2 or tops.shape[0] != len(phrases):
            raise PcmusicError(f"tops must be [n_phrases={len(phrases)}, d_top], one hierarchy intent per "
                               f"phrase; got shape {tops.shape}")
    phrases = _check_phrases(phrases)
    pitches = np.concatenate([np.log2(a[:, 2]) for a in phrases])
    phrase_of = np.concatenate([np.full(a.shape[0], i) for i, a in enumerate(phrases)])
    classes = np.mod(pitches, period_oct) / period_oct
    bins = np.floor(classes * TUNING_BINS).astype(int) % TUNING_BINS
    hist = np.bincount(bins, minlength=TUNING_BINS).astype(np.float64)
    bins_per_cent = TUNING_BINS / (1200.0 * period_oct)
    hist = _cv_smoothed(hist, bins, phrase_of, _circular_smooth, [w * bins_per_cent for w in widths], floor,
                        circular=True)
    density = (1 - floor) * hist / hist.sum() + floor / TUNING_BINS      # per bin
    tuning = np.log(density * TUNING_BINS / period_oct)                  # per octave-unit
    steps = [np.diff(np.log2(a[:, 2])) * 1200.0 for a in phrases if a.shape[0] > 1]
    step_of = np.concatenate([np.full(a.shape[0] - 1, i) for i, a in enumerate(phrases) if a.shape[0] > 1]
                             or [np.zeros(0, int)])
    steps = np.concatenate(steps) if steps else np.zeros(0)
    steps = np.clip(np.round(steps), -INTERVAL_RANGE_CENTS, INTERVAL_RANGE_CENTS).astype(int)
    ihist = np.bincount(steps + INTERVAL_RANGE_CENTS, minlength=2 * INTERVAL_RANGE_CENTS + 1).astype(np.float64)
    ihist = _cv_smoothed(ihist, steps + INTERVAL_RANGE_CENTS, step_of, _linear_smooth, widths, floor,
                         circular=False) + 1e-9
    ihist = (1 - floor) * ihist / ihist.sum() + floor / ihist.size
    played, arts, rests = _rhythm(phrases)
    log_ioi = _log_iois(played)
    arts = np.concatenate(arts)
    intents = _intents(phrases, played, log_ioi)
    spread = np.concatenate([np.log2(a[:, 2]) - np.mean(np.log2(a[:, 2])) for a in phrases if a.shape[0]])
    intent_sd = np.maximum(intents.std(axis=0), INTENT_SD_FLOOR)
    link = _no_link(intent_sd)
    if tops is not None:
        linked = tops[[a.shape[0] > 0 for a in phrases]]
        ok = np.all(np.isfinite(linked), axis=1)
        if np.sum(ok) >= 3:
            link = fit_link(linked[ok], intents[ok])
    f = np.float32
    return NotePrior(tuning=jnp.asarray(tuning, jnp.float32), period_oct=f(period_oct),
                     interval=jnp.asarray(np.log(ihist), jnp.float32),
                     log_ioi_mean=f(log_ioi.mean()), log_ioi_sd=f(max(log_ioi.std(), 0.05)),
                     articulation=f(np.clip(np.mean(arts) if arts.size else 0.9, 0.1, 1.0)),
                     rest_prob=f(np.mean(np.concatenate(rests)) if sum(r.size for r in rests) else 0.1),
                     intent_mean=jnp.asarray(intents.mean(axis=0), jnp.float32),
                     intent_sd=jnp.asarray(intent_sd, jnp.float32),
                     register_sd=f(max(spread.std(), 0.05)), note_cost=f(NOTE_COST), **link)


def tuning_log_density(log2_f0: jax.Array, prior: NotePrior) -> jax.Array:
    """log p_tuning(log2 f0) per element (nats per octave), linearly interpolated."""
    u = jnp.mod(log2_f0 / prior.period_oct, 1.0) * TUNING_BINS - 0.5
    lo = jnp.floor(u)
    frac = u - lo
    i = lo.astype(jnp.int32) % TUNING_BINS
    j = (i + 1) % TUNING_BINS
    return prior.tuning[i] * (1.0 - frac) + prior.tuning[j] * frac


def energy(notes: dict, prior: NotePrior, *, overlap_sd_s: float = 0.01) -> jax.Array:
    """The notes' prior energy summed over the batch: per present note (weight sigma(gate))
    its cost and -log p_tuning of its pitch, plus a Gaussian penalty (s.d. overlap_sd_s)
    on successive slots of a voice overlapping in time (a note's attack may sound under
    the last note's end: the overlap counts from the end of the attack)."""
    on = jax.nn.sigmoid(notes["gate"])
    per_note = prior.note_cost - tuning_log_density(notes["log2_f0"], prior)
    end = notes["onset_s"] + jnp.exp(notes["log_dur"])
    overlap = jax.nn.relu(end[..., :-1] - notes["onset_s"][..., 1:] - jnp.exp(notes["log_attack"][..., 1:]))
    both = on[..., :-1] * on[..., 1:]
    return jnp.sum(on * per_note) + 0.5 * jnp.sum(both * jnp.square(overlap / overlap_sd_s))


def intent_given(prior: NotePrior, top: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(mean, s.d.) of phrase intents: `[..., 3]` under hierarchy intents `top`
    `[..., d_top]` through the link, or `[3]` the marginal where top is None. A top
    for a prior without a link (or of another size) is refused."""
    if top is None:
        return prior.intent_mean, prior.intent_sd
    d_top = prior.link_weight.shape[0]
    if not d_top or top.shape[-1] != d_top:
        raise PcmusicError(f"this note prior links hierarchy intents of {d_top} dims (0: none); got tops of "
                           f"shape {tuple(top.shape)}: give the run's own note prior, or no top")
    lead = (1,) * (top.ndim - 1)
    shift = (top - prior.top_mean.reshape(lead + (-1,))) @ prior.link_weight
    return prior.intent_mean.reshape(lead + (3,)) + shift, prior.link_sd


def intent_energy(intent: jax.Array, prior: NotePrior, top: jax.Array | None = None) -> jax.Array:
    """The phrase intents' energy under the prior (nats, summed; constants dropped):
    0.5 sum ((u - mu) / sd)^2 for intents `[..., 3]`, mu and sd from `intent_given`."""
    mean, sd = intent_given(prior, top)
    lead = (1,) * (intent.ndim - 1)
    return 0.5 * jnp.sum(jnp.square((intent - jnp.broadcast_to(mean, intent.shape)) / sd.reshape(lead + (3,))))


def sample_intent(key: jax.Array, prior: NotePrior, n: int, *, top: jax.Array | None = None) -> jax.Array:
    """float32 `[n, 3]` fresh phrase intents (register log2 Hz, tempo log s, level dB):
    from the marginal, or given hierarchy intents `top` `[n, d_top]` through the link."""
    mean, sd = intent_given(prior, top)
    return jnp.broadcast_to(mean, (n, 3)) + sd[None] * jax.random.normal(key, (n, 3))


def sample_phrase(key: jax.Array, prior: NotePrior, intent: jax.Array, *, seconds: float,
                  f0_min_hz: float = 30.0, f0_max_hz: float = 2500.0, max_notes: int = 64) -> np.ndarray:
    """One phrase under an intent `[3]`: note records float64 `[n, 5]` (NOTE_COLUMNS,
    confidence 1) starting at 0 s and ending by `seconds`.

    Each onset follows the last after a log-normal inter-onset interval around the
    intent's tempo (a rest with rest_prob: the note starts one interval later); each
    pitch is drawn on a 1-cent grid from p(interval) p_tuning(pitch) N(pitch; register,
    register_sd), the first from the last two alone.
    """
    lo, hi = np.log2(f0_min_hz), np.log2(f0_max_hz)
    grid = jnp.arange(np.ceil(lo * 1200), np.floor(hi * 1200) + 1, dtype=jnp.float32) / 1200.0
    base = tuning_log_density(grid, prior) - 0.5 * jnp.square((grid - intent[0]) / prior.register_sd)
    keys = jax.random.split(key, 4)
    iois = jnp.exp(intent[1] + prior.log_ioi_sd * jax.random.normal(keys[0], (max_notes,)))
    rests = jax.random.uniform(keys[1], (max_notes,)) < prior.rest_prob

    def step(prev, k):
        cents = jnp.round((grid - prev) * 1200.0).astype(jnp.int32)
        inside = jnp.abs(cents) <= INTERVAL_RANGE_CENTS
        step_logp = jnp.where(inside, prior.interval[jnp.clip(cents + INTERVAL_RANGE_CENTS, 0,
                                                                prior.interval.shape[0] - 1)], -1e9)
        logits = base + jnp.where(jnp.isnan(prev), 0.0, step_logp)
        x = grid[jax.random.categorical(k, logits)]
        return x, x

    _, pitches = jax.lax.scan(step, jnp.float32(jnp.nan), jax.random.split(keys[2], max_notes))
    pitches, iois, rests = np.asarray(pitches, np.float64), np.asarray(iois, np.float64), np.asarray(rests)
    level = float(intent[2])
    out, t = [], 0.0
    for x, ioi, rest in zip(pitches, iois, rests):
        if rest and out:
            t += ioi
        dur = float(prior.articulation) * ioi
        if t + min(dur, 0.05) > seconds:
            break
        out.append((t, min(t + dur, seconds), 2.0 ** x, level, 1.0))
        t += ioi
    return np.asarray(out, np.float64).reshape(-1, 5)


def save(path, prior: NotePrior, *, overwrite: bool = False):
    """Write a NotePrior as an .npz (one array per field), atomically; refuses to replace
    a file unless `overwrite`."""
    from pathlib import Path

    from pcmusic import files

    path = Path(path)
    if path.exists() and not overwrite:
        raise PcmusicError(f"{path} exists; nothing was written: choose another path or overwrite it (--force)")
    return files.write_npz(path, {name: np.asarray(value) for name, value in prior._asdict().items()})


def load(path) -> NotePrior:
    """The NotePrior in an .npz written by `save` (PcmusicError naming the file and what
    is wrong otherwise)."""
    from pathlib import Path

    path = Path(path)
    fix = "give a note prior written by `pcmusic notes fit` (or note_prior.save)"
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except FileNotFoundError:
        raise PcmusicError(f"{path}: no such file; {fix}") from None
    except (OSError, ValueError, AttributeError) as err:
        raise PcmusicError(f"{path}: not a readable .npz ({err}); {fix}") from None
    link_fields = ("top_mean", "link_weight", "link_sd")
    if not any(name in arrays for name in link_fields) and "intent_sd" in arrays:
        arrays.update({k: np.asarray(v) for k, v in _no_link(arrays["intent_sd"]).items()})  # fitted without tops
    missing = [name for name in NotePrior._fields if name not in arrays]
    if missing:
        raise PcmusicError(f"{path} lacks {', '.join(missing)}; {fix}")
    d_top = arrays["top_mean"].shape[0] if arrays["top_mean"].ndim == 1 else -1
    shapes = {"tuning": (TUNING_BINS,), "interval": (2 * INTERVAL_RANGE_CENTS + 1,), "intent_mean": (3,),
              "intent_sd": (3,), "top_mean": (d_top,), "link_weight": (d_top, 3), "link_sd": (3,)}
    for name in NotePrior._fields:
        a = arrays[name]
        if a.shape != shapes.get(name, ()) or not np.all(np.isfinite(a)):
            raise PcmusicError(f"{path}: {name} has shape {a.shape} or non-finite values; expected finite "
                               f"{shapes.get(name, ())}; {fix}")
    return NotePrior(**{name: jnp.asarray(arrays[name], jnp.float32) for name in NotePrior._fields})


def lattice_cents(prior: NotePrior, *, max_peaks: int = 24, min_ratio: float = 2.0) -> np.ndarray:
    """The learned tuning's peaks: float64 cents within the period (re 1 Hz), ascending;
    local maxima of the density at least `min_ratio` times its median, the strongest
    `max_peaks`. Empty for a flat prior."""
    d = np.exp(np.asarray(prior.tuning, np.float64))
    peaks = np.flatnonzero((d > np.roll(d, 1)) & (d >= np.roll(d, -1)) & (d >= min_ratio * np.median(d)))
    peaks = peaks[np.argsort(d[peaks])[::-1][:max_peaks]]
    return np.sort((peaks + 0.5) / TUNING_BINS * 1200.0 * float(prior.period_oct))
