"""The method comparison on the toy: every method on the same toys, the table, its words,
the σ-ratio plot and the ``dyfit compare`` command."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dyfit.fitting import TruthRatio
from dyfit.physics.prior import ThetaPrior
from dyfit.studies.compare import COMPARE_METHODS, compare_methods
from dyfit.toy import ToyExperiment

torch.set_num_threads(1)

TOY = ToyExperiment(0.5)
# On the toy the detector is perfect: the oracle on (costh, phi) is an exact ratio model.
EXACT = TruthRatio(
    prior=ThetaPrior(lambda_=(-0.9, 4.0), mu=(-1.0, 1.0), nu=(-1.0, 1.0)),
    feature_names=("costh", "phi"),
)


@pytest.fixture(scope="module")
def comparison():
    return compare_methods(EXACT, TOY, [[1.0, 0.1, 0.2]], 6, 4000, 12000, seed=2)


def test_every_method_on_the_same_toys(comparison):
    rows = comparison.rows()
    assert [r["method"] for r in rows[:7]] == [*COMPARE_METHODS, "oracle"]
    assert len(rows) == 3 * 7 and all(r["n_failed"] == 0 for r in rows)
    by = {(r["method"], r["parameter"]): r for r in rows}
    for par in ("lambda", "mu", "nu"):
        # The exact ratio on a perfect detector is the oracle itself: σ ratio 1.
        assert by["likelihood", par]["sigma_ratio_oracle"] == pytest.approx(1.0, abs=1e-6)
        for m in COMPARE_METHODS:
            assert np.isfinite(by[m, par]["sigma_ratio_oracle"]) and by[m, par]["fit_time_s"] > 0


def test_table_words_and_plot(comparison, tmp_path):
    text = comparison.markdown()
    assert "| (1, 0.1, 0.2) | lambda | template |" in text
    assert "closest to the truth-level limit" in text
    from dyfit.plots.compare import plot_sigma_ratio

    paths = comparison.save(tmp_path, plots=False) + plot_sigma_ratio(comparison, tmp_path / "s")
    names = {p.name for p in paths}
    assert {"comparison.md", "comparison.json", "study.json", "s.png", "s.pdf"} <= names
    obj = json.loads((tmp_path / "comparison.json").read_text())
    assert len(obj["table"]) == 21 and obj["findings"]
    row = next(r for r in obj["table"] if r["method"] == "unfold" and r["parameter"] == "mu")
    assert np.isfinite(row["sigma_ratio_oracle"])


def test_compare_command(tmp_path):
    from dyfit.cli.compare import command

    # 10^4 events: enough for unfold's 20 x 12 bins to hold >= 25 expected events each
    args = ["--source", "toy", "--theta", "1,0,0", "--toys", "3", "--events", "10000"]
    result = CliRunner().invoke(command, [*args, "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    # Without --model only the binned methods and the oracle run.
    methods = {r["method"] for r in json.loads((tmp_path / "comparison.json").read_text())["table"]}
    assert methods == {"template", "binned-acceptance", "unfold", "oracle"}
    assert (tmp_path / "sigma_ratio.png").exists() and (tmp_path / "pulls.pdf").exists()
    bad = CliRunner().invoke(command, ["--theta", "1,0,0", "--events", "10", "-o", str(tmp_path)])
    assert bad.exit_code != 0 and "--model" in str(bad.exception)
