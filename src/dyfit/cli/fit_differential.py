"""``dyfit fit-differential``: fit θ = (λ, μ, ν) in bins of a kinematic variable.

Example:
    dyfit fit-differential --model runs/moments --data data.parquet --nominal nominal.parquet \\
        --bin pT=0,0.5,1,1.5,2.5 --parametrise pT:nu=poly1 --truth-curve nu_pt.toml -o diff/
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from dyfit.cli.options import data_options, nominal_options
from dyfit.fitting.methods import BINNED_METHODS, FIT_METHODS

__all__ = ["command"]


@click.command("fit-differential")
@click.option("--model", "model_dir", help="Run directory of a trained model, or 'truth'.")
@data_options
@nominal_options
@click.option(
    "--bin",
    "bins",
    required=True,
    metavar="VAR=e0,e1,...",
    help="Bin variable (a column of data and nominal) and edges; bins [e_k, e_k+1), the last "
    "one closed.",
)
@click.option("--method", type=click.Choice(FIT_METHODS), default="likelihood", show_default=True)
@click.option(
    "--parametrise",
    metavar="VAR:polyK",
    help="Also fit theta(VAR) as polynomials, unbinned (moments models): VAR:poly2 or "
    "VAR:nu=poly1,lambda=poly1.",
)
@click.option(
    "--truth-curve",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE.toml",
    help="The injected theta curve (as for generate --theta-curve): overlaid, and chi2 per bin.",
)
@click.option(
    "--min-events",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Bins with fewer data events are not fitted.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the nominal sample.")
@click.option("--drop-invalid", is_flag=True, help="Drop events with NaN/inf instead of failing.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json on stdout.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Output dir.")
def command(
    model_dir,
    data_path,
    columns,
    weight,
    cut,
    nominal_columns,
    config,
    dry_run,
    nominal_path,
    nominal_events,
    bins,
    method,
    parametrise,
    truth_curve,
    min_events,
    seed,
    drop_invalid,
    as_json,
    output,
) -> None:
    """Fit (lambda, mu, nu) per bin; write table.md, results.json, hepdata.yaml/json, plots."""
    from dyfit.cli.fit import load_inputs, read_data
    from dyfit.errors import InputError
    from dyfit.fitting.differential import fit_differential, parse_binning, reference_in_bins
    from dyfit.fitting.parametrised import (
        curve_coefficients,
        fit_parametrised,
        parse_parametrisation,
    )
    from dyfit.physics.curves import load_curve

    binning = parse_binning(bins)
    par = None if parametrise is None else parse_parametrisation(parametrise)
    curve = None if truth_curve is None else load_curve(truth_curve)
    if model_dir is None and (method not in BINNED_METHODS or par is not None):
        raise InputError(f"--method {method} and --parametrise need --model RUN_DIR")
    selected, nominal_path, nominal_columns, cut = read_data(
        config, data_path, columns, weight, cut, nominal_path, nominal_columns, dry_run
    )
    if dry_run:
        return
    model, data, nominal = load_inputs(
        model_dir,
        data_path,
        nominal_path,
        nominal_events,
        seed,
        data=selected,
        nominal_columns=nominal_columns,
        cuts=cut,
    )
    result = fit_differential(
        model, data, nominal, binning, method, min_events=min_events, drop_invalid=drop_invalid
    )
    reference = reference_in_bins(data, binning, curve)
    if reference is not None:
        chi2, ndf, p = result.chi2(reference)
        result.extra["reference"] = reference.tolist()
        result.extra["chi2_reference"] = {"chi2": chi2, "ndf": ndf, "p_value": p}
    fitted = None
    if par is not None:
        fitted = fit_parametrised(model, data, nominal, par, drop_invalid=drop_invalid)
        result.extra["parametrised"] = fitted.to_json()
        truth = None if curve is None else curve_coefficients(curve, par)
        if truth is not None:
            chi2, ndf, p = fitted.chi2(truth)
            result.extra["parametrised"]["chi2_truth"] = {"chi2": chi2, "ndf": ndf, "p_value": p}
    _write(result, Path(output), data.meta, curve, reference, fitted)
    record = result.to_json()
    click.echo(json.dumps(record, allow_nan=False) if as_json else result.table())
    if not as_json and reference is not None:
        chi2 = result.extra["chi2_reference"]
        click.echo(f"chi2/ndf against the injected theta: {chi2['chi2']:.2f}/{chi2['ndf']}")


def _write(result, out: Path, meta: dict, curve, reference, fitted) -> None:
    """table.md, results.json, hepdata.yaml/json and the two figures, each atomically."""
    import numpy as np

    from dyfit.atomic import write_text_atomic
    from dyfit.fitting.hepdata import write_hepdata
    from dyfit.physics.kinematics import M_PROTON
    from dyfit.plots.differential import plot_differential, plot_lam_tung

    write_text_atomic(out / "table.md", result.table() + "\n")
    write_text_atomic(
        out / "results.json", json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n"
    )
    beam = (meta.get("generator_config") or {}).get("beam_energy")
    qualifiers = {}
    if isinstance(beam, int | float):
        qualifiers["SQRT(S)"] = (round(float(np.sqrt(2 * M_PROTON * (beam + M_PROTON))), 3), "GEV")
    write_hepdata(result, out, qualifiers)
    plot_differential(result, out / "theta", curve, reference, fitted)
    plot_lam_tung(result, out / "lam_tung", curve, fitted)
