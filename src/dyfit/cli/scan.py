"""``dyfit scan``: the loss along each parameter and over pairs, around the fitted θ."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dyfit.cli.options import nominal_options

__all__ = ["command"]


def _json(values):
    """An array as nested lists, NaN (outside the model's valid range) as null."""
    import numpy as np

    return np.where(np.isfinite(values), values, None).tolist()


@click.command("scan")
@click.option("--model", "model_dir", required=True, help="Run directory, or 'truth'.")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False))
@nominal_options
@click.option("--loss", type=click.Choice(["nll", "bce"]), default="nll", show_default=True)
@click.option(
    "--parameter",
    "parameters",
    multiple=True,
    type=click.Choice(["lambda", "mu", "nu"]),
    help="1-D scans [default: all three].",
)
@click.option("--pair", "pairs", multiple=True, help="2-D contour of a pair, e.g. lambda,nu.")
@click.option("--profile", is_flag=True, help="Minimise the other parameters at each point.")
@click.option("--points", type=click.IntRange(min=3), default=41, show_default=True)
@click.option("--at", "at", help="Scan through this theta L,M,V instead of fitting first.")
@click.option("--truth", help="Injected theta L,M,V, marked on the plots.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the nominal sample.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False))
@click.option("--drop-invalid", is_flag=True, help="Drop events with NaN/inf instead of failing.")
def command(
    model_dir,
    data_path,
    nominal_path,
    nominal_events,
    loss,
    parameters,
    pairs,
    profile,
    points,
    at,
    truth,
    seed,
    output,
    drop_invalid,
) -> None:
    """Scan the NLL or the BCE through the minimum (the proposal's Figure 2) and draw contours."""
    from dyfit.atomic import write_text_atomic
    from dyfit.cli.fit import load_inputs
    from dyfit.errors import InputError
    from dyfit.fitting import fit
    from dyfit.fitting.scan import loss_objective, scan_1d, scan_2d
    from dyfit.physics.prior import parse_theta
    from dyfit.plots.fit import plot_contour, plot_scans

    model, data, nominal = load_inputs(model_dir, data_path, nominal_path, nominal_events, seed)
    injected = None if truth is None else parse_theta(truth)
    errors = None
    if at is None:
        method = "likelihood" if loss == "nll" else "bce"
        result = fit(model, data, nominal, method=method, drop_invalid=drop_invalid)
        theta_hat, errors = result.values, result.errors
    else:
        theta_hat = parse_theta(at)
    objective = loss_objective(model, data, nominal, loss, drop_invalid)
    out = Path(output)
    record = {"loss": loss, "theta_hat": theta_hat.tolist(), "profiled": profile, "scans": []}
    scans = [
        scan_1d(objective, theta_hat, p, model.prior, errors, n_points=points, profile=profile)
        for p in (parameters or ("lambda", "mu", "nu"))
    ]
    plot_scans(scans, out / f"scan_{loss}", injected)
    record["scans"] = [
        {"parameter": s.parameter, "grid": s.grid.tolist(), "delta": _json(s.delta)} for s in scans
    ]
    for text in pairs:
        pair = tuple(p.strip() for p in text.split(","))
        if len(pair) != 2:
            raise InputError(f"--pair {text!r}: give two parameters, e.g. lambda,nu")
        s2 = scan_2d(objective, theta_hat, pair, model.prior, errors, min(points, 31), profile)
        plot_contour(s2, out / f"contour_{loss}_{pair[0]}_{pair[1]}", injected)
        record.setdefault("contours", []).append(
            {
                "parameters": list(pair),
                "x": s2.x.tolist(),
                "y": s2.y.tolist(),
                "delta": _json(s2.delta),
            }
        )
    write_text_atomic(out / f"scan_{loss}.json", json.dumps(record, indent=1, allow_nan=False))
    click.echo(f"wrote scans of the {loss} to {out}")
