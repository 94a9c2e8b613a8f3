"""Training the ratio models: samples, the loop, checkpoints and quality checks."""

from dyfit.training.checkpoint import load_model, save_model
from dyfit.training.loop import TrainingConfig, TrainingHistory, train
from dyfit.training.samples import FixedTrainingSource, TrainingSource

__all__ = [
    "FixedTrainingSource",
    "TrainingConfig",
    "TrainingHistory",
    "TrainingSource",
    "load_model",
    "save_model",
    "train",
]
