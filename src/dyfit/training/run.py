"""One training run end to end: fresh events → trained model → checkpoint and Figure 1."""

from __future__ import annotations

from pathlib import Path

from dyfit.networks import RatioModel
from dyfit.training import distributed
from dyfit.training.checkpoint import save_model
from dyfit.training.config import TrainingConfig, TrainingHistory
from dyfit.training.loop import train
from dyfit.training.samples import EventSource, TrainingSource

__all__ = ["train_run"]


def train_run(
    config: TrainingConfig,
    simulator: EventSource,
    run_dir: str | Path,
    *,
    progress: bool = False,
    resume: bool = False,
) -> tuple[RatioModel, TrainingHistory]:
    """Train on fresh events from ``simulator``; write the checkpoint and ``training.png``.

    The training state goes to ``run_dir/checkpoint`` after every epoch; ``resume=True``
    continues from it. Launched by torchrun, the processes train data-parallel
    (:mod:`dyfit.training.distributed`) and rank 0 writes.

    Example:
        >>> from dyfit.toy import ToyExperiment
        >>> model, history = train_run(TrainingConfig(), ToyExperiment(), "run")  # doctest: +SKIP
    """
    from dyfit.plots.training import plot_history

    joined = not distributed.current().distributed
    world = distributed.init_from_env(config.device)
    leave = joined and world.distributed
    try:
        source = TrainingSource(simulator, config.features)
        model, history = train(config, source, progress=progress, checkpoint=run_dir, resume=resume)
        if world.is_main:
            save_model(
                model,
                run_dir,
                history=history.to_dict(),
                training_config=config.model_dump(mode="json"),
                provenance=source.describe(),
            )
            plot_history(history.to_dict(), Path(run_dir) / "training")
    except BaseException:
        if leave:
            distributed.shutdown(wait=False)
        raise
    if leave:
        distributed.shutdown()
    return model, history
