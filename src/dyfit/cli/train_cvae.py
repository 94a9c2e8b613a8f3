"""``dyfit train-cvae``: train the conditional VAE on simulated Drell-Yan events."""

from __future__ import annotations

import click

from dyfit.cli.options import count_option, seed_option, workers_option
from dyfit.cli.training_options import (
    check_new_run_dir,
    epochs_option,
    overwrite_option,
    run_dir_option,
    toy_option,
    training_prior_option,
)

__all__ = ["command"]


@click.command(name="train-cvae")
@run_dir_option("Run folder for model.safetensors and manifest.json.")
@count_option("--events", 200_000, 2, "Training events (theta per event from the prior).")
@epochs_option(60)
@training_prior_option
@toy_option
@workers_option
@seed_option
@overwrite_option()
def command(run_dir, events, epochs, prior, toy, workers, seed, overwrite) -> None:
    """Train a cVAE p(x|theta) for `dyfit fit --method cvae` and save it to RUN_DIR (-o)."""
    from dyfit.physics.prior import parse_prior
    from dyfit.training.cvae import CVAEConfig, train_cvae_run
    from dyfit.training.samples import TOY_FEATURES

    check_new_run_dir(run_dir, overwrite)
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
