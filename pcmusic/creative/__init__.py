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
from pcmusic.creative.listener import ListenerSpec, compression_progress, init_listener, listen
from pcmusic.creative.oddball import (mean_ratio, permutation_test, rare_events, render_stream,
                                      slot_means, tone_controls)
from pcmusic.creative.curiosity import (Environment, SearchTrace, develop, environment_frames,
                                        melody_audio, repeated_progress, search, white_noise)
from pcmusic.creative.coevolve import (Piece, PieceSpace, Taste, coevolution_step,
                                       develop_on_pieces, genres, hear_pieces,
                                       learn_from_liked, like_matrix,
                                       likes_one, mutate_generators, mutate_listeners,
                                       mutate_piece, normalised_error, note_controls, piece_type,
                                       random_piece, render_piece, render_tone, seed_populations,
                                       type_interval_entropy)

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
    # a small PC listener (temporal prediction of log-mel frames; more in .listener)
    "ListenerSpec", "compression_progress", "init_listener", "listen",
    # oddball paradigm (mismatch responses)
    "mean_ratio", "permutation_test", "rare_events", "render_stream", "slot_means",
    "tone_controls",
    # curiosity as compression progress (Schmidhuber 2010)
    "Environment", "SearchTrace", "develop", "environment_frames", "melody_audio",
    "repeated_progress", "search", "white_noise",
    # music coevolution domain: pieces, tastes, likes, genres
    "Piece", "PieceSpace", "Taste", "coevolution_step", "develop_on_pieces", "genres",
    "hear_pieces", "learn_from_liked", "like_matrix", "likes_one",
    "mutate_generators", "mutate_listeners", "mutate_piece", "normalised_error", "note_controls",
    "piece_type", "random_piece", "render_piece", "render_tone", "seed_populations",
    "type_interval_entropy",
]
