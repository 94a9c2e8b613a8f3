"""Differential fits: binning and selection, θ recovered per bin at constant θ (toy), an
injected ν(pT) curve recovered per bin and by the parametrised fit (generator truth level,
the exact oracle), the HEPData table, the θ curves in the generator and the CLI."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dyfit.config import validate
from dyfit.data.events import EventTable
from dyfit.data.io import write_events
from dyfit.errors import ConfigError, InputError
from dyfit.fitting import TruthRatio
from dyfit.fitting.differential import (
    Binning,
    fit_differential,
    lam_tung,
    parse_binning,
    reference_in_bins,
)
from dyfit.fitting.hepdata import hepdata_table, to_yaml, validate_table
from dyfit.fitting.parametrised import (
    curve_coefficients,
    fit_parametrised,
    parse_parametrisation,
)
from dyfit.physics.curves import ThetaCurve, load_curve
from dyfit.physics.generator import generate_truth
from dyfit.physics.prior import ThetaPrior
from dyfit.toy import ToyExperiment

torch.set_num_threads(1)

# Wide enough that no fit below comes near an edge and θ(v) stays inside over the data.
WIDE = ThetaPrior(lambda_=(-0.9, 4.0), mu=(-1.0, 1.0), nu=(-1.0, 1.0))
# ν rising from 0 to 0.3 over 0 < pT < 3 GeV, flat beyond (as in NA10/E615 pion data).
NU_RISING = ThetaCurve.model_validate({"variable": "pT", "nu": {"knots": [[0, 0], [3, 0.3]]}})
# A polynomial curve: the parametrised fit's own form, coefficients known.
NU_LINEAR = ThetaCurve.model_validate(
    {"variable": "pT", "lambda": {"value": 1.1}, "nu": {"poly": [0.02, 0.1]}}
)
P_MIN = 1e-3  # χ² tests fail below this p-value: a false alarm in one run of 1000


@pytest.fixture(scope="module")
def nominal_truth():
    return generate_truth(200_000, (1.0, 0.0, 0.0), rng=np.random.default_rng(2))


def test_binning_follows_numpy_histogram():
    b = Binning("pT", (0.0, 1.0, 2.0))
    v = np.array([-0.5, 0.0, 0.5, 1.0, 2.0, 2.5, np.nan])
    np.testing.assert_array_equal(b.index(v), [-1, 0, 0, 1, 1, 2, -2])
    # an independent oracle on random values, edges included (ties on purpose)
    edges = (0.0, 0.3, 0.5, 1.25, 2.0)
    x = np.round(np.random.default_rng(0).uniform(-0.5, 2.5, 5000), 1)
    k = Binning("x", edges).index(x)
    np.testing.assert_array_equal(
        np.bincount(k[k >= 0], minlength=5)[:4], np.histogram(x, edges)[0]
    )
    assert np.sum(k == -1) == np.sum(x < 0) and np.sum(k == 4) == np.sum(x > 2.0)
    assert parse_binning(" pT = 0, 0.5,2.5 ") == Binning("pT", (0.0, 0.5, 2.5))


@pytest.mark.parametrize("text", ["pT", "pT=1", "pT=0,x", "=0,1", "pT=1,0", "pT=0,0,1", "pT=0,inf"])
def test_bad_binning(text):
    with pytest.raises(InputError):
        parse_binning(text)


def test_constant_theta_recovered_in_every_bin():
    """The toy (|cosθ| < 0.8, exact ratio) binned in its inert mass: each bin fits θ alone."""
    toy, theta = ToyExperiment(0.8), np.array([1.2, 0.1, 0.2])
    data = toy.simulate(40_000, theta, np.random.default_rng(11))
    nominal = toy.simulate(80_000, (1.0, 0.0, 0.0), np.random.default_rng(12))
    binning = parse_binning("mass=4.6,5,5.5,6.5,8,8.02")
    res = fit_differential(TruthRatio(WIDE), data, nominal, binning, min_events=50)
    counts = np.histogram(data["mass"], binning.edges)[0]
    assert [b.n_events for b in res.bins] == counts.tolist()
    assert res.underflow == np.sum(data["mass"] < 4.6) > 0
    assert res.overflow == np.sum(data["mass"] > 8.02) > 0
    # the last bin holds < 50 events: reported, not fitted
    assert counts[-1] < 50 and res.bins[-1].result is None and "skipped" in res.bins[-1].note
    fitted = [b.result for b in res.bins[:-1]]
    assert [r.n_events for r in fitted] == counts[:-1].tolist()
    assert all(r.converged for r in fitted)
    # Each bin is an independent fit with total covariance V_b: Σ_b dᵀV⁻¹d ~ χ²(3 × 4).
    chi2, ndf, p = res.chi2(np.tile(theta, (binning.n_bins, 1)))
    assert ndf == 12 and p > P_MIN, (chi2, ndf)
    assert "| [8, 8.02] |" in res.table() and "—" in res.table()


def test_lam_tung_error_from_covariance():
    cov = np.array([[0.04, 0.0, -0.01], [0.0, 0.01, 0.0], [-0.01, 0.0, 0.01]])
    value, error = lam_tung([1.1, 0.0, 0.05], cov)
    # Var(λ + 2ν) = Var λ + 4 Var ν + 4 Cov(λ, ν)
    assert value == pytest.approx(1 - 1.1 - 0.1)
    assert error == pytest.approx(np.sqrt(0.04 + 4 * 0.01 - 4 * 0.01))


@pytest.fixture(scope="module")
def rising(nominal_truth):
    data = generate_truth(100_000, NU_RISING, rng=np.random.default_rng(1))
    binning = parse_binning("true_pT=0,0.5,1,1.5,2,3")
    return data, binning, fit_differential(TruthRatio(WIDE), data, nominal_truth, binning)


def test_injected_curve_recovered_per_bin(rising):
    data, binning, res = rising
    # the generator kept θ(true pT) per event: the curve and the θ columns agree exactly
    reference = reference_in_bins(data, binning)
    np.testing.assert_allclose(reference, reference_in_bins(data, binning, NU_RISING))
    assert np.all(np.diff(reference[:, 2]) > 0.04)  # ν rises bin to bin
    # Truth level, no acceptance: the bin's events follow the density at their mean θ
    # (linear in θ, λ common), so θ̂_b estimates the reference with covariance V_b.
    chi2, ndf, p = res.chi2(reference)
    assert ndf == 15 and p > P_MIN, chi2
    # ...and the data tell the rise from a constant ν at its average (the test has power)
    flat = np.tile(reference.mean(0), (binning.n_bins, 1))
    assert res.chi2(flat, ("nu",))[2] < P_MIN


def test_parametrised_fit_recovers_coefficients(nominal_truth):
    data = generate_truth(100_000, NU_LINEAR, rng=np.random.default_rng(3))
    par = parse_parametrisation("true_pT:poly1")
    fitted = fit_parametrised(TruthRatio(WIDE), data, nominal_truth, par)
    truth = curve_coefficients(NU_LINEAR, par)
    np.testing.assert_array_equal(truth, [1.1, 0.0, 0.0, 0.0, 0.02, 0.1])
    assert fitted.converged and fitted.parametrisation.names[-1] == "nu_1"
    # 6 coefficients with the full covariance (stat + nominal): χ²(6)
    chi2, ndf, p = fitted.chi2(truth)
    assert ndf == 6 and p > P_MIN, (fitted.values, fitted.errors)
    # its errors agree with the per-bin information: σ(ν slope) ~ 0.03 for 10⁵ events
    assert 0.01 < fitted.errors[-1] < 0.06
    v = np.array([0.5, 2.0])
    np.testing.assert_allclose(fitted.theta(v)[:, 2], fitted.values[4] + fitted.values[5] * v)


def test_parametrisation_parsing_and_limits(nominal_truth):
    assert parse_parametrisation("pT:poly2").degrees == (2, 2, 2)
    assert parse_parametrisation("pT:nu=poly1,lambda=poly2").degrees == (2, 0, 1)
    for bad in ("pT", "pT:poly", "pT:poly9", "pT:rho=poly1", "pT:spline2"):
        with pytest.raises(InputError):
            parse_parametrisation(bad)
    assert curve_coefficients(NU_RISING, parse_parametrisation("pT:poly1")) is None  # knots
    assert curve_coefficients(NU_LINEAR, parse_parametrisation("mass:poly1")) is None

    class Classifier(TruthRatio):
        kind = "classifier"

    with pytest.raises(InputError, match="moments model"):
        fit_parametrised(
            Classifier(), nominal_truth, nominal_truth, parse_parametrisation("pT:poly1")
        )


def test_hepdata_table_validates(rising):
    yaml = pytest.importorskip("yaml")
    _, binning, res = rising
    table = hepdata_table(res, {"SQRT(S)": (15.06, "GEV")})
    assert validate_table(table) == []
    assert table["independent_variables"][0]["header"] == {
        "name": "PT (generator level)",
        "units": "GEV",
    }
    names = [d["header"]["name"] for d in table["dependent_variables"]]
    assert names == ["LAMBDA", "MU", "NU", "1-LAMBDA-2NU"]
    nu = table["dependent_variables"][2]["values"]
    assert [v["value"] for v in nu] == pytest.approx(res.values[:, 2].tolist())
    # the error sources add up to the total
    total = [np.hypot(*[e["symerror"] for e in v["errors"]]) for v in nu]
    assert total == pytest.approx(res.errors[:, 2].tolist())
    assert yaml.safe_load(to_yaml(table)) == table == json.loads(json.dumps(table))
    # the validator does reject what HEPData would
    broken = json.loads(json.dumps(table))
    del broken["dependent_variables"][0]["values"][1]
    assert validate_table(broken) and validate_table({"independent_variables": []})


def test_yaml_emitter_round_trip():
    yaml = pytest.importorskip("yaml")
    odd = {"a": [1e-05, -3e20, 0.5, "it's: # x", None, True, [], {}, [[1, 2], {"x": [{}]}]]}
    assert yaml.safe_load(to_yaml(odd)) == odd


def test_theta_curve_config(tmp_path):
    path = tmp_path / "curve.toml"
    path.write_text('variable = "pT"\nnu = { knots = [[0.0, 0.0], [3.0, 0.3]] }\n')
    curve = load_curve(path)
    assert curve == NU_RISING
    np.testing.assert_allclose(curve([0.0, 1.5, 9.0]), [[1, 0, 0], [1, 0, 0.15], [1, 0, 0.3]])
    bad = [
        {"variable": "phi"},
        {"variable": "pT", "nu": {"value": 0.1, "poly": [0.1]}},
        {"variable": "pT", "nu": {"knots": [[1, 0], [0, 0.1]]}},
        {"variable": "pT", "nu": {"knots": [[0, 0], [3, 3.0]]}},  # ν = 3 > 2 is unphysical
        {"variable": "pT", "rho": {"value": 1}},
    ]
    for fields in bad:
        with pytest.raises(ConfigError):
            validate(ThetaCurve, fields)


def test_generator_draws_theta_from_truth_kinematics():
    data = generate_truth(5000, NU_LINEAR, rng=np.random.default_rng(4))
    np.testing.assert_allclose(data["theta_nu"], 0.02 + 0.1 * data["true_pT"])
    np.testing.assert_allclose(data["theta_lambda"], 1.1)
    assert data.meta["theta_curve"]["variable"] == "pT"
    steep = ThetaCurve.model_validate({"variable": "x1", "nu": {"poly": [0.0, 40.0]}})
    with pytest.raises(InputError, match="unphysical theta"):
        generate_truth(1000, steep, rng=np.random.default_rng(5))


def test_simulation_accepts_a_curve():
    from dyfit.simulation import Simulation

    events = Simulation().simulate(300, NU_RISING, np.random.default_rng(6))
    assert len(events) == 300
    np.testing.assert_allclose(events["theta_nu"], NU_RISING(events["true_pT"])[:, 2])


def test_cli_writes_every_output(tmp_path, nominal_truth):
    from dyfit.cli.fit_differential import command

    (tmp_path / "curve.toml").write_text('variable = "pT"\nnu = { poly = [0.0, 0.1] }\n')
    data = generate_truth(20_000, load_curve(tmp_path / "curve.toml"), rng=np.random.default_rng(7))
    write_events(data, tmp_path / "data.parquet")
    write_events(nominal_truth.head(50_000), tmp_path / "nominal.parquet")
    args = ["--model", "truth", "--data", str(tmp_path / "data.parquet")]
    args += ["--nominal", str(tmp_path / "nominal.parquet"), "--bin", "true_pT=0,1,2,5"]
    args += ["--parametrise", "true_pT:nu=poly1", "--truth-curve", str(tmp_path / "curve.toml")]
    out = tmp_path / "out"
    result = CliRunner().invoke(command, [*args, "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record == json.loads((out / "results.json").read_text())
    assert [b["n_events"] for b in record["bins"]] == np.histogram(data["true_pT"], [0, 1, 2, 5])[
        0
    ].tolist()
    assert record["parametrised"]["chi2_truth"]["ndf"] == 4  # λ0, μ0, ν0, ν1
    hep = json.loads((out / "hepdata.json").read_text())
    assert validate_table(hep) == []
    names = ["table.md", "hepdata.yaml", "theta.png", "theta.pdf", "lam_tung.png"]
    assert all((out / n).stat().st_size > 0 for n in names)
    bad = CliRunner().invoke(command, [*args[:-4], "--bin", "pT=1,0", "-o", str(out)])
    assert bad.exit_code != 0 and isinstance(bad.exception, InputError)


def test_cli_reads_foreign_names_and_cuts_like_fit(tmp_path, nominal_truth):
    """fit-differential takes fit's data options: a renamed column, a cut on data and nominal."""
    from dyfit.cli.fit_differential import command

    data = generate_truth(20_000, (1.0, 0.0, 0.1), rng=np.random.default_rng(8))
    renamed = EventTable(
        {("dimuon_pt" if k == "true_pT" else k): v for k, v in data.columns.items()}
    )
    write_events(renamed, tmp_path / "data.parquet")
    write_events(nominal_truth.head(50_000), tmp_path / "nominal.parquet")
    args = ["--model", "truth", "--data", str(tmp_path / "data.parquet")]
    args += ["--columns", "true_pT=dimuon_pt", "--cut", "true_pT < 2"]
    args += ["--nominal", str(tmp_path / "nominal.parquet"), "--bin", "true_pT=0,1,2,5"]
    result = CliRunner().invoke(command, [*args, "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    counts = [b["n_events"] for b in json.loads(result.output)["bins"]]
    assert counts == [*np.histogram(data["true_pT"], [0, 1, 2])[0].tolist(), 0]
    dry = CliRunner().invoke(command, [*args, "--dry-run", "-o", str(tmp_path / "dry")])
    assert dry.exit_code == 0 and "after cut 'true_pT < 2'" in dry.output
    assert not (tmp_path / "dry").exists()
