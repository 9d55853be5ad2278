"""Training: the train step, the resumable data-parallel loop, checkpoints, the run config.

    step        `TrainState`, `train_step` (settle, then one step on the params), `topdown_energy`
    loop        `train(config, workdir)`: mesh, data, logging, samples, re-banking, resuming
    checkpoint  self-describing orbax checkpoints, `load_model`
    config      `Config` and its sections, `load_config`

Importing this package loads neither orbax nor the loop's plotting and progress bars.
"""
from pcmusic.training.checkpoint import load_model
from pcmusic.training.config import Config, DataConfig, TrainConfig, default_config, load_config
from pcmusic.training.loop import train
from pcmusic.training.step import TrainState, init_train_state, model_of, train_step

__all__ = ["Config", "DataConfig", "TrainConfig", "TrainState", "default_config", "init_train_state",
           "load_config", "load_model", "model_of", "train", "train_step"]
