r"""Training the ratio models: configuration, the epoch loop, early stopping, history.

Each epoch draws its own training events from the source (a fixed set of 10⁶
events captured 57 % of the achievable separation before overfitting, fresh events
97 %); the validation set is drawn once. Mini-batches are index tensors into the
epoch's sample (no DataLoader, no per-event Python work). Torch gets as many
threads as there are free cores: oversubscribed threads ran 30–200× slower.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch.nn import functional

from dyfit.config import StrictModel
from dyfit.data.columns import FEATURES_DEFAULT
from dyfit.errors import InputError
from dyfit.networks import AngularMomentRegressor, ParametrizedClassifier, RatioModel
from dyfit.networks.mlp import PhiEncoding
from dyfit.physics.prior import ThetaPrior
from dyfit.training.samples import ClassifierSet, FixedTrainingSource, MomentSet, TrainingSource

__all__ = ["TrainingConfig", "TrainingHistory", "free_cores", "resolve_device", "train"]

LN2 = math.log(2.0)


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def best(self) -> dict[str, Any]:
        return self.records[self.best_epoch]


def free_cores() -> int:
    """Cores this process may use minus the current load (1-minute average), at least 1."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, n - int(os.getloadavg()[0]))


def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but torch sees no CUDA GPU; use 'cpu' or 'auto'")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _tensors(sample: ClassifierSet | MomentSet, device: torch.device) -> dict[str, torch.Tensor]:
    if isinstance(sample, ClassifierSet):
        arrays = {"x": sample.x, "theta": sample.theta, "y": sample.label}
    else:
        arrays = {"x": sample.x, "y": sample.target}
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in arrays.items()}


