"""Data: tunings, synthetic corpora rendered on device, audio folders, real instruments.

Public names are re-exported here explicitly; submodules hold one concept each.
"""
from pcmusic.data.folders import EXTENSIONS, AudioFolder, DataPosition, SegmentBatch, SkippedFile
from pcmusic.data.instruments import InstrumentBatch, midi_lattice, render_instrument_batch, require_fluidsynth
from pcmusic.data.melodies import (Melody, interval_entropy_bits, interval_probabilities, melody,
                                   random_walk, rhythm, temperature_for_entropy)
from pcmusic.data.spec import KINDS, SyntheticSpec
from pcmusic.data.synthetic import (ACTIVE_THRESHOLD, KIND_IDS, NoteEvents, SyntheticBatch, batch_at, sample_events,
                                    synthetic_batch)
from pcmusic.data.timbre import Timbre
from pcmusic.data.tunings import (ACCEPTED_NAMES, Tuning, TuningError, cents_to_ratio, equal_temperament,
                                  hz_to_cents, parse_tuning, ratio_to_cents, scale_error_cents,
                                  scale_frequencies)

__all__ = [
    # tunings
    "ACCEPTED_NAMES", "Tuning", "TuningError", "cents_to_ratio", "equal_temperament", "hz_to_cents",
    "parse_tuning", "ratio_to_cents", "scale_error_cents", "scale_frequencies",
    # melodies
    "Melody", "interval_entropy_bits", "interval_probabilities", "melody", "random_walk", "rhythm",
    "temperature_for_entropy",
    # synthetic corpora
    "ACTIVE_THRESHOLD", "KINDS", "KIND_IDS", "NoteEvents", "SyntheticBatch", "SyntheticSpec", "Timbre",
    "batch_at", "sample_events", "synthetic_batch",
    # audio folders
    "EXTENSIONS", "AudioFolder", "DataPosition", "SegmentBatch", "SkippedFile",
    # real instruments
    "InstrumentBatch", "midi_lattice", "render_instrument_batch", "require_fluidsynth",
]
