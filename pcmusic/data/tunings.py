"""Tunings: sets of frequency ratios that repeat at a period, and cents arithmetic.

A `Tuning` is a list of ratios within one period (`1 <= r < period`, the first
exactly 1) plus the period itself (2 for octave-repeating scales, 3 for the
Bohlen-Pierce tritave). Every pitch of the tuning is `f_ref_hz * period**k * r`.
Named tunings: N-TET / N-EDO (N equal steps of the octave, e.g. "12-TET",
"5-TET", "19-TET"), N-ED3 (N equal steps of the tritave), "just" (5-limit major
scale), "just-chromatic" (5-limit 12-note scale), "bohlen-pierce" (13-ED3) and
"bohlen-pierce-just". Ratios are in Hz/Hz, cents are 1200*log2(ratio).

Sources: Sethares, "Tuning, Timbre, Spectrum, Scale" (2005), ch. 3-4 (just and
equal temperaments); Mathews, Pierce et al., "Theoretical and experimental
explorations of the Bohlen-Pierce scale", JASA 84 (1988) (BP just ratios).
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pcmusic.errors import ConfigError


class TuningError(ConfigError):
    """A tuning name or ratio list that cannot be used; the message lists what is accepted."""


@dataclasses.dataclass(frozen=True)
class Tuning:
    """Ratios of one period (ascending, first 1.0, all < period) and the period (> 1).

    Build named ones with `parse_tuning("19-TET")`; a user scale is
    `Tuning(ratios=(1, 9/8, 5/4, 4/3, 3/2, 5/3, 15/8), period=2.0, name="my just")`.
    """
    ratios: tuple[float, ...]
    period: float = 2.0
    name: str = "custom"

    def __post_init__(self):
        ratios = tuple(float(r) for r in self.ratios)
        object.__setattr__(self, "ratios", ratios)
        object.__setattr__(self, "period", float(self.period))
        if not self.period > 1.0 or not math.isfinite(self.period):
            raise TuningError(f"tuning {self.name!r}: period must be a finite ratio > 1, got {self.period}")
        if not ratios or ratios[0] != 1.0:
            raise TuningError(f"tuning {self.name!r}: ratios must start with 1 (the reference), got {ratios}")
        if any(not b > a for a, b in zip(ratios, ratios[1:])) or ratios[-1] >= self.period:
            raise TuningError(f"tuning {self.name!r}: ratios must rise strictly and stay below the "
                              f"period {self.period}, got {ratios}")

    @property
    def n_steps(self) -> int:
        """Number of scale steps per period."""
        return len(self.ratios)

    @property
    def period_cents(self) -> float:
        return ratio_to_cents(self.period)

    def cents(self) -> np.ndarray:
        """float64 `[n_steps]`: cents of each ratio above the reference, in [0, period_cents)."""
        return np.asarray(ratio_to_cents(np.asarray(self.ratios)), np.float64)

    def step_cents(self) -> np.ndarray:
        """float64 `[n_steps]`: cents from each scale step to the next, the last wrapping to the period."""
        edges = np.append(self.cents(), self.period_cents)
        return np.diff(edges)


def equal_temperament(n_steps: int, *, period: float = 2.0, name: str | None = None) -> Tuning:
    """`n_steps` equal divisions of `period` (12-TET: 12 steps of 100 cents)."""
    if n_steps < 1:
        raise TuningError(f"an equal temperament needs >= 1 step, got {n_steps}")
    ratios = tuple(float(period ** (k / n_steps)) for k in range(n_steps))
    return Tuning(ratios=ratios, period=period, name=name or f"{n_steps}-ED{period:g}")


def _just(ratios: Sequence[str], period: float, name: str) -> Tuning:
    return Tuning(ratios=tuple(float(Fraction(r)) for r in ratios), period=period, name=name)


# Fixed named scales; N-TET / N-EDO / N-ED3 are parsed from the name.
_NAMED = {
    "just": lambda: _just(("1", "9/8", "5/4", "4/3", "3/2", "5/3", "15/8"), 2.0, "just"),
    "just-chromatic": lambda: _just(("1", "16/15", "9/8", "6/5", "5/4", "4/3", "45/32", "3/2",
                                     "8/5", "5/3", "9/5", "15/8"), 2.0, "just-chromatic"),
    "bohlen-pierce": lambda: equal_temperament(13, period=3.0, name="bohlen-pierce"),
    "bohlen-pierce-just": lambda: _just(("1", "27/25", "25/21", "9/7", "7/5", "75/49", "5/3", "9/5",
                                         "49/25", "15/7", "7/3", "63/25", "25/9"), 3.0,
                                        "bohlen-pierce-just"),
}
_ALIASES = {"bp": "bohlen-pierce", "bp-just": "bohlen-pierce-just", "just-major": "just"}
_EQUAL = re.compile(r"^(\d+)-?(tet|edo|ed2|ed3)$")
ACCEPTED_NAMES = ("N-TET / N-EDO (e.g. 12-TET, 5-TET, 19-TET)", "N-ED3 (e.g. 13-ED3)",
                  *_NAMED, *_ALIASES)


def _ratio(value: Any, where: str) -> float:
    try:
        if isinstance(value, str):
            return float(Fraction(value.strip()))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    except (ValueError, ZeroDivisionError):
        pass
    raise TuningError(f"{where}: {value!r} is not a ratio; write a number (1.25) or a fraction string ('5/4')")


def parse_tuning(value: str | Sequence[Any] | Mapping[str, Any] | Tuning) -> Tuning:
    """A Tuning from a name, a list of ratios (period 2) or a TOML table.

    Accepted: a `Tuning`; a name (see `ACCEPTED_NAMES`, case-insensitive); a list
    of ratios such as `[1, "9/8", 1.25]` (octave period); a table
    `{ratios = [...], period = 3}` or `{cents = [0, 200, ...], period = 2}`.
    Raises TuningError naming the value and what is accepted.
    """
    if isinstance(value, Tuning):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        key = _ALIASES.get(key, key)
        if key in _NAMED:
            return _NAMED[key]()
        match = _EQUAL.match(key)
        if match and int(match.group(1)) >= 1:
            period = 3.0 if match.group(2) == "ed3" else 2.0
            return equal_temperament(int(match.group(1)), period=period, name=value.strip())
        raise TuningError(f"unknown tuning {value!r}; accepted names: {', '.join(ACCEPTED_NAMES)}; "
                          "or a list of ratios, or a table {ratios = [...], period = 2}")
    if isinstance(value, Mapping):
        unknown = set(value) - {"ratios", "cents", "period", "name"}
        if unknown or ("ratios" in value) == ("cents" in value):
            raise TuningError(f"tuning table {dict(value)!r}: give exactly one of 'ratios' or 'cents', "
                              "optionally 'period' (default 2) and 'name'")
        period = _ratio(value.get("period", 2.0), "tuning period")
        name = str(value.get("name", "custom"))
        if "cents" in value:
            ratios = tuple(float(cents_to_ratio(_ratio(c, "tuning cents"))) for c in value["cents"])
        else:
            ratios = tuple(_ratio(r, "tuning ratios") for r in value["ratios"])
        return Tuning(ratios=ratios, period=period, name=name)
    if isinstance(value, Sequence):
        return Tuning(ratios=tuple(_ratio(r, "tuning ratios") for r in value), period=2.0)
    raise TuningError(f"tuning {value!r}: expected a name, a list of ratios or a table")


def scale_frequencies(tuning: Tuning, *, f_ref_hz: float, f_min_hz: float, f_max_hz: float) -> np.ndarray:
    """float64 `[n]`: every pitch `f_ref_hz * period**k * ratio` in `[f_min_hz, f_max_hz]`, ascending (Hz).

    Computed in float64 on the host: the result sizes the static lattice that
    jit-compiled generators index into.
    """
    if not 0 < f_min_hz <= f_max_hz or f_ref_hz <= 0:
        raise TuningError(f"need 0 < f_min_hz <= f_max_hz and f_ref_hz > 0, got f_min_hz={f_min_hz}, "
                          f"f_max_hz={f_max_hz}, f_ref_hz={f_ref_hz}")
    k_lo = math.floor(math.log(f_min_hz / f_ref_hz, tuning.period)) - 1
    k_hi = math.ceil(math.log(f_max_hz / f_ref_hz, tuning.period)) + 1
    periods = tuning.period ** np.arange(k_lo, k_hi + 1, dtype=np.float64)
    freqs = (f_ref_hz * periods[:, None] * np.asarray(tuning.ratios, np.float64)[None, :]).ravel()
    # A relative tolerance keeps a pitch that lands on a bound up to rounding.
    keep = (freqs >= f_min_hz * (1 - 1e-12)) & (freqs <= f_max_hz * (1 + 1e-12))
    return np.sort(freqs[keep])


def _xp(x: Any):
    return jnp if isinstance(x, jax.Array) else np


def ratio_to_cents(ratio):
    """Cents of a frequency ratio: 1200*log2(ratio). numpy in, numpy out; jax in, jax out."""
    return 1200.0 * _xp(ratio).log2(ratio)


def cents_to_ratio(cents):
    """Frequency ratio of an interval in cents: 2**(cents/1200)."""
    return _xp(cents).exp2(cents / 1200.0)


def hz_to_cents(f_hz, *, f_ref_hz: float):
    """Cents of `f_hz` above `f_ref_hz` (negative below)."""
    return ratio_to_cents(f_hz / f_ref_hz)


def scale_error_cents(f_hz, tuning: Tuning, *, f_ref_hz: float):
    """Signed cents from each frequency to the nearest pitch of `tuning` (any period).

    Zero for every pitch of the scale; the copy-model experiment uses it to ask
    whether generated pitches follow the training tuning. NaN stays NaN.
    """
    xp = _xp(f_hz)
    period = tuning.period_cents
    within = xp.mod(hz_to_cents(f_hz, f_ref_hz=f_ref_hz), period)  # [...] in [0, period)
    lattice = np.append(tuning.cents(), period)                    # the period closes the circle
    diffs = within[..., None] - xp.asarray(lattice, dtype=within.dtype)
    nearest = xp.argmin(xp.abs(diffs), axis=-1)
    return xp.take_along_axis(diffs, nearest[..., None], axis=-1)[..., 0]