def _output(model: RatioModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    if isinstance(model, ParametrizedClassifier):
        return model(batch["x"], batch["theta"])
    return model.standardised(batch["x"])


def _loss(model: RatioModel, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if isinstance(model, ParametrizedClassifier):
        return functional.binary_cross_entropy_with_logits(out, y)
    return functional.mse_loss(out, (y - model.target_mean) / model.target_scale)


@torch.no_grad()
def _predict(model: RatioModel, data: dict[str, torch.Tensor], batch_size: int) -> torch.Tensor:
    model.eval()
    n = data["x"].shape[0]
    return torch.cat(
        [
            _output(model, {k: v[s : s + batch_size] for k, v in data.items()})
            for s in range(0, n, batch_size)
        ]
    )


def _validate(model: RatioModel, data: dict[str, torch.Tensor], batch_size: int) -> dict[str, Any]:
    out = _predict(model, data, batch_size)
    y = data["y"]
    loss = _loss(model, out, y).item()
    if isinstance(model, ParametrizedClassifier):
        accuracy = ((out > 0).float() == y).float().mean().item()
        return {"val_loss": loss, "val_accuracy": accuracy}
    h = out * model.target_scale + model.target_mean
    mse = ((h - y) ** 2).mean(0)
    r2 = 1.0 - mse / y.var(0)
    return {"val_loss": loss, "val_mse": mse.tolist(), "r2": r2.tolist()}


def _bayes_loss(sample: ClassifierSet) -> float | None:
    if sample.truth_log_ratio is None:
        return None
    logit = torch.from_numpy(sample.truth_log_ratio)
    return functional.binary_cross_entropy_with_logits(
        logit, torch.from_numpy(sample.label).double()
    ).item()


def _draw(source, config: TrainingConfig, n: int, rng: np.random.Generator, split: str):
    if config.estimator == "classifier":
        return source.classifier_set(n // 2, config.prior, rng, split)
    return source.moment_set(n, rng, split)


def train(
    config: TrainingConfig,
    source: TrainingSource | FixedTrainingSource,
    *,
    progress: bool = False,
    callback: Callable[[dict[str, Any], RatioModel], None] | None = None,
) -> tuple[RatioModel, TrainingHistory]:
    r"""Train the ratio model ``config`` describes on events from ``source``.

    Adam on mini-batches; the learning-rate schedule and early stopping follow the
    validation loss, and the best epoch's weights are restored at the end. For the
    moments regressor ā is then calibrated on ``calibration_events`` further
    nominal events. Seeded: the same config and source give the same model (on the
    same device and thread count).

    Arguments:
        config: The run's configuration.
        source: Where events come from (fresh per epoch or fixed).
        progress: Show a progress bar over epochs.
        callback: Called as ``callback(record, model)`` after every epoch.

    Returns:
        The trained model in eval mode and its :class:`TrainingHistory`.
    """
    device = resolve_device(config.device)
    threads_before = torch.get_num_threads()
    threads = config.threads or free_cores()
    torch.set_num_threads(threads)
    try:
        return _train(config, source, device, progress, callback, threads)
    finally:
        torch.set_num_threads(threads_before)


def _train(config, source, device, progress, callback, threads):
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    history = TrainingHistory(config.estimator, threads=threads, device=str(device))
    t_start = time.perf_counter()

    validation_set = _draw(source, config, config.validation_events, rng, "validation")
    validation = _tensors(validation_set, device)
    if config.estimator == "classifier":
        history.bayes_loss = _bayes_loss(validation_set)
    training_set = _draw(source, config, config.events_per_epoch, rng, "train")
    history.seconds_sampling = time.perf_counter() - t_start

    model = config.build_model()
    model.encoder.fit(torch.from_numpy(training_set.x))
    if isinstance(model, AngularMomentRegressor):
        model.fit_targets(torch.from_numpy(training_set.target))
    model.to(device)
    optimiser = torch.optim.Adam(
        model.parameters(), config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = {
        "plateau": lambda: torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, factor=0.5, patience=config.lr_patience
        ),
        "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.epochs),
        "none": lambda: None,
    }[config.schedule]()

    best_loss, best_state, stale = math.inf, None, 0
    epochs = range(config.epochs)
    if progress:
        from tqdm import tqdm

        epochs = tqdm(epochs, desc=f"train {config.estimator}", unit="epoch")
    for epoch in epochs:
        t_epoch = time.perf_counter()
        if epoch > 0 and config.regenerate:
            t0 = time.perf_counter()
            training_set = _draw(source, config, config.events_per_epoch, rng, "train")
            history.seconds_sampling += time.perf_counter() - t0
        data = _tensors(training_set, device)
        train_loss = _train_epoch(model, data, optimiser, config.batch_size, generator)
        if not math.isfinite(train_loss):
            raise InputError(
                f"training diverged at epoch {epoch} (loss {train_loss}); lower learning_rate"
            )

        record = {"epoch": epoch, "train_loss": train_loss, "lr": optimiser.param_groups[0]["lr"]}
        record |= _validate(model, validation, config.batch_size * 4)
        if history.bayes_loss is not None:
            record["captured"] = (LN2 - record["val_loss"]) / (LN2 - history.bayes_loss)
        record["seconds"] = time.perf_counter() - t_epoch
        history.records.append(record)
        if progress:
            epochs.set_postfix(val_loss=f"{record['val_loss']:.5f}")

        if best_state is None or record["val_loss"] < best_loss:
            best_loss, stale, history.best_epoch = record["val_loss"], 0, epoch
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if callback is not None:
            callback(record, model)
        if stale >= config.patience:
            history.stopped_early = True
            break
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(record["val_loss"])
        elif scheduler is not None:
            scheduler.step()

    model.load_state_dict(best_state)
    if isinstance(model, AngularMomentRegressor):
        t0 = time.perf_counter()
        calibration = source.moment_set(config.calibration_events, rng, "validation")
        history.seconds_sampling += time.perf_counter() - t0
        model.calibrate(torch.from_numpy(calibration.x).to(device), config.batch_size * 4)
    history.seconds = time.perf_counter() - t_start
    return model.eval(), history


def _train_epoch(model, data, optimiser, batch_size, generator) -> float:
    """One pass over ``data`` in shuffled mini-batches; the mean training loss."""
    model.train()
    n = data["x"].shape[0]
    order = torch.randperm(n, generator=generator).to(data["x"].device)
    total, count = torch.zeros((), device=order.device), 0
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if idx.numel() < 2:  # batch norm needs two events to normalise
            continue
        batch = {k: v[idx] for k, v in data.items()}
        loss = _loss(model, _output(model, batch), batch["y"])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += loss.detach() * idx.numel()  # no .item(): a GPU need not wait per batch
        count += idx.numel()
    return total.item() / max(count, 1)
