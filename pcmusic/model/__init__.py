"""The generative model: controls, sensory level, priors, the hierarchy's maps, intents.

Stage 2 of the data flow (dsp <- model <- perception <- generation / training /
evaluation). Nothing here runs inference or learning; it states what the model predicts
and how its energy scores a state.

    controls     oscillator controls in physical units (`ControlSpec`, render)
    sensory      phi, the sensory level, its energy and the reference level (`SensorySpec`)
    priors       the structural prior on the controls (`ControlPrior`)
    maps         the hierarchy's maps and the amortised encoder's (flax), `UserMaps`
    audio_model  `ModelSpec`, `AudioModel`, `init_model`
    intents      what a model met in training: intent statistics and bank
"""
from pcmusic.model import controls, intents, maps, priors, sensory
from pcmusic.model.audio_model import LEVEL_NAMES, AudioModel, ModelSpec, init_model
from pcmusic.model.controls import ControlSpec
from pcmusic.model.maps import UserMaps
from pcmusic.model.priors import ControlPrior
from pcmusic.model.sensory import REFERENCE_RMS, SensorySpec

__all__ = ["LEVEL_NAMES", "REFERENCE_RMS", "AudioModel", "ControlPrior", "ControlSpec", "ModelSpec",
           "SensorySpec", "UserMaps", "audio_model", "controls", "init_model", "intents", "maps", "priors",
           "sensory"]
