"""FitResult's JSON: it validates against FIT_RESULT_SCHEMA, the validator catches what breaks
it, it round-trips; and ``dyfit fit`` prints one JSON object, a table, or writes files."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dyfit.errors import InputError
from dyfit.fitting import FIT_RESULT_SCHEMA, FitResult, TruthRatio, fit
from dyfit.fitting.result import schema_errors
from dyfit.physics.angular import THETA0, THETA_NAMES
from dyfit.physics.prior import ThetaPrior
from dyfit.toy import ToyExperiment

torch.set_num_threads(1)

TOY = ToyExperiment(0.5)
WIDE = ThetaPrior(lambda_=(-0.9, 4.0), mu=(-1.0, 1.0), nu=(-1.0, 1.0))
MODEL = TruthRatio.for_toy(0.5, prior=WIDE, feature_names=("costh", "phi"))
THETA = np.array([1.2, 0.1, 0.2])


@pytest.fixture(scope="module")
def events():
    rng = np.random.default_rng(7)
    return TOY.simulate(4000, THETA, rng), TOY.simulate(12000, THETA0, rng)


@pytest.fixture(scope="module", params=["likelihood", "bce", "bce-adam"])
def result(request, events):
    options = {"minos": True} if request.param == "likelihood" else {}
    return fit(MODEL, *events, method=request.param, **options)


def check_structure(obj):
    """The contract spelled out by hand, independent of the schema and its validator."""
    assert isinstance(obj["method"], str)
    assert isinstance(obj["n_events"], int) and not isinstance(obj["n_events"], bool)
    assert set(obj["parameters"]) == set(THETA_NAMES)
    for entry in obj["parameters"].values():
        assert set(entry) == {"value", "error"}
        assert isinstance(entry["value"], float)
        assert entry["error"] is None or isinstance(entry["error"], float)
    corr = obj["correlation"]
    assert corr is None or (len(corr) == 3 and all(len(row) == 3 for row in corr))
    assert isinstance(obj["converged"], bool)


def test_json_validates(result):
    obj = json.loads(result.dumps())
    assert schema_errors(obj, FIT_RESULT_SCHEMA) == []
    check_structure(obj)
    assert obj["errors"].keys() == {"stat", "nominal"}
    corr = np.array(obj["correlation"])
    np.testing.assert_allclose(np.diag(corr), 1.0)
    assert np.all(np.abs(corr) <= 1.0 + 1e-12)
    if result.method == "bce-adam":
        assert len(obj["history"]) == len(obj["loss_history"]) > 1
    if result.method == "likelihood":
        assert set(obj["minos"]) == set(THETA_NAMES)


def test_json_round_trip(result):
    again = FitResult.from_json(json.loads(result.dumps()))
    assert again.to_json() == result.to_json()
    np.testing.assert_allclose(again.errors, result.errors)


def test_no_covariance_gives_null_errors():
    bare = FitResult("likelihood", 10, np.array([1.0, 0.0, 0.0]), converged=False)
    obj = json.loads(bare.dumps())
    assert schema_errors(obj, FIT_RESULT_SCHEMA) == []
    assert obj["correlation"] is None
    assert all(p["error"] is None for p in obj["parameters"].values())


@pytest.mark.parametrize(
    "breakage, where",
    [
        (lambda o: o.pop("converged"), "missing 'converged'"),
        (lambda o: o.update(n_events=True), "$.n_events"),
        (lambda o: o.update(n_events=4.5), "$.n_events"),
        (lambda o: o["parameters"]["mu"].update(sigma=0.1), "unexpected key 'sigma'"),
        (lambda o: o["parameters"]["nu"].update(error="0.1"), "$.parameters.nu.error"),
        (lambda o: o["parameters"].pop("lambda"), "missing 'lambda'"),
        (lambda o: o.update(correlation=[[1.0, 0.0], [0.0, 1.0]]), "$.correlation"),
        (lambda o: o["errors"].update(stat={"lambda": 0.1}), "$.errors.stat"),
    ],
)
def test_validator_catches_breakage(events, breakage, where):
    obj = fit(MODEL, *events).to_json()
    breakage(obj)
    errors = schema_errors(obj, FIT_RESULT_SCHEMA)
    assert any(where in e for e in errors), errors


@pytest.fixture
def cli(monkeypatch, events):
    from dyfit.cli import fit as fit_cli

    monkeypatch.setattr(fit_cli, "load_inputs", lambda *args, **kwargs: (MODEL, *events))
    return fit_cli.command


def test_fit_command_json(cli):
    out = CliRunner().invoke(cli, ["--model", "m", "--data", __file__, "--json"])
    assert out.exit_code == 0, out.output
    obj = json.loads(out.stdout)  # the whole of stdout is exactly one object
    assert schema_errors(obj, FIT_RESULT_SCHEMA) == [] and obj["method"] == "likelihood"


def test_fit_command_table_and_files(cli, tmp_path):
    args = [
        "--model",
        "m",
        "--data",
        __file__,
        "--method",
        "bce-adam",
        "-o",
        str(tmp_path),
        "--truth",
        "1.2,0.1,0.2",
    ]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("method bce-adam") and "lambda" in out.stdout
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["method"] == "bce-adam"
    for name in ("scans.png", "scans.pdf", "convergence.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_fit_command_bad_options(cli):
    args = ["--model", "m", "--data", __file__, "--method", "bce", "--minos"]
    out = CliRunner().invoke(cli, args, standalone_mode=False)
    assert isinstance(out.exception, InputError)
    out = CliRunner().invoke(
        cli, ["--model", "m", "--data", __file__, "--start", "9,0,0"], standalone_mode=False
    )
    assert isinstance(out.exception, InputError) and "outside" in str(out.exception)


def test_scan_command(cli, tmp_path):
    from dyfit.cli.scan import command

    args = [
        "--model",
        "m",
        "--data",
        __file__,
        "--loss",
        "nll",
        "--points",
        "7",
        "--pair",
        "lambda,nu",
        "-o",
        str(tmp_path),
    ]
    out = CliRunner().invoke(command, args)
    assert out.exit_code == 0, out.output
    record = json.loads((tmp_path / "scan_nll.json").read_text())
    assert [s["parameter"] for s in record["scans"]] == list(THETA_NAMES)
    # Each scan passes through θ̂ (the middle of 7 points), where ΔNLL is zero.
    assert all(abs(s["delta"][3]) < 1e-6 for s in record["scans"])
    assert (tmp_path / "contour_nll_lambda_nu.png").exists()


def test_fit_command_reads_files(events, tmp_path):
    from dyfit.cli.fit import command
    from dyfit.data.io import write_events

    write_events(events[0], tmp_path / "data.parquet")
    write_events(events[1], tmp_path / "nominal.parquet")
    args = ["--model", "truth", "--data", str(tmp_path / "data.parquet"), "--json"]
    out = CliRunner().invoke(command, [*args, "--nominal", str(tmp_path / "nominal.parquet")])
    assert out.exit_code == 0, out.output
    obj = json.loads(out.stdout)
    # The same events fitted in the library give the same numbers.
    direct = fit(TruthRatio(), *events)
    np.testing.assert_allclose([obj["parameters"][n]["value"] for n in THETA_NAMES], direct.values)
    out = CliRunner().invoke(command, args, standalone_mode=False)
    assert isinstance(out.exception, InputError) and "--nominal" in str(out.exception)
