"""Pseudo-experiment studies on the toy: coverage with the nominal-sample term, reproducible
toys, outputs and the ``dyfit study`` command."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dyfit.errors import InputError
from dyfit.fitting import TruthRatio
from dyfit.physics.prior import ThetaPrior
from dyfit.studies import StudyResult, run_study, run_toy
from dyfit.toy import ToyExperiment

torch.set_num_threads(1)

TOY = ToyExperiment(0.5)
WIDE = ThetaPrior(lambda_=(-0.9, 4.0), mu=(-1.0, 1.0), nu=(-1.0, 1.0))
# On the toy the detector is perfect, so the oracle on (costh, phi) is an exact ratio model.
EXACT = TruthRatio(prior=WIDE, feature_names=("costh", "phi"))
THETA = np.array([1.2, 0.1, 0.2])
TOYS = 200


@pytest.fixture(scope="module")
def coverage_study():
    # The nominal sample as large as the data: its term is as large as the Hessian's.
    return run_study(EXACT, TOY, [THETA], TOYS, 3000, 3000, methods=("likelihood",), seed=11)


def test_pulls_and_coverage_with_the_nominal_term(coverage_study):
    rows = {(r["method"], r["parameter"]): r for r in coverage_study.summary()}
    for name in ("lambda", "mu", "nu"):
        r = rows["likelihood", name]
        assert r["n"] == TOYS and r["n_failed"] == 0
        # Tolerances: 3 standard errors of each statistic over 200 toys.
        assert abs(r["pull_width"] - 1) < 3 * r["pull_width_err"]
        assert abs(r["pull_mean"]) < 3 * r["pull_mean_err"]
        assert abs(r["cov68"] - 0.683) < 3 * np.sqrt(0.683 * 0.317 / TOYS)
        assert abs(r["cov95"] - 0.954) < 3 * np.sqrt(0.954 * 0.046 / TOYS)
        # Without the nominal term (Hessian only) the pulls are measurably too wide.
        assert r["pull_width_stat"] > 1 + 3 * r["pull_width_err"]
        # The oracle on (true_costh, true_phi) sees the same numbers on the toy.
        assert r["sigma_ratio_oracle"] == pytest.approx(1.0, abs=1e-6)
        assert abs(r["bias"]) < 3 * r["bias_err"]


def test_toys_are_reproducible_one_by_one():
    thetas = np.array([[1.0, 0.0, 0.0], THETA])
    study = run_study(EXACT, TOY, thetas, 3, 500, 500, methods=("likelihood", "bce"), seed=5)
    alone = run_toy(EXACT, TOY, thetas[1], 1, 2, 500, 500, ("likelihood", "bce"), seed=5)
    stored = [r for r in study.records if r["theta_index"] == 1 and r["toy"] == 2]
    assert [r["method"] for r in stored] == ["likelihood", "bce", "oracle"]
    for a, b in zip(alone, stored, strict=True):
        np.testing.assert_array_equal(a["values"], b["values"])
    other = [r for r in study.records if r["theta_index"] == 1 and r["toy"] == 1]
    assert not np.array_equal(other[0]["values"], stored[0]["values"])


def test_outputs_round_trip(tmp_path):
    study = run_study(EXACT, TOY, [THETA], 4, 500, 1000, methods=("likelihood",), seed=1)
    paths = study.save(tmp_path)
    names = {p.name for p in paths}
    assert {"study.json", "summary.md", "pulls.png", "pulls.pdf", "coverage.png"} <= names
    loaded = StudyResult.from_json(json.loads((tmp_path / "study.json").read_text()))
    assert loaded.summary() == study.summary()
    table = (tmp_path / "summary.md").read_text().splitlines()
    # A header, a rule, and one row per method and parameter (likelihood and oracle).
    assert len(table) == 2 + 2 * 3 and table[2].count("|") == 13


def test_bad_study_inputs():
    with pytest.raises(InputError, match="methods"):
        run_study(EXACT, TOY, [THETA], 4, 500, 500, methods=("chi2",))


def test_study_command(tmp_path):
    from dyfit.cli.study import command

    args = [
        "--model",
        "truth",
        "--source",
        "toy",
        "--theta",
        "1,0,0",
        "--theta",
        "1.2,0.1,0.2",
        "--toys",
        "3",
        "--events",
        "500",
        "--methods",
        "likelihood",
        "-o",
        str(tmp_path),
    ]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    assert "| likelihood | lambda |" in result.stdout
    assert (tmp_path / "study.json").exists() and (tmp_path / "coverage.pdf").exists()


def test_study_refuses_theta_outside_the_trained_range(tmp_path):
    """An injected θ the model was not trained on (or an unphysical one) is bad input."""
    model = TruthRatio(prior=ThetaPrior(lambda_=(0.5, 1.5)))
    for theta, why in (([1.8, 0, 0], "outside the model's trained range"), ([1, 2, 0], "negative")):
        with pytest.raises(InputError, match=why):
            run_study(model, ToyExperiment(), [theta], 2, 100, 300, journal=tmp_path / "out")
    assert not (tmp_path / "out").exists()
