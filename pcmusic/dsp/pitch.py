"""A fixed bottom-up encoder: initial f0 tracks and partial amplitudes from a spectrum.

Hybrid inference: a fast feed-forward guess initialises the latents and
iterative inference on the energy refines them. This encoder needs no training:
  1. pitch salience by weighted harmonic summation over a log-spaced f0 grid, on a
     compressed magnitude spectrum (Klapuri 2006, "Multiple fundamental frequency
     estimation by summing harmonic amplitudes", ISMIR: weights (f + a) / (k f + b),
     a = 52 Hz, b = 320 Hz, magnitude compression |X|^(2 * 0.33));
  2. a track per voice by dynamic programming over the grid with a cost per
     semitone jumped (an L1 distance transform keeps it linear in the grid size);
  3. further voices from the salience left after each voice already found has taken
     its share of its partials (explaining away with spectral smoothness, so a note an
     octave or a fifth above keeps the partials it shares), then each voice found again
     with all the others explained away;
  4. a voice moved to a multiple or a fraction of its track (x1/4 .. x4) where the
     chord's spectrum is then fitted better by harmonic combs with smooth envelopes
     (a sub-harmonic that collects two notes, a note heard at its octave or a note's
     partial taken for a voice);
  5. partial amplitudes read off the spectrum at the partials' bins.
It proposes; the oscillator-bank energy decides (see `pcmusic.perceive`).
"""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from pcmusic.dsp import spectral

CENTS_STEP = 10.0
KLAPURI_ALPHA_HZ = 52.0
KLAPURI_BETA_HZ = 320.0
COMPRESSION = 0.66   # |X|^(2 nu), nu = 0.33 (Klapuri's spectral whitening exponent)
MAX_HARMONICS = 20
JUMP_COST_PER_SEMITONE = 0.5
SALIENCE_FLOOR = 1e-3
PARTIAL_WIDTH = 0.03        # a partial's region, relative to its frequency (inharmonicity, vibrato)
EXCLUDE_CENTS = 60.0        # a further voice keeps this far from the voices already found
RATIOS = (0.25, 1 / 3, 0.5, 2.0, 3.0, 4.0)   # moves a voice may make to a fraction or multiple of itself
RATIO_MARGIN = 0.05         # ... where the fit's residual falls by at least this share
FIT_HARMONICS = 40          # partials per voice in the joint fit
ENVELOPE_KNOTS = 6          # a voice's envelope: hat functions at log2 k = 0 .. 5
FIT_ITERATIONS = 200        # multiplicative non-negative least-squares updates
REFINE_CENTS = 30.0         # a candidate is put on its partials within this many cents
FIT_FRAME_STRIDE = 4        # the fit reads every 4th control frame
MAX_PERMUTED_VOICES = 4     # voices untangled over all their orders (4! = 24); greedy beyond
MOVE_SCALE_CENTS = 50.0     # a voice's move from frame to frame costs log(1 + |move| / this)
SWITCH_CENTS = 1.2          # ... and relabelling costs as much as a move of this many cents


def analysis_fft_size(sample_rate: int) -> int:
    """Power-of-two FFT size nearest 100 ms: resolves partials of a 40 Hz tone."""
    return int(2 ** round(np.log2(0.1 * sample_rate)))


def f0_grid(f0_min_hz: float, f0_max_hz: float, *, cents_step: float = CENTS_STEP) -> np.ndarray:
    """Log-spaced candidate f0s in Hz, `cents_step` apart: float32 `[G]`."""
    n = int(np.floor(1200 * np.log2(f0_max_hz / f0_min_hz) / cents_step)) + 1
    return (f0_min_hz * 2.0 ** (np.arange(n) * cents_step / 1200)).astype(np.float32)


def compressed_spectrum(audio, *, sample_rate: int, hop: int, n_frames: int) -> jax.Array:
    """|X|^COMPRESSION at the control frames: float32 `[..., n_frames, n_fft // 2 + 1]`."""
    n_fft = analysis_fft_size(sample_rate)
    x = spectral.magnitude(spectral.stft(jnp.asarray(audio, jnp.float32), n_fft=n_fft, hop=hop))
    return jnp.power(x[..., :n_frames, :] + 1e-12, COMPRESSION)


