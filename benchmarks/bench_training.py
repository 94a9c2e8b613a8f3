"""Training time: dyfit's epoch loop against a loop written like the proposal's code.

All runs train the same network (the proposal's ParametrizedClassifier: 5 × 64, batch
norm, ReLU, raw φ; identical initial weights and input standardisation) on the same
pre-drawn toy events (:class:`~dyfit.toy.ToyExperiment`, Table 1 classes with paired θ)
for the same number of epochs, in one process, so the ratios do not depend on the machine.

- reference: ``TensorDataset`` + ``DataLoader(batch_size=1000, shuffle=True)``,
  ``.to(device)`` on every batch, sigmoid output with ``BCELoss``, Adam lr 1e-3,
  validation through a ``DataLoader`` too, torch's default thread count.
- dyfit: :func:`dyfit.training.loop.train` with its defaults (batch 8192, Adam lr 1e-3,
  plateau schedule, best-epoch restore), fed the same events by :class:`PreDrawn`.
- dyfit b1000: the same, at the reference's batch size, which separates the loop's
  speed from the optimisation's (8× fewer Adam steps per epoch at batch 8192).

Timed per epoch: one training pass and one validation pass (for dyfit, its own per-epoch
``seconds`` record; its best-state copy, ~2 ms, falls outside). Event generation, the
one-off input standardisation and torch's first-use imports are not timed.
Run: ``python benchmarks/bench_training.py [--events N] [--epochs E] [--threads T]``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional
from torch.utils.data import DataLoader, TensorDataset

from dyfit.toy import ToyExperiment
from dyfit.training.config import TrainingConfig
from dyfit.training.device import resolve_device
from dyfit.training.loop import train
from dyfit.training.samples import TOY_FEATURES, ClassifierSet, TrainingSource

REFERENCE_BATCH = 1000  # the proposal's code
LN2 = math.log(2.0)


class PreDrawn:
    """A training source that returns the same pre-drawn sets, so no generation is timed."""

    def __init__(self, training: ClassifierSet, validation: ClassifierSet) -> None:
        self.sets = {"train": training, "validation": validation}

    def classifier_set(self, n, prior, rng, split="train") -> ClassifierSet:
        return self.sets[split]


def _tensors(s: ClassifierSet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.from_numpy(s.x), torch.from_numpy(s.theta), torch.from_numpy(s.label)


def reference_loop(model, training, validation, epochs, device) -> list[dict[str, float]]:
    """The proposal-style loop; per epoch: seconds and validation BCE (mean of batch means)."""
    model.to(device)
    train_loader = DataLoader(
        TensorDataset(*_tensors(training)), batch_size=REFERENCE_BATCH, shuffle=True
    )
    val_loader = DataLoader(
        TensorDataset(*_tensors(validation)), batch_size=REFERENCE_BATCH, shuffle=False
    )
    criterion = nn.BCELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    records = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        running = []
        for x, theta, y in train_loader:
            x, theta, y = x.to(device), theta.to(device), y.to(device)
            optimizer.zero_grad()
            loss = criterion(torch.sigmoid(model(x, theta)), y)
            loss.backward()
            optimizer.step()
            running.append(loss.item())
        model.eval()
        val = []
        with torch.no_grad():
            for x, theta, y in val_loader:
                x, theta, y = x.to(device), theta.to(device), y.to(device)
                val.append(criterion(torch.sigmoid(model(x, theta)), y).item())
        records.append({"seconds": time.perf_counter() - start, "val_loss": float(np.mean(val))})
    return records


def warm_up() -> None:
    """Pay torch's one-off costs (Adam's first use imports torch._dynamo, ~1 s) untimed."""
    layer = nn.Linear(3, 1)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.zeros(2, 3)).sum().backward()
    optimizer.step()


@torch.no_grad()
def per_event_bce(model, s: ClassifierSet) -> np.ndarray:
    """Per-event BCE (nats) of a model in eval mode, float64, with shape (2n,)."""
    model.eval()
    x, theta, _ = _tensors(s)
    device = next(model.parameters()).device
    chunks = [
        model(x[i : i + 65536].to(device), theta[i : i + 65536].to(device))
        for i in range(0, len(x), 65536)
    ]
    logit = torch.cat(chunks).double().cpu()
    return functional.binary_cross_entropy_with_logits(
        logit, torch.from_numpy(s.label).double(), reduction="none"
    ).numpy()


def time_to(records: list[dict[str, float]], level: float) -> tuple[int, float]:
    """The first epoch (1-based) whose validation loss is ≤ level, and the seconds until then."""
    elapsed = np.cumsum([r["seconds"] for r in records])
    epoch = next(i for i, r in enumerate(records) if r["val_loss"] <= level)
    return epoch + 1, float(elapsed[epoch])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000, help="training events, both classes")
    parser.add_argument("--validation", type=int, default=100_000, help="validation events")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    parser.add_argument(
        "--threads", type=int, default=None, help="for every run (default: each loop's own)"
    )
    args = parser.parse_args()

    config = TrainingConfig(
        features=TOY_FEATURES,
        events_per_epoch=args.events,
        validation_events=args.validation,
        regenerate=False,
        epochs=args.epochs,
        patience=args.epochs,  # no early stop: every run does every epoch
        seed=args.seed,
        device=args.device,
        threads=args.threads,
    )
    device = resolve_device(args.device)
    rng = np.random.default_rng(args.seed + 1)
    source = TrainingSource(ToyExperiment(), TOY_FEATURES)
    training = source.classifier_set(args.events // 2, config.prior, rng)
    validation = source.classifier_set(args.validation // 2, config.prior, rng, "validation")
    warm_up()

    runs = {}  # name -> (batch, threads, per-epoch records, final model)
    for name, cfg in (
        ("dyfit", config),
        ("dyfit b1000", config.model_copy(update={"batch_size": REFERENCE_BATCH})),
    ):
        model, history = train(cfg, PreDrawn(training, validation))
        runs[name] = (cfg.batch_size, history.threads, history.records, model)
    bayes = history.bayes_loss

    # The reference's network is identical: same seed, same standardisation.
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = config.build_model()
    model.encoder.fit(torch.from_numpy(training.x))
    records = reference_loop(model, training, validation, args.epochs, device)
    runs = {"reference": (REFERENCE_BATCH, torch.get_num_threads(), records, model)} | runs

    print(
        f"{args.events:,} training + {args.validation:,} validation toy events, "
        f"{args.epochs} epochs, device {device}"
    )
    print(
        f"{'run':<12}{'batch':>6}{'threads':>8}{'s/epoch':>9}{'events/s':>10}{'val BCE':>10}"
        f"{'captured':>9}{'speed-up':>9}{'dBCE vs ref':>22}"
    )
    # Final models evaluated alike; differences are paired on the same events, so their
    # standard error is std(per-event difference)/√N.
    bce = {name: per_event_bce(run[3], validation) for name, run in runs.items()}
    per_epoch = {name: np.mean([r["seconds"] for r in run[2]]) for name, run in runs.items()}
    for name, (batch, threads, _, _) in runs.items():
        loss, diff = bce[name].mean(), bce[name] - bce["reference"]
        sigma = diff.std(ddof=1) / math.sqrt(diff.size)
        print(
            f"{name:<12}{batch:>6}{threads:>8}{per_epoch[name]:>9.2f}"
            f"{args.events / per_epoch[name]:>10,.0f}{loss:>10.6f}"
            f"{(LN2 - loss) / (LN2 - bayes):>9.0%}"
            f"{per_epoch['reference'] / per_epoch[name]:>8.1f}x"
            f"{diff.mean():>+13.6f} ± {sigma:.6f}"
        )
    print(f"ln 2 = {LN2:.6f}; exact-ratio (Bayes) BCE = {bayes:.6f}; captured = share of the gap")

    # At equal loss: the level both runs reached (the higher of their final validation
    # losses; dyfit restores its best epoch, the reference keeps its last) and the time each
    # needed to first reach it. Epoch-to-epoch noise of the validation loss is about the
    # paired σ above, so this ratio can move by an epoch's worth between seeds.
    ref_records = runs["reference"][2]
    for name in ("dyfit", "dyfit b1000"):
        records = runs[name][2]
        level = max(ref_records[-1]["val_loss"], min(r["val_loss"] for r in records))
        (ref_epoch, ref_s), (epoch, s) = time_to(ref_records, level), time_to(records, level)
        print(
            f"{name} at equal val loss {level:.5f}: reference epoch {ref_epoch} ({ref_s:.1f} s),"
            f" {name} epoch {epoch} ({s:.1f} s): {ref_s / s:.1f}x"
        )
    for name, run in runs.items():
        losses = " ".join(f"{r['val_loss']:.5f}" for r in run[2])
        print(f"{name} val BCE by epoch: {losses}")


if __name__ == "__main__":
    main()
