"""``dyfit fit``: fit θ = (λ, μ, ν) to a data file with a trained ratio model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from dyfit.cli.options import data_options, nominal_options
from dyfit.fitting.methods import BINNED_METHODS, FIT_METHODS, NEURAL_METHODS

__all__ = ["command", "load_model", "recorded_source", "load_inputs", "read_data"]


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
    model_dir: str | None,
    data_path: str,
    nominal_path: str | None,
    nominal_events: int | None,
    seed: int,
    *,
    lean: bool = False,
    data: Any = None,
    nominal_columns: dict[str, str] | None = None,
    cuts: tuple[str, ...] | list[str] = (),
    nominal_needed: Any = None,
) -> tuple[Any, Any, Any]:
    """The model (None without ``model_dir``), the data and the nominal sample (read, or
    simulated with the model's recorded source). ``lean`` reads only the columns a neural
    fit uses (:func:`~dyfit.fitting.evaluate.fit_columns`): large files fit in less memory.
    ``data``: events already read and selected (:func:`dyfit.data.recipe.read_selected`);
    the nominal sample is then read with ``nominal_columns`` and cut with the same ``cuts``.
    ``nominal_needed(data) -> bool``: whether to simulate the nominal sample (None: always);
    without it, and without ``nominal_path``, the nominal sample is None."""
    import numpy as np

    from dyfit.data.io import read_events
    from dyfit.data.selection import apply_cuts
    from dyfit.errors import InputError
    from dyfit.fitting.evaluate import fit_columns, nominal_sample

    model = None if model_dir is None else load_model(model_dir)
    lean = lean and model is not None and data is None  # cuts may read any column
    if data is None:
        data = read_events(data_path, only=fit_columns(model) if lean else None)
    if nominal_path is not None and nominal_columns:
        nominal = read_events(nominal_path, columns=nominal_columns)
    elif nominal_path is not None:
        nominal = read_events(nominal_path, only=fit_columns(model, nominal=True) if lean else None)
    elif nominal_needed is not None and not nominal_needed(data):
        return model, data, None  # e.g. method cvae without the guard: nothing reads it
    elif model_dir is None:
        raise InputError("give --nominal FILE, or --model RUN_DIR to simulate it with its source")
    else:
        n = nominal_events if nominal_events is not None else 3 * len(data)
        nominal = nominal_sample(recorded_source(model_dir), n, np.random.default_rng(seed))
    nominal, _ = apply_cuts(nominal, cuts)  # the data's selection, on the simulation too
    return model, data, nominal


@click.command("fit")
@click.option(
    "--model",
    "model_dir",
    help="Run directory of a trained model, or 'truth' for the truth-level oracle "
    "(needs true_costh, true_phi). The binned methods need none with --nominal.",
)
@data_options
@click.option(
    "--guard/--no-guard",
    default=None,
    help="Compare data with the simulation reweighted to the fit [default: on for data "
    "without truth columns].",
)
@click.option(
    "--method",
    type=click.Choice(FIT_METHODS),
    default="likelihood",
    show_default=True,
)
@nominal_options
@click.option(
    "--dctr",
    "dctr_dir",
    type=click.Path(file_okay=False),
    help="cvae: run folder of a DCTR reweighter (dyfit train-dctr) that corrects the cVAE.",
)
@click.option("--start", help="Start theta as L,M,V [default: 1,0,0].")
@click.option("--minos", is_flag=True, help="Also run MINOS (likelihood only).")
@click.option("--ensemble", multiple=True, help="Further run directories: training spread.")
@click.option(
    "--ensemble-dir",
    type=click.Path(file_okay=False),
    help="Add the replicas RUN_DIR/replica-k (dyfit train --replicas K) to --ensemble.",
)
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
@click.option(
    "--bins",
    help="Binned methods: NAME=COUNT or NAME=E0:E1:... for costh, phi, mass, pT, xF "
    "[default: costh=20,phi=12].",
)
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    help="unfold: D'Agostini iterations [10]; binned-acceptance: acceptance passes [5].",
)
def command(
    model_dir,
    data_path,
    columns,
    weight,
    cut,
    nominal_columns,
    config,
    dry_run,
    guard,
    method,
    nominal_path,
    nominal_events,
    dctr_dir,
    start,
    minos,
    ensemble,
    ensemble_dir,
    epochs,
    lr,
    truth,
    seed,
    as_json,
    output,
    drop_invalid,
    bins,
    iterations,
) -> None:
    """Fit (lambda, mu, nu) with a frozen ratio model; errors include the nominal sample."""
    from dyfit.atomic import write_text_atomic
    from dyfit.errors import InputError
    from dyfit.fitting import fit
    from dyfit.physics.prior import parse_theta

    selected, nominal_path, nominal_columns, cut = read_data(
        config, data_path, columns, weight, cut, nominal_path, nominal_columns, dry_run
    )
    if dry_run:
        return
    if model_dir is None and method not in BINNED_METHODS:
        raise InputError(f"--method {method} needs --model RUN_DIR")
    model, data, nominal = load_inputs(
        model_dir,
        data_path,
        nominal_path,
        nominal_events,
        seed,
        lean=method in NEURAL_METHODS,
        data=selected,
        nominal_columns=nominal_columns,
        cuts=cut,
        # the cVAE fit reads no nominal sample; only the guard would
        nominal_needed=None
        if method != "cvae"
        else (lambda d: guard if guard is not None else "true_costh" not in d),
    )
    options: dict[str, Any] = {"drop_invalid": drop_invalid}
    if start is not None:
        options["start"] = parse_theta(start)
    if ensemble_dir is not None:
        from dyfit.training.replicas import replica_dirs

        ensemble = (*ensemble, *map(str, replica_dirs(ensemble_dir)))
    if method != "likelihood" and (minos or ensemble):
        raise InputError("--minos and --ensemble apply to --method likelihood only")
    if method == "likelihood":
        options.update(minos=minos, ensemble=[load_model(d) for d in ensemble])
    if dctr_dir is not None:
        if method != "cvae":
            raise InputError("--dctr applies to --method cvae only")
        from dyfit.training.dctr_run import load_reweighter

        options["correction"] = load_reweighter(dctr_dir, model_dir)
    if method == "bce-adam":
        options.update(epochs=epochs, lr=lr)
    if method in BINNED_METHODS:
        options.update(bins=bins, iterations=iterations)
    elif bins or iterations:
        raise InputError("--bins and --iterations apply to the binned methods only")
    result = fit(model, data, nominal, method=method, **options)
    report = None
    if guard if guard is not None else "true_costh" not in data:
        guard_model = model if method in NEURAL_METHODS else None
        report = _guard(guard_model, data, nominal, result, seed, drop_invalid)
        click.echo(report.table(), err=as_json)  # stdout stays one JSON object
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
        if report is not None:
            from dyfit.plots.guard import plot_guard

            plot_guard(report, out / "guard")


def read_data(config, data_path, columns, weight, cuts, nominal_path, nominal_columns, dry_run):
    """The options of :func:`~dyfit.cli.options.data_options` as (selected data or None, the
    nominal file, its mapping, the cuts); None when a plain ``--data FILE`` is to be read by
    :func:`load_inputs`; with ``dry_run`` the summary is printed."""
    from dyfit.data.recipe import DataSpec, describe, load_spec, merge_spec, read_selected

    if not (config or columns or weight or cuts or nominal_columns or dry_run or not data_path):
        return None, nominal_path, nominal_columns, cuts

    spec = merge_spec(
        load_spec(config) if config else None,
        file=data_path,
        columns=columns,
        weight=weight,
        cuts=cuts,
        nominal=nominal_path,
        nominal_columns=nominal_columns,
    )
    data, summary = read_selected(spec)
    if dry_run:
        click.echo("data\n" + describe(summary))
        if spec.nominal is not None:
            nominal = DataSpec(file=spec.nominal, columns=spec.nominal_columns, cuts=spec.cuts)
            click.echo("nominal\n" + describe(read_selected(nominal)[1]))
        else:
            click.echo("nominal: simulated with the model's event source, then cut alike")
    return data, spec.nominal, spec.nominal_columns, spec.cuts


def _guard(model, data, nominal, result, seed: int, drop_invalid: bool):
    """The mismodelling guard at θ̂ (:mod:`dyfit.fitting.guard`), recorded in the result."""
    import numpy as np

    from dyfit.fitting.guard import mismodelling_guard

    rng = np.random.default_rng(seed)
    report = mismodelling_guard(
        model, data, nominal, result.values, rng=rng, drop_invalid=drop_invalid
    )
    result.extra["guard"] = report.to_dict()
    result.warnings.extend(report.failures)
    return report


def _plots(model, data, nominal, result, out: Path, truth, drop_invalid: bool) -> None:
    """The three 1-D scans through θ̂ and, for Adam, the convergence figure; for the binned
    methods the data against the fitted template in cosθ and φ."""
    if result.method in BINNED_METHODS:
        from dyfit.plots.compare import plot_projections

        plot_projections(data, nominal, result, out / "projections")
        return
    if result.method == "cvae":  # its loss is the cVAE bound, not an nll/bce scan objective
        if result.history is not None:
            from dyfit.plots.fit import plot_convergence

            plot_convergence(result, out / "convergence", truth)
        return
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
