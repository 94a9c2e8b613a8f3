r"""Replicas of a training run, for the ``training`` part of the fit's covariance.

Replica k (k = 1..K) repeats the run's configuration with seed + k in
``RUN_DIR/replica-k``, a normal run folder (``load_model``, ``dyfit train --resume``);
the main run (k = 0, the seed itself) stays in ``RUN_DIR``. With events drawn fresh
every epoch (:class:`~dyfit.training.samples.TrainingSource`) a new seed is an
independent replica: new initial weights, new events, new batch order. Fixed events
(:class:`~dyfit.training.samples.FixedTrainingSource`) would repeat across replicas,
so replica k also trains on a Poisson bootstrap of the training pool: every event
enters n ~ Poisson(1) times, the large-sample limit of resampling N of N with
replacement (Hanley & MacGibbon, Comput. Methods Programs Biomed. 83 (2006) 57;
Oza & Russell, "Online bagging and boosting", AISTATS 2001).

The K + 1 runs are independent jobs for :func:`dyfit.parallel.map_jobs`: serial, or on
a Dask cluster whose workers share the file system of ``RUN_DIR``. Each job carries
its seeds, so the weights do not depend on where it ran (bit for bit with a fixed
``threads``). ``dyfit fit --ensemble-dir RUN_DIR`` fits θ with every model and adds
the covariance of θ̂ over them (:func:`dyfit.fitting.likelihood.fit_likelihood`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dyfit.errors import InputError
from dyfit.training.checkpoint import MANIFEST, read_manifest, save_model
from dyfit.training.config import RUNTIME_KEYS, TrainingConfig
from dyfit.training.loop import train
from dyfit.training.resume import STATE
from dyfit.training.samples import EventSource, FixedTrainingSource

__all__ = [
    "REPLICA",
    "replica_dir",
    "replica_dirs",
    "replica_config",
    "BootstrapSource",
    "train_replicas",
]

REPLICA = "replica-{}"
BOOTSTRAP = 0xB007  # spawn_key purpose of the bootstrap counts, apart from draws.py's 0..3
_PATTERN = re.compile(r"replica-([1-9][0-9]*)")


def replica_dir(run_dir: str | Path, k: int) -> Path:
    """The folder of replica k: ``run_dir`` itself for k = 0, else ``run_dir/replica-k``."""
    return Path(run_dir) if k == 0 else Path(run_dir) / REPLICA.format(k)


def replica_dirs(run_dir: str | Path) -> list[Path]:
    """The finished replicas of ``run_dir``, in the order of k (the main run excluded).

    Raises:
        InputError: No ``replica-k`` folder, or one whose training has not finished.
    """
    run_dir = Path(run_dir)
    found = [p for p in run_dir.glob("replica-*") if p.is_dir() and _PATTERN.fullmatch(p.name)]
    if not found:
        raise InputError(
            f"{run_dir} holds no replica-k folders; train them with "
            f"`dyfit train --resume {run_dir} --replicas K`"
        )
    found.sort(key=lambda p: int(p.name.partition("-")[2]))
    unfinished = [p.name for p in found if not (p / MANIFEST).is_file()]
    if unfinished:
        raise InputError(
            f"{run_dir}: {', '.join(unfinished)} did not finish training; continue with "
            f"`dyfit train --resume {run_dir} --replicas {len(found)}`"
        )
    return found


def replica_config(config: TrainingConfig, k: int) -> TrainingConfig:
    """The configuration of replica k: that of the main run with seed + k."""
    return config.model_copy(update={"seed": config.seed + k})


class BootstrapSource(FixedTrainingSource):
    """A fixed source whose training pool is replica k's Poisson bootstrap of another's.

    Event i of the training pool (N events) enters n_i ~ Poisson(1) times, drawn from
    ``SeedSequence(seed, spawn_key=(BOOTSTRAP, k))``. The validation pool is kept: the
    held-out events that steer early stopping stay disjoint from the training events
    (a duplicate on both sides would reward memorising it).
    """

    def __init__(self, source: FixedTrainingSource, seed: int, k: int) -> None:
        # no super().__init__: the pools are split already, only the training pool changes
        self.features, self.meta = source.features, source.meta
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(BOOTSTRAP, k)))
        pool = source.pools["train"]
        counts = rng.poisson(1.0, len(pool))
        self.pools = source.pools | {"train": pool.select(np.repeat(np.arange(len(pool)), counts))}
        self.bootstrap = {"seed": seed, "replica": k}

    def describe(self) -> dict[str, Any]:
        """Provenance for the checkpoint manifest: the fixed source's, and which bootstrap."""
        return super().describe() | {"bootstrap": self.bootstrap}


