"""Generic predictive-coding engine: energies, inference, learning, probing.

Two layers:
- generic: `infer(energy_fn, latents, optimizer=..., n_steps=...)` minimises any energy
  `energy_fn(latents, step) -> (E, aux)` over latents with an optax optimiser inside jit,
  with clamping/masks, early stop at equilibrium, divergence detection and probing;
  `monotone_descent` where the energy must never rise (steps retried smaller);
- hierarchical: `Hierarchy` + `energy` (Gaussian PC energy with precisions and priors),
  `settle` (inference with clamped predictions hoisted), `learn_step`/`train_step`,
  `predict_top_down` (generation), amortised encoders, and `maps` (dense/conv/upsample).
"""
from pcmusic.pc import maps
from pcmusic.pc.amortised import (Encoder, amortised_loss, amortised_step, encode,
                                  hybrid_train_step)
from pcmusic.pc.clamp import partition
from pcmusic.pc.descent import DescentResult, monotone_descent
from pcmusic.pc.energy import Hierarchy, energy, gaussian_term, init_params, predict
from pcmusic.pc.errors import HierarchySpecError
from pcmusic.pc.hierarchy import (batch_size, clamp_levels, energy_fn, predict_top_down,
                                  replace_levels, settle)
from pcmusic.pc.inference import InferenceResult, check, infer
from pcmusic.pc.learning import freeze_except, learn_step, make_train_step, param_gradients, train_step
from pcmusic.pc.maps import Map
from pcmusic.pc.trajectory import replay

__all__ = [
    "DescentResult", "Encoder", "Hierarchy", "HierarchySpecError", "InferenceResult", "Map",
    "amortised_loss", "amortised_step", "batch_size", "check", "clamp_levels", "encode",
    "energy", "energy_fn", "freeze_except", "gaussian_term", "hybrid_train_step", "infer",
    "init_params", "learn_step", "make_train_step", "maps", "monotone_descent", "param_gradients",
    "partition", "predict", "predict_top_down", "replace_levels", "replay", "settle", "train_step",
]
