r"""Training the ratio models: configuration, the epoch loop, early stopping, history.

Each epoch draws its own training events from the source (a fixed set of 10⁶
events captured 57 % of the achievable separation before overfitting, fresh events
97 %); the validation set is drawn once. Mini-batches are index tensors into the
epoch's sample (no DataLoader, no per-event Python work). Torch gets as many
threads as there are free cores: oversubscribed threads ran 30–200× slower.

Every sample is drawn in ``shards`` pieces, piece s of epoch e from its own stream
``SeedSequence(seed, spawn_key=(purpose, e, s))``: a resumed run draws the same
events as an uninterrupted one (:mod:`dyfit.training.resume`), and K data-parallel
processes (:mod:`dyfit.training.distributed`) draw disjoint pieces whose union is
the one-process sample, so the events do not depend on K.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional

from dyfit.config import StrictModel
from dyfit.data.columns import FEATURES_DEFAULT
from dyfit.errors import InputError
from dyfit.networks import AngularMomentRegressor, ParametrizedClassifier, RatioModel
from dyfit.networks.mlp import PhiEncoding
from dyfit.physics.prior import ThetaPrior
from dyfit.training import distributed
from dyfit.training.distributed import World
from dyfit.training.draws import CALIBRATION, ORDER, TRAINING, VALIDATION, draw, tensors
from dyfit.training.samples import ClassifierSet, FixedTrainingSource, TrainingSource
from dyfit.training.stopping import EarlyStopping

__all__ = [
    "TrainingConfig",
    "TrainingHistory",
    "free_cores",
    "torch_threads",
    "resolve_device",
    "train",
]

LN2 = math.log(2.0)
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


def free_cores() -> int:
    """Cores this process may use minus the current load (1-minute average), at least 1."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, n - int(os.getloadavg()[0]))


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``threads`` torch CPU threads (None: :func:`free_cores`); yields
    the count and restores the previous one afterwards."""
    before = torch.get_num_threads()
    threads = threads or free_cores()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but torch sees no CUDA GPU; use 'cpu' or 'auto'")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _output(model: RatioModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    if isinstance(model, ParametrizedClassifier):
        return model(batch["x"], batch["theta"])
    return model.standardised(batch["x"])


class _Objective(nn.Module):
    """The training output as ``forward``: DistributedDataParallel hooks only ``forward``."""

    def __init__(self, model: RatioModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return _output(self.model, batch)


def _loss(model: RatioModel, out: torch.Tensor, y: torch.Tensor, reduction="mean"):
    if isinstance(model, ParametrizedClassifier):
        return functional.binary_cross_entropy_with_logits(out, y, reduction=reduction)
    target = (y - model.target_mean) / model.target_scale
    return functional.mse_loss(out, target, reduction=reduction)


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


def _validate(
    model: RatioModel, data: dict[str, torch.Tensor], batch_size: int, world: World
) -> dict[str, Any]:
    """Validation metrics over all ranks' events: per-rank sums, all-reduced, in float64."""
    out, y = _predict(model, data, batch_size).double(), data["y"].double()
    count = out.new_tensor([y.shape[0]])
    if isinstance(model, ParametrizedClassifier):
        correct = ((out > 0).double() == y).sum()
        sums = torch.cat([_loss(model, out, y, "sum")[None], correct[None], count])
        loss, correct, n = distributed.all_reduce_sum(world, sums).tolist()
        return {"val_loss": loss / n, "val_accuracy": correct / n}
    mean, scale = model.target_mean.double(), model.target_scale.double()
    h = out * scale + mean
    parts = [((out - (y - mean) / scale) ** 2).sum(0), ((h - y) ** 2).sum(0), y.sum(0)]
    sums = distributed.all_reduce_sum(world, torch.cat([*parts, (y**2).sum(0), count]))
    sq_standardised, sq, s1, s2, n = sums[:4], sums[4:8], sums[8:12], sums[12:16], sums[16]
    mse = sq / n
    r2 = 1.0 - mse / ((s2 - s1**2 / n) / (n - 1))  # the unbiased variance of each a_k
    return {
        "val_loss": (sq_standardised.sum() / (4 * n)).item(),
        "val_mse": mse.tolist(),
        "r2": r2.tolist(),
    }


def _bayes_loss(sample: ClassifierSet, world: World, device: torch.device) -> float | None:
    if sample.truth_log_ratio is None:
        return None
    logit, label = torch.from_numpy(sample.truth_log_ratio), torch.from_numpy(sample.label)
    total = functional.binary_cross_entropy_with_logits(logit, label.double(), reduction="sum")
    sums = torch.stack([total, logit.new_tensor(logit.shape[0])]).to(device)
    total, n = distributed.all_reduce_sum(world, sums).tolist()
    return total / n


