r"""Training the conditional VAE: events with per-event θ from the prior, ELBO, early stopping.

The training sample is drawn once (θ_i uniform in the box, one per event, as
``simulate(n, theta (n, 3), rng)`` accepts); a generative model sees the same x
distribution every epoch, unlike the classifier, whose per-event signal is so small that
fresh events matter. Adam on mini-batches maximises the mean ELBO
(:meth:`~dyfit.networks.cvae.CVAE.log_bound`, arXiv:1312.6114); the validation ELBO,
with fixed encoder noise so that epochs compare, drives early stopping and the best
epoch's weights are restored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import Field

from dyfit.config import StrictModel
from dyfit.data.columns import FEATURES_DEFAULT
from dyfit.errors import InputError
from dyfit.networks.cvae import CVAE
from dyfit.physics.prior import ThetaPrior
from dyfit.training.device import torch_threads
from dyfit.training.stopping import EarlyStopping

__all__ = [
    "CVAEConfig",
    "CVAEHistory",
    "draw_sample",
    "fit_cvae_weights",
    "train_cvae",
    "train_cvae_run",
]


class CVAEConfig(StrictModel):
    """A cVAE training run on Drell-Yan events (``dyfit train-cvae``)."""

    features: tuple[str, ...] = Field(FEATURES_DEFAULT, min_length=1)
    prior: ThetaPrior = ThetaPrior()
    latent_dim: int = Field(4, ge=1)
    width: int = Field(64, ge=1)
    depth: int = Field(3, ge=1)
    events: int = Field(200_000, ge=2)
    validation_events: int = Field(50_000, ge=2)
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(1024, ge=2)
    learning_rate: float = Field(2e-3, gt=0)
    patience: int = Field(6, ge=1)
    seed: int = 0
    threads: int | None = Field(None, ge=1)

    def build_model(self) -> CVAE:
        return CVAE(
            self.features,
            bounds=self.prior.bounds,
            latent_dim=self.latent_dim,
            width=self.width,
            depth=self.depth,
        )


@dataclass
class CVAEHistory:
    """Per-epoch ``train_elbo`` and ``val_elbo`` (mean per event, nats), best epoch, timing."""

    records: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    seconds: float = 0.0
    seconds_sampling: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def draw_sample(
    model: CVAE, source: Any, n: int, sample_conditions: Any, rng: np.random.Generator
) -> tuple[NDArray, NDArray]:
    """n events (n, F) and their conditions (n, D) from ``source.simulate(n, c (n, D), rng)``.

    The conditions are read back from the events (``theta_lambda``... for θ): a source
    that reorders or selects accepted events keeps each event with its own θ.
    """
    events = source.simulate(n, sample_conditions(n, rng), rng)
    events.require(model.feature_names + model.condition_columns, "the simulated events")
    return events.matrix(model.feature_names), events.matrix(model.condition_columns)


def fit_cvae_weights(
    model: CVAE,
    train: tuple[NDArray, NDArray] | Callable[[int], tuple[NDArray, NDArray]],
    validation: tuple[NDArray, NDArray],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    patience: int,
    seed: int,
    schedule: str = "plateau",
    history: CVAEHistory | None = None,
) -> CVAEHistory:
    """Maximise the ELBO of ``train`` = (x (N, F), c (N, D)) in place; early stopping on
    ``validation``; the best epoch's weights restored. Returns the history.

    ``train`` may be a function of the epoch that draws a fresh sample (a cheap source):
    the learnt p(x|θ) then averages over all events seen, not one fixed set, which is what
    brings a fit's training bias well below the data's σ (the Gaussian example).
    ``schedule``: "plateau" halves the step size when the validation ELBO stalls;
    "cosine" anneals it to zero over ``epochs`` (no early stop: the last epochs average).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    history = history or CVAEHistory()
    t0 = time.perf_counter()
    draw = train if callable(train) else (lambda epoch: train)
    x, c = (torch.from_numpy(np.asarray(a, np.float32)) for a in draw(0))
    xv, cv = (torch.from_numpy(np.asarray(a, np.float32)) for a in validation)
    model.fit_scaler(x)
    noise_v = torch.randn(len(xv), 1, model.latent_dim, generator=generator)
    optimiser = torch.optim.Adam(model.parameters(), learning_rate)
    if schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5, patience=2)
    stopping = EarlyStopping(patience, mode="max")
    for epoch in range(epochs):
        if epoch > 0 and callable(train):
            x, c = (torch.from_numpy(np.asarray(a, np.float32)) for a in train(epoch))
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for s in range(0, len(x), batch_size):
            idx = order[s : s + batch_size]
            loss = -model.log_bound(x[idx], c[idx]).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val = model.log_bound(xv, cv, noise_v).mean().item()
        if not math.isfinite(val):
            raise InputError(f"cVAE training diverged at epoch {epoch}; lower the learning rate")
        history.records.append(
            {
                "epoch": epoch,
                "train_elbo": -total / len(x),
                "val_elbo": val,
                "lr": optimiser.param_groups[0]["lr"],
            }
        )
        if schedule == "cosine":
            scheduler.step()
            history.best_epoch = epoch
            continue
        stop = stopping.update(val, model, epoch)
        history.best_epoch, history.stopped_early = stopping.best_epoch, stop
        if stop:
            break
        scheduler.step(-val)
    stopping.restore(model)
    history.seconds += time.perf_counter() - t0
    return history


def train_cvae(config: CVAEConfig, source: Any) -> tuple[CVAE, CVAEHistory]:
    """Train the cVAE ``config`` describes on events from ``source`` (θ per event ~ prior).

    Example:
        >>> from dyfit.toy import ToyExperiment
        >>> cfg = CVAEConfig(features=("mass", "phi", "costh"), events=20_000)
        >>> model, history = train_cvae(cfg, ToyExperiment())  # doctest: +SKIP
    """
    with torch_threads(config.threads):
        rng = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed)  # the initial weights
        model = config.build_model()
        history = CVAEHistory()
        t0 = time.perf_counter()
        val = draw_sample(model, source, config.validation_events, config.prior.sample, rng)
        train = draw_sample(model, source, config.events, config.prior.sample, rng)
        history.seconds_sampling = time.perf_counter() - t0
        fit_cvae_weights(
            model,
            train,
            val,
            epochs=config.epochs,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            patience=config.patience,
            seed=config.seed,
            history=history,
        )
        history.seconds += history.seconds_sampling
        return model.eval(), history


def train_cvae_run(
    config: CVAEConfig, simulator: Any, run_dir: str | Path
) -> tuple[CVAE, CVAEHistory]:
    """Train and write the checkpoint (``model.safetensors`` + ``manifest.json``) to ``run_dir``."""
    from dyfit.training.checkpoint import save_model
    from dyfit.training.samples import TrainingSource

    model, history = train_cvae(config, simulator)
    save_model(
        model,
        run_dir,
        history=history.to_dict(),
        training_config=config.model_dump(mode="json"),
        provenance=TrainingSource(simulator, config.features).describe(),
    )
    return model, history
