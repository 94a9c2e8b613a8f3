"""``dyfit study``: pseudo-experiments at chosen θ → bias, pulls, coverage, σ/σ_oracle."""

from __future__ import annotations

from pathlib import Path

import click

from dyfit.cli.options import check_dask
from dyfit.cli.study_options import event_source, methods_option, parse_methods, toy_options

__all__ = ["command"]


@click.command("study")
@click.option("--model", "model_dir", required=True, help="Run directory, or 'truth'.")
@methods_option("likelihood", "")
@click.option("--no-oracle", is_flag=True, help="Skip the truth-level oracle fits.")
@toy_options
def command(
    model_dir,
    thetas,
    toys,
    events,
    nominal_events,
    methods,
    source,
    no_oracle,
    seed,
    workers,
    scheduler,
    dask_workers,
    cvae_dir,
    output,
) -> None:
    """Fit K toys per theta with fresh nominal samples; write tables (Markdown, JSON) and plots."""
    import numpy as np

    from dyfit.cli.fit import load_model
    from dyfit.physics.prior import parse_theta
    from dyfit.studies import run_study

    check_dask(scheduler, dask_workers)
    model = load_model(model_dir)
    # Under Dask each worker is one process: the simulation must not start a pool of its own.
    sim_workers = workers if scheduler is None else 1
    src = event_source(source, model_dir, sim_workers)
    study = run_study(
        model,
        src,
        np.array([parse_theta(t) for t in thetas]),
        toys,
        events,
        nominal_events if nominal_events is not None else 3 * events,
        methods=parse_methods(methods),
        seed=seed,
        progress=True,
        oracle=not no_oracle,
        journal=Path(output),
        scheduler=scheduler,
        workers=dask_workers,
        models=None if cvae_dir is None else {"cvae": load_model(cvae_dir)},
    )
    study.save(Path(output))
    click.echo(study.markdown())