def _scheduler(config: TrainingConfig, optimiser: torch.optim.Optimizer):
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, factor=0.5, patience=config.lr_patience
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.epochs)
    return None


def _check_resumable(config: TrainingConfig, provenance: dict, meta: dict, where: Path) -> None:
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


def train(
    config: TrainingConfig,
    source: TrainingSource | FixedTrainingSource,
    *,
    progress: bool = False,
    callback: Callable[[dict[str, Any], RatioModel], None] | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
) -> tuple[RatioModel, TrainingHistory]:
    r"""Train the ratio model ``config`` describes on events from ``source``.

    Adam on mini-batches; the learning-rate schedule and early stopping follow the
    validation loss, and the best epoch's weights are restored at the end. For the
    moments regressor ā is then calibrated on ``calibration_events`` further
    nominal events. Seeded: the same config and source give the same model (on the
    same device and thread count), also when resumed. In a process group
    (:func:`dyfit.training.distributed.init_from_env`) the ranks train one model
    data-parallel, each on its shards of every sample.

    Arguments:
        config: The run's configuration.
        source: Where events come from (fresh per epoch or fixed).
        progress: Show a progress bar over epochs.
        callback: Called as ``callback(record, model)`` after every epoch.
        checkpoint: A run folder: the training state is written there after every epoch
            (:mod:`dyfit.training.resume`; by rank 0 only).
        resume: Continue from the state in ``checkpoint``; ``config`` and the source must
            be those of the saved run (device and threads may differ).

    Returns:
        The trained model in eval mode and its :class:`TrainingHistory`.
    """
    world = distributed.current()
    device = world.device() or resolve_device(config.device)
    provenance = {k: v for k, v in source.describe().items() if k != "events_meta"}
    state = None
    if resume:
        from dyfit.training.resume import load_state

        if checkpoint is None:
            raise InputError("resume=True needs the checkpoint folder of the run to continue")
        state = load_state(checkpoint)
        _check_resumable(config, provenance, state[0], Path(checkpoint))
    with torch_threads(config.threads) as threads:
        run = (device, world, threads, provenance, checkpoint)
        return _train(config, source, *run, state, progress, callback)


