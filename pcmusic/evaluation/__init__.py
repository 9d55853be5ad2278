"""Evaluation: look inside a model and measure what it does.

    probing    `probe`: latents, prediction errors and energies per level and inference step;
               `activations`: a map's hidden units at the recorded latents
    fidelity   does refinement bring a generated sound closer to its intent?
    diagnose   where the hierarchy carries pitch: f0 errors of each level's prediction
"""
from pcmusic.evaluation.diagnose import f0_errors_cents
from pcmusic.evaluation.fidelity import Fidelity, refinement_fidelity
from pcmusic.evaluation.probing import Probe, activations, probe, save_npz

__all__ = ["Fidelity", "Probe", "activations", "f0_errors_cents", "probe", "refinement_fidelity",
           "save_npz"]
