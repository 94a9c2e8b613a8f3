r"""What one training epoch computes, over all ranks of a process group.

The model's training output and its loss (BCE for the classifier, MSE of standardised
targets for the moments regressor), a pass over shuffled mini-batches, the validation
metrics, the reference ratio's Bayes loss and the calibration of ā. Sums are
all-reduced (:func:`dyfit.training.distributed.all_reduce_sum`), so each result is
that of the union of the ranks' events.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from dyfit.errors import InputError
from dyfit.networks import AngularMomentRegressor, ParametrizedClassifier, RatioModel
from dyfit.training import distributed
from dyfit.training.distributed import World
from dyfit.training.samples import ClassifierSet

__all__ = [
    "Objective",
    "batch_loss",
    "bayes_loss",
    "calibrate_abar",
    "model_output",
    "predict",
    "train_epoch",
    "validation_metrics",
]


def model_output(model: RatioModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The trained output: the classifier's logit (N,) or the regressor's standardised ĥ (N, 4)."""
    if isinstance(model, ParametrizedClassifier):
        return model(batch["x"], batch["theta"])
    return model.standardised(batch["x"])


class Objective(nn.Module):
    """The training output as ``forward``: DistributedDataParallel hooks only ``forward``."""

    def __init__(self, model: RatioModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model_output(self.model, batch)


def batch_loss(model: RatioModel, out: torch.Tensor, y: torch.Tensor, reduction="mean"):
    """BCE on the logits against labels y (N,), or MSE against the standardised targets (N, 4)."""
    if isinstance(model, ParametrizedClassifier):
        return functional.binary_cross_entropy_with_logits(out, y, reduction=reduction)
    target = (y - model.target_mean) / model.target_scale
    return functional.mse_loss(out, target, reduction=reduction)


@torch.no_grad()
def predict(model: RatioModel, data: dict[str, torch.Tensor], batch_size: int) -> torch.Tensor:
    """:func:`model_output` in eval mode, ``batch_size`` events at a time."""
    model.eval()
    n = data["x"].shape[0]
    return torch.cat(
        [
            model_output(model, {k: v[s : s + batch_size] for k, v in data.items()})
            for s in range(0, n, batch_size)
        ]
    )


def validation_metrics(
    model: RatioModel, data: dict[str, torch.Tensor], batch_size: int, world: World
) -> dict[str, Any]:
    """Validation metrics over all ranks' events: per-rank sums, all-reduced, in float64."""
    out, y = predict(model, data, batch_size).double(), data["y"].double()
    count = out.new_tensor([y.shape[0]])
    if isinstance(model, ParametrizedClassifier):
        correct = ((out > 0).double() == y).sum()
        sums = torch.cat([batch_loss(model, out, y, "sum")[None], correct[None], count])
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


def bayes_loss(sample: ClassifierSet, world: World, device: torch.device) -> float | None:
    """The validation BCE (nats) of the reference log-ratio; None without truth angles."""
    if sample.truth_log_ratio is None:
        return None
    logit, label = torch.from_numpy(sample.truth_log_ratio), torch.from_numpy(sample.label)
    total = functional.binary_cross_entropy_with_logits(logit, label.double(), reduction="sum")
    sums = torch.stack([total, logit.new_tensor(logit.shape[0])]).to(device)
    total, n = distributed.all_reduce_sum(world, sums).tolist()
    return total / n


def calibrate_abar(model: AngularMomentRegressor, x: torch.Tensor, batch_size: int, world: World):
    """ā over every rank's calibration events: the count-weighted mean of the ranks' ā."""
    abar = model.calibrate(x, batch_size)
    if world.distributed:
        n = abar.new_tensor([x.shape[0]], dtype=torch.float64)
        sums = distributed.all_reduce_sum(world, torch.cat([abar.double() * n, n]))
        model.abar.copy_(sums[:4] / sums[4])


def train_epoch(net, model, data, optimiser, batch_size, generator, world) -> float:
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
        loss = batch_loss(model, net(batch), batch["y"])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += loss.detach() * idx.numel()  # no .item(): a GPU need not wait per batch
    sums = distributed.all_reduce_sum(world, torch.stack([total, total.new_tensor(n)]))
    return (sums[0] / sums[1]).item()
