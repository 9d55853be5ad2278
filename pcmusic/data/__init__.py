"""Data: tunings, synthetic corpora rendered on device, audio folders, real instruments.

Public names are re-exported here explicitly; submodules hold one concept each.
"""
from pcmusic.data.folders import EXTENSIONS, AudioFolder, DataPosition, SegmentBatch, SkippedFile
from pcmusic.data.melodies import (Melody, interval_entropy_bits, interval_probabilities, melody,
                                   random_walk, rhythm, temperature_for_entropy)
from pcmusic.data.spec import KINDS, SyntheticSpec
from pcmusic.data.synthetic import ACTIVE_THRESHOLD, KIND_IDS, SyntheticBatch, batch_at, synthetic_batch
from pcmusic.data.timbre import Timbre
from pcmusic.data.tunings import (ACCEPTED_NAMES, Tuning, TuningError, cents_to_ratio, equal_temperament,
                                  hz_to_cents, parse_tuning, ratio_to_cents, scale_error_cents,
                                  scale_frequencies)

__all__ = [
    "ACCEPTED_NAMES", "ACTIVE_THRESHOLD", "EXTENSIONS", "KINDS", "KIND_IDS", "AudioFolder", "DataPosition",
    "Melody", "SegmentBatch", "SkippedFile", "SyntheticBatch", "SyntheticSpec", "Timbre", "Tuning", "TuningError", "batch_at", "cents_to_ratio", "equal_temperament", "hz_to_cents",
    "interval_entropy_bits", "interval_probabilities", "melody", "parse_tuning", "random_walk",
    "ratio_to_cents", "rhythm", "scale_error_cents", "scale_frequencies", "synthetic_batch",
    "temperature_for_entropy",
]