def _neighbour_peak(x: jax.Array) -> jax.Array:
    """The highest of each bin and its two neighbours along the last axis: a partial a
    little off its nominal bin is still read at its peak."""
    return jnp.maximum(x, jnp.maximum(jnp.roll(x, 1, -1), jnp.roll(x, -1, -1)))


def _harmonic_sampler(grid_hz: np.ndarray, *, sample_rate: int, n_fft: int):
    """Static gather positions and Klapuri weights for harmonic summation over the grid."""
    k = np.arange(1, MAX_HARMONICS + 1, dtype=np.float64)
    freqs = grid_hz[:, None].astype(np.float64) * k[None, :]
    valid = freqs < 0.45 * sample_rate
    weights = np.where(valid, (grid_hz[:, None] + KLAPURI_ALPHA_HZ) / (freqs + KLAPURI_BETA_HZ), 0.0)
    pos = np.clip(freqs * n_fft / sample_rate, 0, n_fft // 2 - 1.001)
    lower = np.floor(pos).astype(np.int32)
    return lower, (pos - lower).astype(np.float32), weights.astype(np.float32)


def salience(spectrum: jax.Array, grid_hz: np.ndarray, *, sample_rate: int) -> jax.Array:
    """Harmonic-sum salience of every grid f0: `[..., n_frames, bins]` -> `[..., n_frames, G]`."""
    n_fft = 2 * (spectrum.shape[-1] - 1)
    lower, frac, weights = _harmonic_sampler(grid_hz, sample_rate=sample_rate, n_fft=n_fft)
    peak = _neighbour_peak(spectrum)
    lo = jnp.take(peak, jnp.asarray(lower.reshape(-1)), axis=-1)
    hi = jnp.take(peak, jnp.asarray(lower.reshape(-1) + 1), axis=-1)
    f = jnp.asarray(frac.reshape((1,) * (spectrum.ndim - 1) + (-1,)))
    vals = (lo * (1 - f) + hi * f).reshape(spectrum.shape[:-1] + lower.shape)
    return jnp.einsum("...gk,gk->...g", vals, jnp.asarray(weights))


def _l1_min_filter(cost: jax.Array, slope: jax.Array):
    """min_h cost[h] + slope * |g - h| and its argmin, for every g (linear time)."""
    index = jnp.arange(cost.shape[-1], dtype=jnp.int32)
    g = index.astype(jnp.float32)
    slope = jnp.asarray(slope, jnp.float32)

    def pick(a, b):
        return jnp.where(b[0] < a[0], b[0], a[0]), jnp.where(b[0] < a[0], b[1], a[1])

    left_v, left_i = lax.associative_scan(pick, (cost - slope * g, index))
    right_v, right_i = lax.associative_scan(pick, (cost + slope * g, index), reverse=True)
    left_v, right_v = left_v + slope * g, right_v - slope * g
    return jnp.minimum(left_v, right_v), jnp.where(right_v < left_v, right_i, left_i)


def track(sal: jax.Array, *, jump_cost_per_semitone: float = JUMP_COST_PER_SEMITONE,
          cents_step: float = CENTS_STEP) -> jax.Array:
    """Best path through the grid: salience `[n_frames, G]` -> grid indices int32 `[n_frames]`.

    Minimises sum_t -log(S_t(g_t) / max S_t + floor) + cost * |semitones jumped|,
    exactly, by dynamic programming (Viterbi with an L1 transition cost).
    """
    local = -jnp.log(sal / (jnp.max(sal, axis=-1, keepdims=True) + 1e-12) + SALIENCE_FLOOR)
    slope = jnp.float32(jump_cost_per_semitone * cents_step / 100.0)

    def forward(acc, cost_t):
        best, arg = _l1_min_filter(acc, slope)
        return best + cost_t, arg

    final, back = lax.scan(forward, local[0], local[1:])
    last = jnp.argmin(final).astype(jnp.int32)

    def backward(i, arg_t):
        prev = arg_t[i]
        return prev, prev

    _, path = lax.scan(backward, last, back, reverse=True)
    return jnp.concatenate([path, last[None]])


def cancel_partials(spectrum: jax.Array, f0_hz: jax.Array, *, sample_rate: int,
                    width: float = PARTIAL_WIDTH) -> jax.Array:
    """Remove a found voice's share of every partial k * f0 (explaining away).

    Spectral smoothness (Klapuri 2003, "Multiple fundamental frequency estimation based
    on harmonicity and spectral smoothness", IEEE TSAP 11(6)): the voice's partial
    amplitudes A_k are the spectrum's peaks within +-width (relative; at least 1.5 bins,
    so a low partial's main lobe counts) of k * f0; its own share of each is taken to
    be S_k = min(A_k, mean(A_{k-1}, A_k, A_{k+1})), and the bins of partial k are scaled
    by 1 - S_k / A_k. A partial another note shares (an octave, a fifth above) stands
    out of the voice's smooth envelope and keeps its excess; a partial of the voice
    alone goes. spectrum `[n_frames, bins]` (non-negative), f0_hz `[n_frames]` ->
    `[n_frames, bins]`.
    """
    n_fft = 2 * (spectrum.shape[-1] - 1)
    bin_hz = jnp.arange(spectrum.shape[-1], dtype=jnp.float32) * jnp.float32(sample_rate / n_fft)
    ratio = bin_hz[None, :] / f0_hz[:, None]                                          # [F, B]
    k = jnp.arange(1, MAX_HARMONICS + 1, dtype=jnp.float32)                            # [K]
    tolerance = jnp.maximum(width * k[None, :], 1.5 * sample_rate / n_fft / f0_hz[:, None])   # [F, K]
    region = jnp.abs(ratio[:, None, :] - k[None, :, None]) <= tolerance[..., None]    # [F, K, B]
    valid = k[None, :] * f0_hz[:, None] < 0.5 * sample_rate                           # [F, K]
    amps = jnp.where(valid, jnp.max(jnp.where(region, spectrum[:, None, :], 0.0), axis=-1), 0.0)
    counts = valid.astype(jnp.float32)
    padded_a, padded_c = (jnp.pad(a, ((0, 0), (1, 1))) for a in (amps, counts))
    mean = ((padded_a[:, :-2] + padded_a[:, 1:-1] + padded_a[:, 2:])
            / jnp.maximum(padded_c[:, :-2] + padded_c[:, 1:-1] + padded_c[:, 2:], 1.0))
    keep = jnp.where(amps > 0, 1.0 - jnp.minimum(amps, mean) / jnp.maximum(amps, 1e-12), 1.0)   # [F, K]
    return spectrum * jnp.min(jnp.where(region, keep[..., None], 1.0), axis=1)


def read_amplitudes(audio, f0_hz: jax.Array, *, sample_rate: int, hop: int, n_harmonics: int) -> jax.Array:
    """Linear peak amplitude of partials k * f0 read off a ~64 ms STFT.

    audio `[n_samples]`, f0_hz `[n_voices, n_frames]` -> `[n_voices, n_frames, n_harmonics]`
    (a sinusoid of amplitude A has STFT magnitude A / 2 with this scaling).
    """
    n_fft = int(2 ** round(np.log2(0.064 * sample_rate)))
    n_frames = f0_hz.shape[-1]
    mag = spectral.magnitude(spectral.stft(jnp.asarray(audio, jnp.float32), n_fft=n_fft, hop=hop))
    mag = mag[:n_frames]
    k = jnp.arange(1, n_harmonics + 1, dtype=jnp.float32).reshape(1, 1, n_harmonics)
    freqs = f0_hz[..., None] * k                                     # [V, F, H]
    pos = jnp.clip(jnp.round(freqs * n_fft / sample_rate).astype(jnp.int32), 0, n_fft // 2)
    frames = jnp.broadcast_to(jnp.arange(n_frames)[None, :, None], pos.shape)
    amp = 2.0 * mag[frames, pos]
    return jnp.where(freqs < 0.48 * sample_rate, amp, 0.0)


def odd_partial_prominence_db(audio, f0_hz: jax.Array, *, sample_rate: int, hop: int,
                              n_odd: int = 5) -> jax.Array:
    """How far the odd partials of an octave below f0 stand out of the spectrum, in dB.

    For each voice and frame: at (2j + 1) f0 / 2, j = 0..n_odd - 1 (the partials that
    f0 / 2 has and f0 has not), the level of the spectrum's peak (the highest of three
    bins) minus the mean level a quarter of f0 either side, on a ~100 ms STFT; the
    median over j. A real partial stands tens of dB out of its neighbourhood, noise
    between the partials of f0 does not. audio `[n_samples]`, f0_hz `[V, n_frames]` ->
    float32 `[V, n_frames]` dB.
    """
    n_fft = analysis_fft_size(sample_rate)
    n_frames = f0_hz.shape[-1]
    mag = spectral.magnitude(spectral.stft(jnp.asarray(audio, jnp.float32), n_fft=n_fft, hop=hop))[:n_frames]
    db = 20.0 * jnp.log10(mag + 1e-9)
    db = _neighbour_peak(db)
    bins_per_hz = n_fft / sample_rate
    odd = ((2.0 * jnp.arange(n_odd, dtype=jnp.float32) + 1.0) * 0.5).reshape(1, 1, n_odd)   # [1, 1, J]
    centre = f0_hz[..., None] * odd                                            # [V, F, J]
    side = 0.25 * f0_hz[..., None]
    frames = jnp.broadcast_to(jnp.arange(n_frames)[None, :, None], centre.shape)

    def level(hz):
        pos = jnp.clip(jnp.round(hz * bins_per_hz).astype(jnp.int32), 0, n_fft // 2)
        return db[frames, pos]
    prominence = level(centre) - 0.5 * (level(centre - side) + level(centre + side))
    inside = centre + side < 0.48 * sample_rate
    return jnp.nanmedian(jnp.where(inside, prominence, jnp.nan), axis=-1)


def _best_track(spectrum: jax.Array, grid: np.ndarray, others: list, *, sample_rate: int) -> jax.Array:
    """The best f0 track in Hz `[n_frames]` through `spectrum`'s salience, at least
    EXCLUDE_CENTS from each track of `others` in every frame."""
    sal = salience(spectrum, grid, sample_rate=sample_rate)
    cents = 1200 * np.log2(grid)                                       # static
    for f0 in others:
        sal = jnp.where(jnp.abs(cents[None, :] - 1200 * jnp.log2(f0)[:, None]) < EXCLUDE_CENTS, 0.0, sal)
    return jnp.asarray(grid)[track(sal)]


def _lobe(delta_bins: jax.Array) -> jax.Array:
    """Compressed magnitude of a Hann window's main lobe `delta_bins` from a sinusoid (1 at 0)."""
    d = jnp.abs(delta_bins)
    den = 1.0 - d ** 2
    singular = jnp.abs(den) < 1e-3
    v = jnp.where(singular, 0.5, jnp.abs(jnp.sinc(d) / jnp.where(singular, 1.0, den)))
    return jnp.where(d < 2.0, jnp.power(v, COMPRESSION), 0.0)


def joint_fit_residual(spectrum: jax.Array, f0_hz: jax.Array, band_hz: jax.Array, *,
                       sample_rate: int) -> jax.Array:
    """How much of a spectrum a set of voices leaves unexplained, with smooth envelopes.

    Every frame's compressed spectrum y (bins below band_hz[t]) is fitted by
    sum_v sum_k a_vk L(b - k f0_vt / bin_hz), partials k = 1..FIT_HARMONICS below the
    band, L the Hann main lobe (`_lobe`), and each voice's partial amplitudes a smooth
    non-negative envelope a_vk = sum_j c_vj max(0, 1 - |log2 k - j|), j = 0..5 (hat
    functions in log2 k). The c >= 0 are fitted by multiplicative updates of
    non-negative least squares. A voice at a sub-harmonic of a note cannot leave its
    partials between the note's empty, and a voice at a note's octave leaves the odd
    partials unexplained, so the right set fits best. spectrum `[F, B]` (compressed,
    `compressed_spectrum`), f0_hz `[V, F]`, band_hz `[F]` -> scalar: the squared
    residual over the squared spectrum, both summed over frames and bins in the band.
    """
    n_frames, n_bins = spectrum.shape
    n_voices = f0_hz.shape[0]
    bins_per_hz = 2 * (n_bins - 1) / sample_rate
    k = jnp.arange(1, FIT_HARMONICS + 1, dtype=jnp.float32)
    pos = f0_hz[..., None] * k[None, None, :] * bins_per_hz                        # [V, F, K]
    knots = jnp.arange(ENVELOPE_KNOTS, dtype=jnp.float32)
    envelope = jnp.maximum(0.0, 1 - jnp.abs(jnp.log2(k)[:, None] - knots[None, :]))   # [K, J]
    near = jnp.floor(pos).astype(jnp.int32)[..., None] + jnp.arange(-2, 3).reshape(1, 1, 1, 5)
    in_band = (f0_hz[..., None] * k[None, None, :] < band_hz[None, :, None]).astype(jnp.float32)
    weight = _lobe(near.astype(jnp.float32) - pos[..., None]) * in_band[..., None]   # [V, F, K, 5]
    values = weight[..., None] * envelope[None, None, :, None, :]                     # [V, F, K, 5, J]
    index = (jnp.arange(n_frames)[None, :, None, None, None], jnp.clip(near, 0, n_bins - 1)[..., None],
             jnp.arange(n_voices)[:, None, None, None, None] * ENVELOPE_KNOTS
             + jnp.arange(ENVELOPE_KNOTS).reshape(1, 1, 1, 1, -1))
    index = tuple(jnp.broadcast_to(i, values.shape) for i in index)
    rows = jnp.arange(n_bins, dtype=jnp.float32)[None, :] < band_hz[:, None] * bins_per_hz   # [F, B]
    design = jnp.zeros((n_frames, n_bins, n_voices * ENVELOPE_KNOTS)).at[index].add(values)
    design = design * rows[..., None].astype(jnp.float32)                            # [F, B, V J]
    y = jnp.where(rows, spectrum, 0.0)
    gram = jnp.einsum("fbi,fbj->fij", design, design)
    corr = jnp.einsum("fbi,fb->fi", design, y)

    def update(c, _):
        return c * corr / (jnp.einsum("fij,fj->fi", gram, c) + 1e-9), None
    c, _ = lax.scan(update, jnp.full(corr.shape, 1e-2, jnp.float32), None, length=FIT_ITERATIONS)
    residual = (jnp.sum(y ** 2, -1) - 2 * jnp.sum(c * corr, -1)
                + jnp.einsum("fi,fij,fj->f", c, gram, c))
    return jnp.sum(residual) / jnp.maximum(jnp.sum(y ** 2), 1e-12)


def refine_f0(spectrum: jax.Array, f0_hz: jax.Array, *, sample_rate: int,
              cents: float = REFINE_CENTS) -> jax.Array:
    """Per frame, the f0 within +-cents (5-cent steps) of f0_hz whose comb collects most.

    Maximises sum_k P(k f0) / k over the FIT_HARMONICS partials below the spectrum's top,
    P the spectrum's highest of three bins around each partial. A comb of 40 partials
    10 cents off its note misses partial 10 of a 550 Hz tone by 4 bins (a 100 ms frame at
    16 kHz), so candidates are put on their partials before they are fitted.
    spectrum `[n_frames, bins]`, f0_hz `[..., n_frames]` -> `[..., n_frames]`.
    """
    n_bins = spectrum.shape[-1]
    bins_per_hz = 2 * (n_bins - 1) / sample_rate
    offsets = np.arange(-cents, cents + 0.1, 5.0, dtype=np.float32)
    k = jnp.arange(1, FIT_HARMONICS + 1, dtype=jnp.float32)
    peak = _neighbour_peak(spectrum)
    lead = (1,) * (f0_hz.ndim - 1)
    trial = f0_hz[..., None] * jnp.asarray(2.0 ** (offsets / 1200)).reshape(lead + (1, -1))   # [..., F, O]
    pos = jnp.round(trial[..., None] * k.reshape(lead + (1, 1, -1)) * bins_per_hz).astype(jnp.int32)
    frames = jnp.arange(spectrum.shape[0]).reshape(lead + (-1, 1, 1))
    collected = jnp.where(pos < n_bins - 1, peak[frames, jnp.clip(pos, 0, n_bins - 1)], 0.0)   # [..., F, O, K]
    best = jnp.argmax(jnp.sum(collected / k.reshape(lead + (1, 1, -1)), axis=-1), axis=-1)
    return jnp.take_along_axis(trial, best[..., None], axis=-1)[..., 0]


def untangle(f0_hz: jax.Array) -> jax.Array:
    """Voice tracks relabelled frame by frame so that each voice moves least.

    Tracks found one voice at a time may swap notes: a voice's best path can leave its
    note for another's where that one is louder, and a later voice takes up what it left,
    so a held chord comes back as voices that jump between its notes. The order of the
    voices in each frame is chosen to minimise sum_t sum_v log(1 + |c_v(t) - c_v(t-1)| / s),
    c in cents and s = MOVE_SCALE_CENTS, plus the cost of a SWITCH_CENTS move for each
    change of order (a tie keeps the labels; the first frame keeps its order). The cost is
    concave: where one note of a chord changes, the voices that hold keep their notes and
    one voice makes the whole leap, rather than several voices a step each. Solved exactly
    by dynamic programming over the V! orders up to MAX_PERMUTED_VOICES voices; beyond that
    greedily, frame by frame, each voice in turn taking the nearest track left. The set of
    pitches in every frame is unchanged. f0_hz `[V, n_frames]` (Hz, > 0) -> `[V, n_frames]`.
    """
    n_voices, n_frames = f0_hz.shape
    if n_voices == 1 or n_frames == 1:
        return f0_hz
    x = jnp.log2(f0_hz) * jnp.float32(1200.0 / MOVE_SCALE_CENTS)   # in units of the scale
    if n_voices > MAX_PERMUTED_VOICES:
        def greedy(previous, column):
            def take(free, prev_v):
                cost = jnp.where(free, jnp.abs(column - prev_v), jnp.inf)
                j = jnp.argmin(cost)
                return free.at[j].set(False), j
            _, order = lax.scan(take, jnp.ones(n_voices, bool), previous)
            return column[order], order
        _, order = lax.scan(greedy, x[:, 0], x[:, 1:].T)
        return jnp.concatenate([f0_hz[:, :1], jnp.take_along_axis(f0_hz[:, 1:], order.T, axis=0)], axis=1)
    orders = jnp.asarray(list(itertools.permutations(range(n_voices))), jnp.int32)   # [P, V]
    candidates = jnp.transpose(x[orders], (2, 0, 1))                                 # [F, P, V]
    moves = jnp.sum(jnp.log1p(jnp.abs(candidates[1:, :, None, :] - candidates[:-1, None, :, :])),
                    axis=-1)                                                         # [F-1, Q, P]
    n_orders = orders.shape[0]
    switch = jnp.float32(np.log1p(SWITCH_CENTS / MOVE_SCALE_CENTS))
    moves = moves + jnp.where(jnp.eye(n_orders, dtype=bool), 0.0, switch)[None]
    start = jnp.where(jnp.arange(n_orders) == 0, 0.0, jnp.inf)   # order 0 is the identity

    def forward(total, move):                     # move[q, p]: from order p (frame t-1) to q (t)
        options = total[None, :] + move
        return jnp.min(options, axis=1), jnp.argmin(options, axis=1)
    total, back = lax.scan(forward, start, moves)

    def backward(order, back_t):
        return back_t[order], order
    first, path = lax.scan(backward, jnp.argmin(total), back, reverse=True)
    path = jnp.concatenate([first[None], path])                                    # [F]
    chosen = orders[path]                                                           # [F, V]
    return jnp.take_along_axis(f0_hz, chosen.T, axis=0)


def choose_ratios(spectrum: jax.Array, f0_hz: jax.Array, *, sample_rate: int,
                  f0_min_hz: float, f0_max_hz: float) -> jax.Array:
    """Move voices to a fraction or multiple of their tracks where the chord fits better.

    The candidates of voice v are its track times 1 and every r in RATIOS, each put on
    its partials (`refine_f0`). Greedy over the voices: each round scores every voice's
    candidates (the others at their current ones) by `joint_fit_residual` over the band
    up to FIT_HARMONICS times the voice's lowest candidate (so every candidate spans the
    band), and makes the move that lowers the residual most, if it lowers it by
    RATIO_MARGIN or more; a voice moves at most once. A move is barred where it leaves
    [f0_min_hz, f0_max_hz] or lands within EXCLUDE_CENTS of another voice in more than a
    tenth of the frames. spectrum `[n_frames, bins]` (compressed), f0_hz `[V, n_frames]`
    -> `[V, n_frames]`: each voice its track times its chosen ratio.
    """
    y = spectrum[::FIT_FRAME_STRIDE]
    n_voices, n_ratios = f0_hz.shape[0], len(RATIOS) + 1
    ratios = jnp.asarray((1.0,) + RATIOS, jnp.float32)
    raw = f0_hz[:, None, ::FIT_FRAME_STRIDE] * ratios[None, :, None]                    # [V, R, F']
    candidates = refine_f0(y, raw, sample_rate=sample_rate)
    band_hz = jnp.minimum(FIT_HARMONICS * jnp.min(candidates, axis=1), 0.45 * sample_rate)   # [V, F']
    voice_of, ratio_of = jnp.repeat(jnp.arange(n_voices), n_ratios), jnp.tile(jnp.arange(n_ratios), n_voices)

    def score(tracks, v, r):
        moved = candidates[v, r]
        fit = joint_fit_residual(y, tracks.at[v].set(moved), band_hz[v], sample_rate=sample_rate)
        clash = jnp.mean(jnp.abs(1200 * jnp.log2(raw[v, r][None, :] / tracks)) < EXCLUDE_CENTS, axis=1) > 0.1
        barred = (jnp.any(clash & (jnp.arange(n_voices) != v)) | jnp.any(raw[v, r] < f0_min_hz)
                  | jnp.any(raw[v, r] > f0_max_hz))
        return jnp.where(barred & (r != 0), jnp.inf, fit)

    def one_move(choice, _):                      # choice[v]: index into ratios; 0 = not moved
        tracks = candidates[jnp.arange(n_voices), choice]
        fits = jax.vmap(score, in_axes=(None, 0, 0))(tracks, voice_of, ratio_of).reshape(n_voices, n_ratios)
        gain = jnp.where((choice != 0)[:, None], jnp.inf, fits / fits[:, :1])
        best = jnp.argmin(gain)
        v, r = best // n_ratios, best % n_ratios
        return choice.at[v].set(jnp.where(jnp.min(gain) < 1 - RATIO_MARGIN, r, choice[v])), None

    choice, _ = lax.scan(one_move, jnp.zeros(n_voices, jnp.int32), None, length=n_voices)
    return f0_hz * ratios[choice][:, None]


def propose(audio, *, sample_rate: int, hop: int, n_frames: int, n_voices: int,
            f0_min_hz: float, f0_max_hz: float) -> jax.Array:
    """Initial f0 tracks: float32 audio `[n_samples]` -> Hz `[n_voices, n_frames]`.

    Voice v is the best track through the salience left once voices < v are explained
    away (`cancel_partials`), at least EXCLUDE_CENTS from each of them in every frame.
    Then each voice in turn is picked again from the spectrum with all the others
    explained away (one sweep of iterated conditional modes): a voice taken first
    because it explains several notes at once (a sub-octave of a fifth, a common
    sub-harmonic) gives way once the notes it stood for have voices of their own.
    The tracks are then untangled (`untangle`: a voice keeps its note through a held
    chord). Last, `choose_ratios` moves voices left on a sub-harmonic or an upper partial
    of a note.
    Traceable (jit with the keyword arguments static).
    """
    grid = f0_grid(f0_min_hz, f0_max_hz)
    full = compressed_spectrum(audio, sample_rate=sample_rate, hop=hop, n_frames=n_frames)
    tracks, spectrum = [], full
    for v in range(n_voices):
        tracks.append(_best_track(spectrum, grid, tracks, sample_rate=sample_rate))
        if v + 1 < n_voices:
            spectrum = cancel_partials(spectrum, tracks[-1], sample_rate=sample_rate)
    if n_voices > 1:
        for v in range(n_voices):
            others = tracks[:v] + tracks[v + 1:]
            spectrum = full
            for f0 in others:
                spectrum = cancel_partials(spectrum, f0, sample_rate=sample_rate)
            tracks[v] = _best_track(spectrum, grid, others, sample_rate=sample_rate)
        return choose_ratios(full, untangle(jnp.stack(tracks)), sample_rate=sample_rate,
                             f0_min_hz=f0_min_hz, f0_max_hz=f0_max_hz)
    return jnp.stack(tracks)
