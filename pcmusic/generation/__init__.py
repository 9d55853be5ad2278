"""Generation: the same energy with the top clamped to an intent.

    sampling     intents like those the model met, ancestral samples below them
    refinement   render, hear (`Hearing`), descend the free energy (`RefineSpec`)
    listening    perceive the refined sound and correct the action (`Listening`)
    generator    `generate` and its `Trace`
"""
from pcmusic.generation.generator import Trace, generate
from pcmusic.generation.listening import Listened, Listening
from pcmusic.generation.refinement import Hearing, RefineSpec, residual_coordinates
from pcmusic.generation.sampling import sample_down, sample_intent

__all__ = ["Hearing", "Listened", "Listening", "RefineSpec", "Trace", "generate",
           "residual_coordinates", "sample_down", "sample_intent"]
