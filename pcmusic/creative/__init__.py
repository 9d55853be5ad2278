"""Library parts of the open-ended experiments: roughness, MODES metrics, MCC, offline metrics.

Public names are re-exported here explicitly; everything else is private.
"""
from pcmusic.creative.roughness import (RoughnessCurve, dyad_roughness, find_minima,
                                        harmonic_partials, pair_dissonance, roughness,
                                        scan_minima)

__all__ = [
    "RoughnessCurve", "dyad_roughness", "find_minima", "harmonic_partials", "pair_dissonance",
    "roughness", "scan_minima",
]
