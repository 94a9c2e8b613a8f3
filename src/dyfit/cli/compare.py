"""``dyfit compare``: every fit method and the oracle on the same toys → table, words, plot."""

from __future__ import annotations

from pathlib import Path

import click

from dyfit.cli.options import check_dask
from dyfit.cli.study_options import event_source, methods_option, parse_methods, toy_options

__all__ = ["command"]


@click.command("compare")
@click.option(
    "--model",
    "model_dir",
    help="Run directory of a trained model, or 'truth'; without it only the binned methods "
    "run (and --source toy).",
)
@methods_option(None, " [default: bce-adam, bce, likelihood with --model; the binned ones]")
@toy_options
def command(
    model_dir,
    thetas,
    toys,
    events,
    nominal_events,
    methods,
    source,
    seed,
    workers,
    scheduler,
    dask_workers,
    cvae_dir,
    output,
) -> None:
    """Compare bias, sigma, pull width, coverage and fit time of the methods against the
    truth-level oracle; write comparison.md/.json, sigma_ratio.png/.pdf and the study."""
    import numpy as np

    from dyfit.cli.fit import load_model
    from dyfit.physics.prior import parse_theta
    from dyfit.studies.compare import compare_methods, default_methods

    check_dask(scheduler, dask_workers)
    src = event_source(source, model_dir, workers if scheduler is None else 1)
    model = None if model_dir is None else load_model(model_dir)
    chosen = parse_methods(methods)
    models = {}
    if cvae_dir is not None:
        models["cvae"] = load_model(cvae_dir)
        if chosen is None:
            chosen = [*default_methods(model), "cvae"]
    comparison = compare_methods(
        model,
        src,
        np.array([parse_theta(t) for t in thetas]),
        toys,
        events,
        nominal_events if nominal_events is not None else 3 * events,
        methods=chosen,
        seed=seed,
        progress=True,
        models=models,
        journal=Path(output),
        scheduler=scheduler,
        workers=dask_workers,
    )
    comparison.save(Path(output))
    click.echo(comparison.markdown())
