"""`SyntheticSpec`: what a synthetic corpus contains (static, hashable, validated).

Every field is a plain value so the spec can be a static argument of `jax.jit`
and be built from a TOML table (`SyntheticSpec(**table)`). Ranges are
`(low, high)` tuples drawn uniformly per voice; equal bounds fix a value.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from pcmusic.data.tunings import Tuning, parse_tuning, scale_frequencies
from pcmusic.errors import ConfigError

KINDS = ("notes", "melodies", "chords", "mixed")
Range = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """A synthetic corpus. Units: Hz, seconds, dB per octave, cents.

    kind: "notes" (one note per clip), "melodies" (a random-walk line of
      `notes_per_melody` notes), "chords" (`min_voices..max_voices` scale notes
      sounding together) or "mixed" (each clip one of the three, equally likely).
    tuning: a `Tuning` or anything `parse_tuning` accepts ("12-TET", [1, "9/8", ...]).
    batch_size, sample_rate, hop; n_frames, or seconds (then n_frames =
      round(seconds * sample_rate / hop)).
    f_ref_hz: the tuning's reference pitch; f0_min_hz, f0_max_hz: the range notes are drawn from.
    n_harmonics: partials per voice.
    Timbre ranges (per voice): slope_db_per_octave (spectral brightness),
      pseudo_octave (2 = harmonic; partials at f0 * n**log2(pseudo_octave)),
      attack_s, decay_s, sustain, release_s (linear ADSR), vibrato_hz,
      vibrato_cents (peak depth), velocity (peak amplitude), noise_level
      (RMS of breath noise relative to the voice amplitude; 0 skips the noise
      bank), n_noise_bands.
    Melodies: melody_temperature and max_step (see `melodies`), rest_probability,
      articulation (held fraction of each note's slot).
    peak: clips whose peak exceeds it are scaled down to it (the scale is the label `gain`).
    """
    kind: Literal["notes", "melodies", "chords", "mixed"] = "notes"
    tuning: Tuning | str = "12-TET"
    batch_size: int = 8
    sample_rate: int = 16000
    hop: int = 64
    n_frames: int = 250
    seconds: float | None = None
    f_ref_hz: float = 261.6256  # C4 when A4 = 440 Hz, so 12-TET pitches are MIDI pitches
    f0_min_hz: float = 110.0
    f0_max_hz: float = 880.0
    n_harmonics: int = 24
    slope_db_per_octave: Range = (-12.0, -3.0)
    pseudo_octave: Range = (2.0, 2.0)
    attack_s: Range = (0.005, 0.05)
    decay_s: Range = (0.05, 0.3)
    sustain: Range = (0.4, 1.0)
    release_s: Range = (0.03, 0.2)
    vibrato_hz: Range = (4.0, 7.0)
    vibrato_cents: Range = (0.0, 15.0)
    velocity: Range = (0.5, 1.0)
    noise_level: Range = (0.0, 0.05)
    n_noise_bands: int = 16
    min_voices: int = 2
    max_voices: int = 3
    notes_per_melody: int = 8
    melody_temperature: float = 1.0
    max_step: int = 4
    rest_probability: float = 0.1
    articulation: Range = (0.6, 0.95)
    peak: float = 0.9

    def __post_init__(self):
        def fail(field, message):
            raise ConfigError(f"SyntheticSpec.{field} = {getattr(self, field)!r}: {message}")

        object.__setattr__(self, "tuning", parse_tuning(self.tuning))
        if self.kind not in KINDS:
            fail("kind", f"accepted kinds: {', '.join(KINDS)}")
        if self.seconds is not None:
            if not self.seconds > 0:
                fail("seconds", "must be > 0")
            object.__setattr__(self, "n_frames", max(1, round(self.seconds * self.sample_rate / self.hop)))
        for name in ("batch_size", "sample_rate", "hop", "n_frames", "n_harmonics", "n_noise_bands",
                     "min_voices", "max_voices", "notes_per_melody", "max_step"):
            if not (isinstance(getattr(self, name), (int, np.integer)) and getattr(self, name) >= 1):
                fail(name, "must be an int >= 1")
        for field in dataclasses.fields(self):
            if field.type == "Range":
                value = getattr(self, field.name)
                object.__setattr__(self, field.name, tuple(float(v) for v in value))
                if len(value) != 2 or not value[0] <= value[1]:
                    fail(field.name, "must be a range (low, high) with low <= high")
        positive = ("attack_s", "decay_s", "release_s")
        if any(getattr(self, n)[0] <= 0 for n in positive) or self.pseudo_octave[0] <= 1:
            fail("attack_s", "envelope times must be > 0 s and pseudo_octave > 1")
        if not 0 <= self.rest_probability < 1 or not 0 < self.peak <= 1:
            fail("rest_probability", "need 0 <= rest_probability < 1 and 0 < peak <= 1")
        if self.min_voices > self.max_voices:
            fail("min_voices", f"must be <= max_voices = {self.max_voices}")
        if not 0 < self.f0_min_hz < self.f0_max_hz < self.sample_rate / 2:
            fail("f0_max_hz", f"need 0 < f0_min_hz < f0_max_hz < Nyquist ({self.sample_rate / 2} Hz)")
        n_pitches = self.lattice_hz().size
        if n_pitches < max(2, self.max_voices):
            fail("tuning", f"only {n_pitches} pitch(es) of {self.tuning.name!r} lie in "
                           f"[{self.f0_min_hz}, {self.f0_max_hz}] Hz; widen the range")

    def lattice_hz(self) -> np.ndarray:
        """float64 `[n_pitches]`: the pitches notes are drawn from (Hz, ascending)."""
        return scale_frequencies(self.tuning, f_ref_hz=self.f_ref_hz, f_min_hz=self.f0_min_hz,
                                 f_max_hz=self.f0_max_hz)

    @property
    def n_samples(self) -> int:
        return self.n_frames * self.hop

    @property
    def clip_seconds(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def n_voices(self) -> int:
        """Voice slots per clip: 1 for notes and melodies, max_voices for chords and mixed."""
        return 1 if self.kind in ("notes", "melodies") else self.max_voices

    @property
    def n_slots(self) -> int:
        """Note slots per voice: notes_per_melody for melodies and mixed, else 1."""
        return self.notes_per_melody if self.kind in ("melodies", "mixed") else 1

    def timbre_ranges(self) -> dict[str, Range]:
        names = ("slope_db_per_octave", "pseudo_octave", "attack_s", "decay_s", "sustain", "release_s",
                 "vibrato_hz", "vibrato_cents", "velocity", "noise_level")
        return {name: getattr(self, name) for name in names}
