"""Training the ratio models: samples, the loop, checkpoints and quality checks."""

from dyfit.training.checkpoint import load_model, save_model
from dyfit.training.config import TrainingConfig, TrainingHistory
from dyfit.training.loop import train
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
