"""``dyfit train``: train a ratio model and write its checkpoint and Figure 1."""

from __future__ import annotations

from pathlib import Path

import click

from dyfit.cli.options import workers_option

__all__ = ["command"]


@click.command(name="train")
@click.option(
    "-o",
    "--output",
    "run_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Run folder for model.safetensors, manifest.json and the figures.",
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
@click.option(
    "--prior",
    default=None,
    help="Training box: lambda=LO:HI,mu=LO:HI,nu=LO:HI or a preset (default, proposal).",
)
@click.option("--toy", is_flag=True, help="Train on the analytic toy instead of the simulation.")
@workers_option
@click.option("--overwrite", is_flag=True, help="Replace a model already in the run folder.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def command(
    run_dir, estimator, config_file, events, epochs, seed, prior, toy, workers, overwrite, progress
):
    """Train a ratio model r(x|theta) and save it to RUN_DIR (-o)."""
    from dyfit.config import load_toml, validate
    from dyfit.errors import InputError
    from dyfit.physics.prior import parse_prior
    from dyfit.training.checkpoint import MANIFEST
    from dyfit.training.loop import TrainingConfig
    from dyfit.training.run import train_run
    from dyfit.training.samples import TOY_FEATURES

    if (run_dir / MANIFEST).exists() and not overwrite:
        raise InputError(f"{run_dir} already holds a model; choose another -o or pass --overwrite")
    base = load_toml(config_file, TrainingConfig) if config_file else TrainingConfig()
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

    if toy:
        from dyfit.toy import ToyExperiment

        simulator = ToyExperiment()
    else:
        from dyfit.simulation import Simulation

        simulator = Simulation(workers=workers)
    _, history = train_run(config, simulator, run_dir, progress=progress)

    best = history.best
    click.echo(
        f"wrote {run_dir}: {config.estimator}, best epoch {history.best_epoch + 1} "
        f"of {len(history.records)}, {history.seconds:.0f} s "
        f"({history.seconds_sampling:.0f} s drawing events, {history.threads} threads)"
    )
    if "captured" in best:
        click.echo(
            f"validation BCE {best['val_loss']:.6f}, Bayes bound {history.bayes_loss:.6f}, "
            f"captured {100 * best['captured']:.1f} % of the achievable separation"
        )
    elif "r2" in best:
        click.echo("validation R^2 of a_0..a_3: " + ", ".join(f"{v:.4f}" for v in best["r2"]))
