"""``dyfit fit``: fit θ = (λ, μ, ν) to a data file with a trained ratio model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from dyfit.cli.options import nominal_options
from dyfit.fitting.methods import BINNED_METHODS, FIT_METHODS

__all__ = ["command", "load_model", "recorded_source", "load_inputs"]


def load_model(model_dir: str) -> Any:
    """A trained model from its run directory; "truth" gives the truth-level oracle."""
    if model_dir == "truth":
        from dyfit.fitting.oracle import TruthRatio

        return TruthRatio()
    from dyfit.training.checkpoint import load_model as load

    return load(model_dir)


def recorded_source(model_dir: str, workers: int = 1) -> Any:
    """The event source a trained model records in its manifest (to simulate nominal events)."""
    from dyfit.errors import InputError

    if model_dir == "truth":
        raise InputError("the truth-level oracle records no event source; give --nominal FILE")
    from dyfit.training.checkpoint import read_manifest
    from dyfit.training.samples import simulator_from_provenance

    provenance = read_manifest(model_dir).get("provenance")
    if not provenance:
        raise InputError(f"{model_dir} records no event source; give --nominal FILE")
    return simulator_from_provenance(provenance, workers)


def load_inputs(
    model_dir: str | None, data_path: str, nominal_path: str | None, nominal_events: int | None, seed: int
) -> tuple[Any, Any, Any]:
    """The model (None without ``model_dir``), the data and the nominal sample (read, or
    simulated with the model's recorded source)."""
    import numpy as np

    from dyfit.data.io import read_events
    from dyfit.errors import InputError
    from dyfit.fitting.evaluate import nominal_sample

    model = None if model_dir is None else load_model(model_dir)
    data = read_events(data_path)
    if nominal_path is not None:
        nominal = read_events(nominal_path)
    elif model_dir is None:
        raise InputError("give --nominal FILE, or --model RUN_DIR to simulate it with its source")
    else:
        n = nominal_events if nominal_events is not None else 3 * len(data)
        nominal = nominal_sample(recorded_source(model_dir), n, np.random.default_rng(seed))
    return model, data, nominal


@click.command("fit")
@click.option(
    "--model",
    "model_dir",
    help="Run directory of a trained model, or 'truth' for the truth-level oracle "
    "(needs true_costh, true_phi). The binned methods need none with --nominal.",
)
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Events to fit (Parquet, ROOT or CSV).",
)
@click.option(
    "--method",
    type=click.Choice(FIT_METHODS),
    default="likelihood",
    show_default=True,
)
@nominal_options
@click.option("--start", help="Start theta as L,M,V [default: 1,0,0].")
@click.option("--minos", is_flag=True, help="Also run MINOS (likelihood only).")
@click.option("--ensemble", multiple=True, help="Further run directories: training spread.")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="bce-adam: epoch limit.",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=0.02,
    show_default=True,
    help="bce-adam: Adam step size.",
)
@click.option("--truth", help="Injected theta L,M,V, marked on the plots.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the nominal sample.")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
@click.option(
    "-o", "--output", type=click.Path(file_okay=False), help="Write result.json and plots here."
)
@click.option("--drop-invalid", is_flag=True, help="Drop events with NaN/inf instead of failing.")
def command(
    model_dir,
    data_path,
    method,
    nominal_path,
    nominal_events,
    start,
    minos,
    ensemble,
    epochs,
    lr,
    truth,
    seed,
    as_json,
    output,
    drop_invalid,
) -> None:
    """Fit (lambda, mu, nu) with a frozen ratio model; errors include the nominal sample."""
    from dyfit.atomic import write_text_atomic
    from dyfit.errors import InputError
    from dyfit.fitting import fit
    from dyfit.physics.prior import parse_theta

    if model_dir is None and method not in BINNED_METHODS:
        raise InputError(f"--method {method} needs --model RUN_DIR")
    model, data, nominal = load_inputs(model_dir, data_path, nominal_path, nominal_events, seed)
    options: dict[str, Any] = {"drop_invalid": drop_invalid}
    if start is not None:
        options["start"] = parse_theta(start)
    if method != "likelihood" and (minos or ensemble):
        raise InputError("--minos and --ensemble apply to --method likelihood only")
    if method == "likelihood":
        options.update(minos=minos, ensemble=[load_model(d) for d in ensemble])
    if method == "bce-adam":
        options.update(epochs=epochs, lr=lr)
    result = fit(model, data, nominal, method=method, **options)
    click.echo(json.dumps(result.to_json(), allow_nan=False) if as_json else result.table())
    if output is not None:
        out = Path(output)
        write_text_atomic(out / "result.json", result.dumps() + "\n")
        _plots(
            model,
            data,
            nominal,
            result,
            out,
            None if truth is None else parse_theta(truth),
            drop_invalid,
        )


def _plots(model, data, nominal, result, out: Path, truth, drop_invalid: bool) -> None:
    """The three 1-D scans through θ̂ and, for Adam, the convergence figure."""
    from dyfit.fitting.scan import loss_objective, scan_1d
    from dyfit.physics.angular import THETA_NAMES
    from dyfit.plots.fit import plot_convergence, plot_scans

    loss = "nll" if result.method == "likelihood" else "bce"
    objective = loss_objective(model, data, nominal, loss, drop_invalid)
    scans = [
        scan_1d(objective, result.values, n, model.prior, result.errors, n_points=25)
        for n in THETA_NAMES
    ]
    plot_scans(scans, out / "scans", truth)
    if result.history is not None:
        plot_convergence(result, out / "convergence", truth)