def _single_process(source: Any) -> Any:
    """The source without a process pool of its own: a Dask worker is already one process."""
    if getattr(source, "workers", 1) == 1:
        return source
    source = copy.copy(source)
    source.workers = 1  # Simulation's events do not depend on its number of workers
    return source


def _train_job(
    job: tuple[int, str], *, config: TrainingConfig, source: Any, progress: bool
) -> dict[str, Any]:
    """Train (or continue, or skip when finished) replica ``job = (k, folder)``."""
    k, folder = job
    path = Path(folder)
    settings = replica_config(config, k)
    if (path / MANIFEST).is_file():
        manifest = read_manifest(path)
        _check_same(manifest.get("training_config"), settings, path)
        return {"replica": k, "run_dir": folder, "status": "done"} | _summary(
            manifest.get("history") or {}
        )
    resume = (path / STATE).is_file()  # train() refuses a state saved under other settings
    if isinstance(source, FixedTrainingSource):
        from dyfit.plots.training import plot_history

        fixed = source if k == 0 else BootstrapSource(source, config.seed, k)
        model, history = train(settings, fixed, progress=progress, checkpoint=path, resume=resume)
        save_model(
            model,
            path,
            history=history.to_dict(),
            training_config=settings.model_dump(mode="json"),
            provenance=fixed.describe(),
        )
        plot_history(history.to_dict(), path / "training")
    else:
        from dyfit.training.run import train_run

        _, history = train_run(settings, source, path, progress=progress, resume=resume)
    status = "resumed" if resume else "trained"
    return {"replica": k, "run_dir": folder, "status": status} | _summary(history.to_dict())


def _check_same(saved: Any, config: TrainingConfig, path: Path) -> None:
    """Refuse a finished replica trained otherwise: the ensemble must differ only by seed."""
    now = config.model_dump(mode="json")
    saved = saved if isinstance(saved, dict) else {}
    differ = [k for k in now if k not in RUNTIME_KEYS and saved.get(k) != now[k]]
    if differ:
        raise InputError(
            f"{path} was trained with other {', '.join(differ)}; give the settings of the "
            "main run, or train the replicas into a new folder"
        )


def _summary(history: dict[str, Any]) -> dict[str, Any]:
    records, best = history.get("records") or [], history.get("best_epoch", -1)
    val_loss = records[best]["val_loss"] if records and 0 <= best < len(records) else None
    return {"epochs": len(records), "best_epoch": best, "val_loss": val_loss}


def train_replicas(
    config: TrainingConfig,
    source: EventSource | FixedTrainingSource,
    run_dir: str | Path,
    replicas: int,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train the main run into ``run_dir`` and ``replicas`` more into ``run_dir/replica-k``.

    Arguments:
        config: The main run's configuration; replica k uses seed + k.
        source: A simulator (``simulate(n, theta, rng)``; fresh events every epoch) or a
            :class:`~dyfit.training.samples.FixedTrainingSource` (bootstrapped per replica).
        run_dir: The main run's folder.
        replicas: K, the number of replicas besides the main run (≥ 1).
        scheduler, workers: Where the K + 1 jobs run (:func:`dyfit.parallel.map_jobs`).
            Under Dask a config without ``threads`` trains with one thread per job.
        resume: Skip finished runs, continue killed ones, start missing ones.
        overwrite: Retrain runs whose folders hold a model or a killed run.
        progress: A progress bar per run (serial only).
        on_result: Called with each run's summary as it finishes.

    Returns:
        One summary per run, k = 0..K: ``replica``, ``run_dir``, ``status`` ("trained",
        "resumed" or "done"), ``epochs``, ``best_epoch``, ``val_loss``.

    Example:
        >>> train_replicas(TrainingConfig(threads=1), ToyExperiment(), "run", 5)  # doctest: +SKIP
    """
    from dyfit.parallel import map_jobs

    if replicas < 1:
        raise InputError(f"replicas must be at least 1, got {replicas}")
    folders = [replica_dir(run_dir, k) for k in range(replicas + 1)]
    for path in folders:
        held = (path / MANIFEST).is_file() or (path / STATE).is_file()
        if held and overwrite:
            (path / MANIFEST).unlink(missing_ok=True)
            (path / STATE).unlink(missing_ok=True)
        elif held and not resume:
            raise InputError(
                f"{path} already holds a model or a killed run; continue with "
                f"--resume {run_dir} or start again with --overwrite"
            )
    if scheduler is not None:
        source = _single_process(source)
        if config.threads is None:  # free_cores() in every worker would oversubscribe
            config = config.model_copy(update={"threads": 1})
    shared = {"config": config, "source": source, "progress": progress and scheduler is None}
    jobs = [(k, str(path)) for k, path in enumerate(folders)]
    return map_jobs(
        _train_job,
        jobs,
        scheduler,
        workers,
        shared=shared,
        on_result=None if on_result is None else lambda _, summary: on_result(summary),
    )
