"""Perception: settle the network on a sound and read what it heard.

    inference  the one inference every stage shares (`settle`, `settle_batch`, `InferenceSpec`)
    chunks     audio of any length as fixed-shape chunks: plan, cut, stitch
    intent     the intent a model hears in a sound (`intent_of`, `perceive_intents`, `perceive_intent`)
    voicing    in which frames a voice sounds
    notes      the note level settled on the settled controls (`NoteInference`, `settle_notes`)
    percept    the user's entry points (`perceive`, `perceive_batch`, `Percept`)
"""
from pcmusic.perception import chunks, notes, voicing
from pcmusic.perception.notes import NoteInference
from pcmusic.perception.intent import intent_of, intents_of_batch, perceive_intent, perceive_intents
from pcmusic.perception.percept import MAX_VOICES, Percept, min_seconds, perceive, perceive_batch, prepare_batch
from pcmusic.perception.inference import (InferenceSpec, latent_optimizer, make_energy_fn, resolve_specs,
                                       settle, settle_batch, settle_upper, shoot_top)

__all__ = ["MAX_VOICES", "chunks", "notes", "voicing", "NoteInference", "InferenceSpec", "Percept", "min_seconds", "intent_of", "intents_of_batch", "latent_optimizer",
           "make_energy_fn", "perceive", "perceive_batch", "perceive_intent", "perceive_intents", "prepare_batch",
           "resolve_specs", "settle", "settle_batch", "settle_upper", "shoot_top"]
