"""``dyfit study``: pseudo-experiments at chosen θ → bias, pulls, coverage, σ/σ_oracle."""

from __future__ import annotations

from pathlib import Path

import click

from dyfit.cli.options import workers_option

__all__ = ["command"]


@click.command("study")
@click.option("--model", "model_dir", required=True, help="Run directory, or 'truth'.")
@click.option(
    "--theta",
    "thetas",
    multiple=True,
    required=True,
    help="Injected theta L,M,V; repeat for more points.",
)
@click.option("--toys", type=click.IntRange(min=2), default=100, show_default=True)
@click.option("--events", type=click.IntRange(min=1), required=True, help="Events per toy.")
@click.option(
    "--nominal-events",
    type=click.IntRange(min=1),
    help="Fresh nominal events per toy [default: 3x --events].",
)
@click.option(
    "--methods",
    default="likelihood",
    show_default=True,
    help="Comma-separated: likelihood, bce, bce-adam.",
)
@click.option(
    "--source",
    type=click.Choice(["recorded", "toy"]),
    default="recorded",
    show_default=True,
    help="Simulate with the model's recorded source or the toy.",
)
@click.option("--no-oracle", is_flag=True, help="Skip the truth-level oracle fits.")
@click.option("--seed", type=int, default=0, show_default=True)
@workers_option
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False))
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
    output,
) -> None:
    """Fit K toys per theta with fresh nominal samples; write tables (Markdown, JSON) and plots."""
    import numpy as np

    from dyfit.cli.fit import load_model, recorded_source
    from dyfit.physics.prior import parse_theta
    from dyfit.studies import run_study
    from dyfit.toy import ToyExperiment

    model = load_model(model_dir)
    src = ToyExperiment() if source == "toy" else recorded_source(model_dir, workers)
    study = run_study(
        model,
        src,
        np.array([parse_theta(t) for t in thetas]),
        toys,
        events,
        nominal_events if nominal_events is not None else 3 * events,
        methods=[m.strip() for m in methods.split(",") if m.strip()],
        seed=seed,
        progress=True,
        oracle=not no_oracle,
    )
    study.save(Path(output))
    click.echo(study.markdown())
