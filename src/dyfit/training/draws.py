r"""Seeded, sharded training samples: the same events whatever the process count or restart.

A sample of n events is drawn in ``config.shards`` pieces; piece s of the sample
with key k comes from the stream ``SeedSequence(seed, spawn_key=(*k, s))``. Keys:
``(VALIDATION,)``, ``(TRAINING, epoch)``, ``(CALIBRATION,)``; ``(ORDER, epoch, rank)``
seeds the batch order. A resumed run therefore draws what the uninterrupted one drew,
and K data-parallel ranks draw disjoint pieces whose union is the one-process sample.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

import numpy as np
import torch

from dyfit.errors import InputError
from dyfit.training.distributed import World
from dyfit.training.samples import ClassifierSet, FixedTrainingSource, MomentSet

if TYPE_CHECKING:
    from dyfit.training.config import TrainingConfig

__all__ = ["VALIDATION", "TRAINING", "CALIBRATION", "ORDER", "stream", "draw", "tensors"]

VALIDATION, TRAINING, CALIBRATION, ORDER = range(4)  # spawn_key purposes of the streams


def stream(seed: int, *key: int) -> np.random.Generator:
    """The generator of stream ``key`` of run ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _concat(parts: list[ClassifierSet] | list[MomentSet]) -> ClassifierSet | MomentSet:
    cls = type(parts[0])
    columns = {}
    for f in fields(cls):
        arrays = [getattr(p, f.name) for p in parts]
        columns[f.name] = None if any(a is None for a in arrays) else np.concatenate(arrays)
    return cls(**columns)


def draw(source, config: TrainingConfig, n: int, key: tuple[int, ...], world: World, split):
    """This rank's part of the sample of n events (both classes) whose streams ``key`` seeds.

    Fresh sources: shard s (n/shards events) comes from stream (*key, s), rank r draws
    shards r, r + K, … Fixed sources hold their events in memory: every rank draws the
    whole sample and keeps rows r, r + K, …
    """

    def draw(m: int, rng: np.random.Generator):
        if config.estimator == "classifier":
            return source.classifier_set(m // 2, config.prior, rng, split)
        return source.moment_set(m, rng, split)

    if isinstance(source, FixedTrainingSource):
        whole = draw(n, stream(config.seed, *key))
        rows = slice(world.rank, None, world.size)
        arrays = {f.name: getattr(whole, f.name) for f in fields(whole)}
        return type(whole)(**{k: None if a is None else a[rows] for k, a in arrays.items()})
    pieces = max(1, min(config.shards, n // 2))
    if world.size > pieces:
        raise InputError(
            f"{world.size} processes but samples are drawn in {pieces} shards; "
            f"set shards >= {world.size} (and events >= {2 * world.size})"
        )
    sizes = np.full(pieces, n // pieces) + (np.arange(pieces) < n % pieces)
    mine = range(world.rank, pieces, world.size)
    return _concat([draw(int(sizes[s]), stream(config.seed, *key, s)) for s in mine])


def tensors(sample: ClassifierSet | MomentSet, device: torch.device) -> dict[str, torch.Tensor]:
    if isinstance(sample, ClassifierSet):
        arrays = {"x": sample.x, "theta": sample.theta, "y": sample.label}
    else:
        arrays = {"x": sample.x, "y": sample.target}
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in arrays.items()}
