"""``dyfit train-dctr``: train the DCTR reweighter that corrects a trained cVAE."""

from __future__ import annotations

from pathlib import Path

import click

from dyfit.cli.options import workers_option

__all__ = ["command"]


@click.command(name="train-dctr")
@click.option(
    "--cvae",
    "cvae_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Run folder of the cVAE to correct (dyfit train-cvae).",
)
@click.option(
    "-o",
    "--output",
    "run_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Run folder for the reweighter, its diagnostics and histograms.",
)
@click.option(
    "--events",
    type=click.IntRange(min=2),
    default=200_000,
    show_default=True,
    help="Simulated training events (theta per event from the cVAE's prior).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Maximum number of epochs.",
)
@click.option(
    "--check-events",
    type=click.IntRange(min=100),
    default=20_000,
    show_default=True,
    help="Events per checked theta (two-sample AUC before and after reweighting).",
)
@workers_option
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--overwrite", is_flag=True, help="Replace a model already in the run folder.")
def command(cvae_dir, run_dir, events, epochs, check_events, workers, seed, overwrite) -> None:
    """Train r(x|theta) = p_sim/p_cVAE for `dyfit fit --method cvae --dctr RUN_DIR`."""
    from dyfit.errors import InputError
    from dyfit.training.checkpoint import MANIFEST
    from dyfit.training.dctr import DCTRConfig
    from dyfit.training.dctr_run import DIAGNOSTICS, train_dctr_run

    if (run_dir / MANIFEST).exists() and not overwrite:
        raise InputError(f"{run_dir} already holds a model; choose another -o or pass --overwrite")
    config = DCTRConfig(
        events=events, validation_events=max(2, events // 4), epochs=epochs, seed=seed
    )
    _, checks = train_dctr_run(
        config, cvae_dir, run_dir, workers=workers, check_events=check_events
    )
    for c in checks:
        theta = ",".join(f"{v:g}" for v in c["theta"])
        click.echo(
            f"theta {theta}: AUC {c['auc_before']:.4f} -> {c['auc_after']:.4f} "
            f"(± {c['auc_err']:.4f}), E[r] = {c['mean_ratio']:.4f} ± {c['mean_ratio_err']:.4f}"
        )
    click.echo(f"wrote {run_dir}: dctr for {cvae_dir}; checks in {run_dir / DIAGNOSTICS}")
