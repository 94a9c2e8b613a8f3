"""``dyfit train``: train a ratio model and write its checkpoint and Figure 1.

``--resume RUN_DIR`` continues a run that was killed, from the state written after
its last complete epoch. Under ``torchrun --nproc-per-node K -m dyfit train ...``
the K processes train one model data-parallel. ``--replicas K`` also trains K
replicas (seed + k) into RUN_DIR/replica-k, serially or on Dask (``--scheduler``),
for ``dyfit fit --ensemble-dir RUN_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from dyfit.cli.options import check_dask, workers_option
from dyfit.cli.training_options import (
    overwrite_option,
    replica_dask_options,
    run_dir_option,
    toy_option,
    training_prior_option,
)

__all__ = ["command"]


@click.command(name="train")
@run_dir_option(
    "Run folder for model.safetensors, manifest.json, the figures and checkpoint/.",
    required=False,
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Continue the killed run in this folder with its saved settings.",
)
@click.option(
    "--estimator",
    type=click.Choice(["classifier", "moments"]),
    default=None,
    help="Parametrized classifier (BCE) or angular-moment regressor (exact structure).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML file whose top-level keys are TrainingConfig fields.",
)
@click.option("--events", type=int, default=None, help="Training events per epoch.")
@click.option("--epochs", type=int, default=None, help="Maximum number of epochs.")
@click.option("--seed", type=int, default=None, help="Random seed.")
@training_prior_option
@toy_option
@workers_option
@click.option(
    "--replicas",
    type=click.IntRange(min=0),
    default=0,
    help="Also train this many replicas (seed + k) into RUN_DIR/replica-k [default: 0].",
)
@replica_dask_options
@overwrite_option("Replace a model or killed run in the folder.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def command(
    run_dir,
    resume_dir,
    estimator,
    config_file,
    events,
    epochs,
    seed,
    prior,
    toy,
    workers,
    replicas,
    scheduler,
    dask_workers,
    overwrite,
    progress,
):
    """Train a ratio model r(x|theta) and save it to RUN_DIR (-o), or continue one (--resume)."""
    from dyfit.config import load_toml, validate
    from dyfit.errors import InputError
    from dyfit.physics.prior import parse_prior
    from dyfit.training.checkpoint import MANIFEST, read_manifest
    from dyfit.training.config import TrainingConfig
    from dyfit.training.resume import STATE, read_state
    from dyfit.training.run import train_run
    from dyfit.training.samples import TOY_FEATURES, simulator_from_provenance

    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 prints
    check_dask(scheduler, dask_workers)
    if scheduler is not None and not replicas:
        raise InputError("--scheduler fans out replicas; give --replicas K as well")
    if scheduler is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InputError("--scheduler does not combine with torchrun; use one or the other")
    simulator = None
    if resume_dir is not None:
        if run_dir is not None and run_dir != resume_dir:
            raise InputError("-o and --resume name different folders; give the run folder once")
        run_dir = resume_dir
        if (run_dir / MANIFEST).exists() and replicas:  # the main run is done: its replicas
            manifest = read_manifest(run_dir)
            saved = {k: manifest.get(k) for k in ("training_config", "provenance")}
            if not all(isinstance(v, dict) for v in saved.values()):
                raise InputError(f"{run_dir} records no training config; train anew with -o")
            saved["config"] = saved.pop("training_config")
        elif (run_dir / MANIFEST).exists():
            history = read_manifest(run_dir).get("history") or {}
            if main_rank:
                click.echo(
                    f"{run_dir} has finished training ({len(history.get('records', []))} "
                    "epochs); nothing to resume"
                )
            return
        else:
            saved = read_state(run_dir)
        base = validate(TrainingConfig, saved["config"], source=f"the config saved in {run_dir}")
        if toy and saved["provenance"].get("source") != "toy":
            raise InputError(f"{run_dir} was not trained on the toy; resume without --toy")
        simulator = simulator_from_provenance(saved["provenance"], workers)
    elif run_dir is None:
        raise InputError("give the run folder: -o RUN_DIR (or --resume RUN_DIR to continue one)")
    elif (run_dir / MANIFEST).exists() and not overwrite:
        raise InputError(f"{run_dir} already holds a model; choose another -o or pass --overwrite")
    elif (run_dir / STATE).exists() and not overwrite:
        raise InputError(
            f"{run_dir} holds a killed run; continue it with --resume {run_dir} "
            "or start again with --overwrite"
        )
    else:
        base = TrainingConfig()
    if config_file:
        from_file = load_toml(config_file, TrainingConfig)
        base = base.model_copy(
            update={k: getattr(from_file, k) for k in from_file.model_fields_set}
        )
    overrides = {
        "estimator": estimator,
        "events_per_epoch": events,
        "epochs": epochs,
        "seed": seed,
        "prior": None if prior is None else parse_prior(prior),
    }
    if toy and "features" not in base.model_fields_set:
        overrides["features"] = TOY_FEATURES
    settings = base.model_dump() | {k: v for k, v in overrides.items() if v is not None}
    config = validate(TrainingConfig, settings, source="training options")

    if simulator is None and toy:
        from dyfit.toy import ToyExperiment

        simulator = ToyExperiment()
    elif simulator is None:
        from dyfit.simulation import Simulation

        simulator = Simulation(workers=workers)
    if replicas:
        from dyfit.training.replicas import train_replicas

        def finished(summary: dict) -> None:
            loss = summary["val_loss"]
            if main_rank:
                click.echo(
                    f"{summary['status']} {summary['run_dir']}: best epoch "
                    f"{summary['best_epoch'] + 1} of {summary['epochs']}, validation loss "
                    + ("unknown" if loss is None else f"{loss:.6f}")
                )

        train_replicas(
            config,
            simulator,
            run_dir,
            replicas,
            scheduler=scheduler,
            workers=dask_workers,
            resume=resume_dir is not None,
            overwrite=overwrite,
            progress=progress,
            on_result=finished,
        )
        return
    if resume_dir is None and main_rank:
        (run_dir / STATE).unlink(missing_ok=True)  # --overwrite: the killed run's state
    _, history = train_run(
        config, simulator, run_dir, progress=progress, resume=resume_dir is not None
    )
    if not main_rank:
        return
    best = history.best
    click.echo(
        f"wrote {run_dir}: {config.estimator}, best epoch {history.best_epoch + 1} "
        f"of {len(history.records)}, {history.seconds:.0f} s "
        f"({history.seconds_sampling:.0f} s drawing events, {history.threads} threads"
        + (f", {history.world_size} processes" if history.world_size > 1 else "")
        + ")"
    )
    if "captured" in best:
        click.echo(
            f"validation BCE {best['val_loss']:.6f}, Bayes bound {history.bayes_loss:.6f}, "
            f"captured {100 * best['captured']:.1f} % of the achievable separation"
        )
    elif "r2" in best:
        click.echo("validation R^2 of a_0..a_3: " + ", ".join(f"{v:.4f}" for v in best["r2"]))