def _train(
    config, source, device, world, threads, provenance, checkpoint, state, progress, callback
):
    t_start = time.perf_counter()
    history = TrainingHistory(
        config.estimator, threads=threads, device=str(device), world_size=world.size
    )
    validation_set = draw(
        source, config, config.validation_events, (VALIDATION,), world, "validation"
    )
    validation = tensors(validation_set, device)
    if config.estimator == "classifier":
        history.bayes_loss = _bayes_loss(validation_set, world, device)

    def training_sample(epoch: int):
        key = (TRAINING, epoch if config.regenerate else 0)
        return draw(source, config, config.events_per_epoch, key, world, "train")

    torch.manual_seed(config.seed)
    model = config.build_model()
    training_set = None
    if state is None:
        training_set = training_sample(0)
        # Each rank standardises with its own events; DDP then copies rank 0's buffers.
        model.encoder.fit(torch.from_numpy(training_set.x))
        if isinstance(model, AngularMomentRegressor):
            model.fit_targets(torch.from_numpy(training_set.target))
    else:
        model.load_state_dict(state[1]["model"])
    sampling = time.perf_counter() - t_start
    model.to(device)
    net = distributed.wrap(world, _Objective(model))
    optimiser = torch.optim.Adam(
        model.parameters(), config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = _scheduler(config, optimiser)

    stopping, start, elapsed, done = EarlyStopping(config.patience), 0, 0.0, False
    if state is not None:
        meta, saved_tensors = state
        optimiser.load_state_dict(saved_tensors["optimiser"])
        if scheduler is not None:
            scheduler.load_state_dict(meta["scheduler"])
        saved = meta["history"]
        stopping = EarlyStopping(
            config.patience,
            best=meta["best_loss"],
            stale=meta["stale"],
            best_epoch=saved["best_epoch"],
            best_state=saved_tensors["best"],
        )
        history.records, history.best_epoch = saved["records"], saved["best_epoch"]
        history.stopped_early, done = saved["stopped_early"], meta["done"]
        start, elapsed = meta["epoch"] + 1, saved["seconds"]
        sampling += saved["seconds_sampling"]
        history.resumed_at = [*saved["resumed_at"], start]

    epochs = range(start, start if done else config.epochs)
    if progress and world.is_main:
        from tqdm import tqdm

        epochs = tqdm(
            epochs, f"train {config.estimator}", config.epochs, unit="epoch", initial=start
        )
    for epoch in epochs:
        t_epoch = time.perf_counter()
        if training_set is None or (config.regenerate and epoch > 0):
            training_set = training_sample(epoch)
            sampling += time.perf_counter() - t_epoch
        data = tensors(training_set, device)
        seed = np.random.SeedSequence(config.seed, spawn_key=(ORDER, epoch, world.rank))
        generator = torch.Generator().manual_seed(int(seed.generate_state(1)[0]))
        train_loss = _train_epoch(net, model, data, optimiser, config.batch_size, generator, world)
        if not math.isfinite(train_loss):
            raise InputError(
                f"training diverged at epoch {epoch} (loss {train_loss}); lower learning_rate"
            )
        distributed.broadcast_buffers(world, model)

        record = {"epoch": epoch, "train_loss": train_loss, "lr": optimiser.param_groups[0]["lr"]}
        record |= _validate(model, validation, config.batch_size * 4, world)
        if history.bayes_loss is not None:
            record["captured"] = (LN2 - record["val_loss"]) / (LN2 - history.bayes_loss)
        record["seconds"] = time.perf_counter() - t_epoch
        history.records.append(record)
        if progress and world.is_main:
            epochs.set_postfix(val_loss=f"{record['val_loss']:.5f}")

        history.stopped_early = stopping.update(record["val_loss"], model, epoch)
        history.best_epoch = stopping.best_epoch
        if callback is not None:
            callback(record, model)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(record["val_loss"])
        elif scheduler is not None:
            scheduler.step()
        history.seconds = elapsed + time.perf_counter() - t_start
        history.seconds_sampling = sampling
        if checkpoint is not None and world.is_main:
            from dyfit.training.resume import save_state

            meta = {
                "epoch": epoch,
                "done": history.stopped_early or epoch == config.epochs - 1,
                "config": config.model_dump(mode="json"),
                "provenance": provenance,
                "history": history.to_dict(),
                "best_loss": stopping.best,
                "stale": stopping.stale,
                "scheduler": None if scheduler is None else scheduler.state_dict(),
            }
            best = stopping.best_state
            save_state(checkpoint, meta, model.state_dict(), best, optimiser.state_dict())
        if history.stopped_early:
            break

    stopping.restore(model)
    if isinstance(model, AngularMomentRegressor):
        t0 = time.perf_counter()
        key = (CALIBRATION,)
        calibration = draw(source, config, config.calibration_events, key, world, "validation")
        sampling += time.perf_counter() - t0
        _calibrate(model, torch.from_numpy(calibration.x).to(device), config.batch_size * 4, world)
    if world.distributed:  # back to plain batch norm (SyncBatchNorm does not fold)
        plain = config.build_model()
        plain.load_state_dict(model.state_dict())
        model = plain.to(device)
        distributed.check_in_sync(world, model)
    history.seconds = elapsed + time.perf_counter() - t_start
    history.seconds_sampling = sampling
    return model.eval(), history


def _calibrate(model: AngularMomentRegressor, x: torch.Tensor, batch_size: int, world: World):
    """ā over every rank's calibration events: the count-weighted mean of the ranks' ā."""
    abar = model.calibrate(x, batch_size)
    if world.distributed:
        n = abar.new_tensor([x.shape[0]], dtype=torch.float64)
        sums = distributed.all_reduce_sum(world, torch.cat([abar.double() * n, n]))
        model.abar.copy_(sums[:4] / sums[4])


def _train_epoch(net, model, data, optimiser, batch_size, generator, world) -> float:
    """One pass over ``data`` in shuffled mini-batches; the mean training loss.

    All ranks take the same number of steps, ⌈N/B⌉ for N events over all ranks, each
    rank's batches splitting its own events evenly (about B/K events each).
    """
    net.train()
    n = data["x"].shape[0]
    count = data["x"].new_tensor([n], dtype=torch.float64)
    n_all = distributed.all_reduce_sum(world, count).item()
    steps = math.ceil(n_all / batch_size)
    too_few = distributed.all_reduce_sum(world, data["x"].new_tensor([float(n < 2 * steps)]))
    if too_few.item() > 0:  # batch norm needs two events per batch
        raise InputError(
            f"batch_size {batch_size} leaves fewer than 2 events per batch on some of the "
            f"{world.size} processes; raise batch_size"
        )
    order = torch.randperm(n, generator=generator).to(data["x"].device)
    total = torch.zeros((), dtype=torch.float64, device=order.device)
    for idx in torch.tensor_split(order, steps):
        batch = {k: v[idx] for k, v in data.items()}
        loss = _loss(model, net(batch), batch["y"])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += loss.detach() * idx.numel()  # no .item(): a GPU need not wait per batch
    sums = distributed.all_reduce_sum(world, torch.stack([total, total.new_tensor(n)]))
    return (sums[0] / sums[1]).item()
