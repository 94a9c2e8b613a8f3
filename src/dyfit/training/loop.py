r"""Training the ratio models: the epoch loop, schedule, early stopping and checkpoints.

Each epoch draws its own training events from the source (a fixed set of 10⁶
events captured 57 % of the achievable separation before overfitting, fresh events
97 %); the validation set is drawn once. Mini-batches are index tensors into the
epoch's sample (no DataLoader, no per-event Python work); what one epoch computes is
in :mod:`dyfit.training.epoch`, the run's config in :mod:`dyfit.training.config`.

Every sample is drawn in ``shards`` pieces, piece s of epoch e from its own stream
``SeedSequence(seed, spawn_key=(purpose, e, s))``: a resumed run draws the same
events as an uninterrupted one (:mod:`dyfit.training.resume`), and K data-parallel
processes (:mod:`dyfit.training.distributed`) draw disjoint pieces whose union is
the one-process sample, so the events do not depend on K.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dyfit.errors import InputError
from dyfit.networks import AngularMomentRegressor, RatioModel
from dyfit.training import distributed
from dyfit.training.config import TrainingConfig, TrainingHistory, check_resumable
from dyfit.training.device import resolve_device, torch_threads
from dyfit.training.draws import CALIBRATION, ORDER, TRAINING, VALIDATION, draw, tensors
from dyfit.training.epoch import (
    Objective,
    bayes_loss,
    calibrate_abar,
    train_epoch,
    validation_metrics,
)
from dyfit.training.samples import FixedTrainingSource, TrainingSource
from dyfit.training.stopping import EarlyStopping

__all__ = ["train"]

LN2 = math.log(2.0)


def _scheduler(config: TrainingConfig, optimiser: torch.optim.Optimizer):
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, factor=0.5, patience=config.lr_patience
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.epochs)
    return None


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
        check_resumable(config, provenance, state[0], Path(checkpoint))
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
        history.bayes_loss = bayes_loss(validation_set, world, device)

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
    net = distributed.wrap(world, Objective(model))
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
        train_loss = train_epoch(net, model, data, optimiser, config.batch_size, generator, world)
        if not math.isfinite(train_loss):
            raise InputError(
                f"training diverged at epoch {epoch} (loss {train_loss}); lower learning_rate"
            )
        distributed.broadcast_buffers(world, model)

        record = {"epoch": epoch, "train_loss": train_loss, "lr": optimiser.param_groups[0]["lr"]}
        record |= validation_metrics(model, validation, config.batch_size * 4, world)
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
        x = torch.from_numpy(calibration.x).to(device)
        calibrate_abar(model, x, config.batch_size * 4, world)
    if world.distributed:  # back to plain batch norm (SyncBatchNorm does not fold)
        plain = config.build_model()
        plain.load_state_dict(model.state_dict())
        model = plain.to(device)
        distributed.check_in_sync(world, model)
    history.seconds = elapsed + time.perf_counter() - t_start
    history.seconds_sampling = sampling
    return model.eval(), history
