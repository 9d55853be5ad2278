"""Library parts of the open-ended experiments: roughness, MODES metrics, MCC, offline metrics.

Public names are re-exported here explicitly; everything else is private.
"""
from pcmusic.creative.mcc import (MCCState, MCCStepInfo, Queue, generator_mc, listener_mc,
                                  mcc_batch_step, push, queue_init, queue_order, queue_size,
                                  take_parents)
from pcmusic.creative.metrics import (copy_rate, corpus_novelty, pitch_class_entropy,
                                      spectral_flatness)
from pcmusic.creative.modes import (archive_growth, change, complexity, ecology, knn_novelty,
                                    mc_pass_rate, novelty, persistent_types, type_counts)
from pcmusic.creative.roughness import (RoughnessCurve, dyad_roughness, find_minima,
                                        harmonic_partials, pair_dissonance, roughness,
                                        scan_minima)

__all__ = [
    # roughness (Sethares 1993)
    "RoughnessCurve", "dyad_roughness", "find_minima", "harmonic_partials", "pair_dissonance",
    "roughness", "scan_minima",
    # MODES (Dolson et al. 2019)
    "archive_growth", "change", "complexity", "ecology", "knn_novelty", "mc_pass_rate",
    "novelty", "persistent_types", "type_counts",
    # minimal criterion coevolution (Brant & Stanley 2017, 2020)
    "MCCState", "MCCStepInfo", "Queue", "generator_mc", "listener_mc", "mcc_batch_step", "push",
    "queue_init", "queue_order", "queue_size", "take_parents",
    # offline metrics for generated music
    "copy_rate", "corpus_novelty", "pitch_class_entropy", "spectral_flatness",
]
