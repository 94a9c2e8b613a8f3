"""``dyfit train-dctr``: train the DCTR reweighter that corrects a trained cVAE."""

from __future__ import annotations

from pathlib import Path

import click

from dyfit.cli.options import count_option, seed_option, workers_option
from dyfit.cli.training_options import (
    check_new_run_dir,
    epochs_option,
    overwrite_option,
    run_dir_option,
)

__all__ = ["command"]


@click.command(name="train-dctr")
@click.option(
    "--cvae",
    "cvae_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Run folder of the cVAE to correct (dyfit train-cvae).",
)
@run_dir_option("Run folder for the reweighter, its diagnostics and histograms.")
@count_option(
    "--events", 200_000, 2, "Simulated training events (theta per event from the cVAE's prior)."
)
@epochs_option(30)
@count_option(
    "--check-events",
    20_000,
    100,
    "Events per checked theta (two-sample AUC before and after reweighting).",
)
@workers_option
@seed_option
@overwrite_option()
def command(cvae_dir, run_dir, events, epochs, check_events, workers, seed, overwrite) -> None:
    """Train r(x|theta) = p_sim/p_cVAE for `dyfit fit --method cvae --dctr RUN_DIR`."""
    from dyfit.training.dctr import DCTRConfig
    from dyfit.training.dctr_run import DIAGNOSTICS, train_dctr_run

    check_new_run_dir(run_dir, overwrite)
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
