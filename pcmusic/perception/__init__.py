"""Perception: settle the network on a sound and read what it heard.

    settle     the one inference every stage shares (`settle`, `settle_batch`, `InferenceSpec`)
    intent     the intent a model hears in a sound (`intent_of`, `perceive_intents`)
    perceive   the user's entry points (`perceive`, `perceive_batch`, `Percept`)
"""
from pcmusic.perception.intent import intent_of, intents_of_batch, perceive_intents
from pcmusic.perception.perceive import Percept, perceive, perceive_batch, prepare_batch
from pcmusic.perception.settle import (InferenceSpec, latent_optimizer, make_energy_fn, resolve_specs,
                                       settle, settle_batch, settle_upper, shoot_top)

__all__ = ["InferenceSpec", "Percept", "intent_of", "intents_of_batch", "latent_optimizer",
           "make_energy_fn", "perceive", "perceive_batch", "perceive_intents", "prepare_batch",
           "resolve_specs", "settle", "settle_batch", "settle_upper", "shoot_top"]
