"""``dyfit train-cvae``: train the conditional VAE on simulated Drell-Yan events."""

from __future__ import annotations

from pathlib import Path

import click

from dyfit.cli.options import workers_option

__all__ = ["command"]


@click.command(name="train-cvae")
@click.option(
    "-o",
    "--output",
    "run_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Run folder for model.safetensors and manifest.json.",
)
@click.option(
    "--events",
    type=click.IntRange(min=2),
    default=200_000,
    show_default=True,
    help="Training events (theta per event from the prior).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Maximum number of epochs.",
)
@click.option(
    "--prior",
    default=None,
    help="Training box: lambda=LO:HI,mu=LO:HI,nu=LO:HI or a preset (default, proposal).",
)
@click.option("--toy", is_flag=True, help="Train on the analytic toy instead of the simulation.")
@workers_option
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--overwrite", is_flag=True, help="Replace a model already in the run folder.")
def command(run_dir, events, epochs, prior, toy, workers, seed, overwrite) -> None:
    """Train a cVAE p(x|theta) for `dyfit fit --method cvae` and save it to RUN_DIR (-o)."""
    from dyfit.errors import InputError
    from dyfit.physics.prior import parse_prior
    from dyfit.training.checkpoint import MANIFEST
    from dyfit.training.cvae import CVAEConfig, train_cvae_run
    from dyfit.training.samples import TOY_FEATURES

    if (run_dir / MANIFEST).exists() and not overwrite:
        raise InputError(f"{run_dir} already holds a model; choose another -o or pass --overwrite")
    settings = {"events": events, "epochs": epochs, "seed": seed}
    if prior is not None:
        settings["prior"] = parse_prior(prior)
    if toy:
        from dyfit.toy import ToyExperiment

        settings["features"], simulator = TOY_FEATURES, ToyExperiment()
    else:
        from dyfit.simulation import Simulation

        simulator = Simulation(workers=workers)
    _, history = train_cvae_run(CVAEConfig(**settings), simulator, run_dir)
    best = history.records[history.best_epoch]
    click.echo(
        f"wrote {run_dir}: cvae, best epoch {history.best_epoch + 1} of {len(history.records)}, "
        f"validation ELBO {best['val_elbo']:.4f} nats/event, {history.seconds:.0f} s"
    )
