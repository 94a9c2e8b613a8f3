"""A training run's definition (:class:`TrainingConfig`) and record (:class:`TrainingHistory`).

The config is the ``[train]`` table of a TOML file; a resumed run must match it key by key
except the runtime keys (device, threads), which may change between machines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from dyfit.config import StrictModel
from dyfit.data.columns import FEATURES_DEFAULT
from dyfit.errors import InputError
from dyfit.networks import AngularMomentRegressor, ParametrizedClassifier, RatioModel
from dyfit.networks.mlp import PhiEncoding
from dyfit.physics.prior import ThetaPrior

__all__ = ["RUNTIME_KEYS", "TrainingConfig", "TrainingHistory", "check_resumable"]

RUNTIME_KEYS = ("device", "threads")  # may change on resume: they do not define the model


class TrainingConfig(StrictModel):
    """Everything that defines a training run (the ``[train]`` keys of a TOML file)."""

    estimator: Literal["classifier", "moments"] = "classifier"
    features: tuple[str, ...] = Field(FEATURES_DEFAULT, min_length=1)
    phi_encoding: PhiEncoding = "raw"
    width: int = Field(64, ge=1)
    depth: int = Field(5, ge=0)
    batch_norm: bool = True
    prior: ThetaPrior = ThetaPrior()
    events_per_epoch: int = Field(1_000_000, ge=2)  # training events (both classes together)
    # A new training sample every epoch; for fixed events: new θ and a new unweighting.
    regenerate: bool = True
    validation_events: int = Field(200_000, ge=2)
    calibration_events: int = Field(200_000, ge=1)  # moments: independent nominal events for ā
    # seeded pieces per sample, at most this many processes; each piece re-learns the
    # acceptance of the per-event-theta simulation, 16 pieces cost 1.4x the time of one
    shards: int = Field(4, ge=1)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(8192, ge=2)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["plateau", "cosine", "none"] = "plateau"
    lr_patience: int = Field(2, ge=0)  # plateau: epochs without improvement before halving
    patience: int = Field(5, ge=1)  # early stopping: epochs without improvement before stopping
    seed: int = 0
    device: Literal["cpu", "cuda", "auto"] = "auto"
    threads: int | None = Field(None, ge=1)  # torch CPU threads; None = the free cores

    def build_model(self) -> RatioModel:
        cls = ParametrizedClassifier if self.estimator == "classifier" else AngularMomentRegressor
        return cls(
            self.features, self.prior, self.width, self.depth, self.phi_encoding, self.batch_norm
        )


@dataclass
class TrainingHistory:
    """Per-epoch records (JSON-serialisable dicts) and a summary of the run.

    Classifier records: ``train_loss``, ``val_loss`` (BCE, nats), ``val_accuracy``,
    ``captured`` = (ln 2 − val_loss)/(ln 2 − bayes_loss). Moments records: ``train_loss``,
    ``val_loss`` (MSE of standardised targets), ``val_mse`` and ``r2`` per output a_k.
    ``bayes_loss`` is the validation BCE of the reference ratio (see
    :func:`~dyfit.training.samples.truth_log_ratio`), None without truth angles.
    ``resumed_at`` lists the epochs at which a killed run was continued.
    """

    estimator: str
    records: list[dict[str, Any]] = field(default_factory=list)
    bayes_loss: float | None = None
    best_epoch: int = -1
    stopped_early: bool = False
    seconds: float = 0.0
    seconds_sampling: float = 0.0
    threads: int = 1
    device: str = "cpu"
    world_size: int = 1
    resumed_at: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def best(self) -> dict[str, Any]:
        return self.records[self.best_epoch]


def check_resumable(config: TrainingConfig, provenance: dict, meta: dict, where: Path) -> None:
    """Refuse to continue a run under another config or event source."""
    now, saved = config.model_dump(mode="json"), meta["config"]
    for key in now:
        if key not in RUNTIME_KEYS and now[key] != saved.get(key):
            raise InputError(
                f"{where} was trained with {key} = {saved.get(key)!r}, not {now[key]!r}; "
                "resume with the original settings or train into a new folder"
            )
    if provenance != meta["provenance"]:
        raise InputError(
            f"{where} was trained on events from {meta['provenance'].get('source')!r} with "
            "other settings; resume with the original event source"
        )
