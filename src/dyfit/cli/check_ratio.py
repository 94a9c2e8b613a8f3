"""``dyfit check-ratio``: closure and log-ratio checks of a trained ratio model."""

from __future__ import annotations

from pathlib import Path

import click

from dyfit.cli.options import workers_option

__all__ = ["command"]


@click.command(name="check-ratio")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--events",
    type=int,
    default=100_000,
    show_default=True,
    help="Events per sample (one nominal sample and one per check point).",
)
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for the figures and check_ratio.json [default: RUN_DIR/check_ratio].",
)
@click.option(
    "--theta",
    "thetas",
    multiple=True,
    metavar="L,M,V",
    help="A check point (repeatable) [default: the prior's centre and 6 around it].",
)
@click.option("--seed", type=int, default=12345, show_default=True, help="Random seed.")
@workers_option
def command(run_dir, events, out_dir, thetas, seed, workers):
    """Reweight nominal events by the model of RUN_DIR and compare with events at theta."""
    import json

    import numpy as np

    from dyfit.atomic import write_text_atomic
    from dyfit.physics.angular import check_physical
    from dyfit.physics.prior import parse_theta
    from dyfit.plots.training import plot_closure, plot_log_ratio
    from dyfit.training.checkpoint import load_model, read_manifest
    from dyfit.training.quality import check_ratio
    from dyfit.training.samples import simulator_from_provenance

    points = np.array([check_physical(parse_theta(t)) for t in thetas]) if thetas else None
    model = load_model(run_dir)
    simulator = simulator_from_provenance(read_manifest(run_dir).get("provenance") or {}, workers)
    rng = np.random.default_rng(seed)
    report = check_ratio(model, simulator, rng, thetas=points, n_events=events)
    out_dir = out_dir or run_dir / "check_ratio"
    data = report.to_dict()
    write_text_atomic(out_dir / "check_ratio.json", json.dumps(data, indent=1) + "\n")
    for i, check in enumerate(data["checks"]):
        plot_closure(check, out_dir / f"closure_{i}")
    plot_log_ratio(data, out_dir / "log_ratio")
    click.echo(report.table())
    click.echo(f"wrote {out_dir}")
