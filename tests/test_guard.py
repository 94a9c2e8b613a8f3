"""The mismodelling guard: quiet on data the simulation describes, loud when it does not."""

import json

import numpy as np
import pytest
import torch

from dyfit.data.events import EventTable
from dyfit.errors import DyfitWarning
from dyfit.fitting import TruthRatio, fit
from dyfit.fitting.guard import mismodelling_guard
from dyfit.physics.angular import THETA0
from dyfit.plots.guard import plot_guard
from dyfit.toy import ToyExperiment

torch.set_num_threads(1)

TOY = ToyExperiment(cos_max=0.8)
MODEL = TruthRatio.for_toy(0.8)
THETA = np.array([0.8, 0.1, 0.2])
N = 20_000


def _samples(seed: int) -> tuple[EventTable, EventTable]:
    rng = np.random.default_rng(seed)
    return TOY.simulate(N, THETA, rng), TOY.simulate(2 * N, THETA0, rng)


def test_guard_passes_on_simulated_data(tmp_path):
    """Data from the simulation itself: every p-value and the AUC within their thresholds.

    With a fixed seed this is deterministic; by construction a correct simulation fails
    a given χ² with probability 1e-3 and the AUC with 0.3 %.
    """
    data, nominal = _samples(1)
    result = fit(MODEL, data, nominal)
    report = mismodelling_guard(MODEL, data, nominal, result.values)  # any warning fails
    assert report.passed, report.table()
    names = [v.name for v in report.variables]
    assert names == ["mass", "phi", "costh", "sin2theta_cosphi", "sin2theta_cos2phi"]
    # the fit moved the simulation towards the data in the angular variables
    angular = [v for v in report.variables if v.name != "mass"]
    assert sum(v.chi2 for v in angular) < sum(v.chi2_nominal for v in angular)
    record = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert record["passed"] and record["failures"] == []
    paths = plot_guard(report, tmp_path / "guard")
    assert all(p.stat().st_size > 0 for p in paths)


def test_guard_fires_on_a_mismodelled_spectrum():
    """Data with a steeper mass spectrum than the simulation's: χ² in mass and the AUC fire."""
    data, nominal = _samples(2)
    rng = np.random.default_rng(3)
    # accept with exp(-0.15 (m - 4.5)): the angular distribution is untouched
    data = data.select(rng.random(len(data)) < np.exp(-0.15 * (data["mass"] - 4.5)))
    result = fit(MODEL, data, nominal)
    with pytest.warns(DyfitWarning) as caught:
        report = mismodelling_guard(MODEL, data, nominal, result.values)
    messages = " | ".join(str(w.message) for w in caught)
    assert "differ in mass" in messages and "AUC" in messages
    assert not report.passed
    others = [p for v, p in zip(report.variables, report.p_values, strict=True) if v.name != "mass"]
    assert min(others) > 1e-3


def test_truth_reweighting_equals_the_exact_ratio():
    """Without a model the guard reweights with p(Ω|θ)/p(Ω|θ0): per event a constant times the
    toy's exact ratio, so the normalised histograms and χ² agree to rounding."""
    data, nominal = _samples(4)
    theta = np.array([0.9, 0.05, 0.1])
    exact = mismodelling_guard(MODEL, data, nominal, theta)
    truth = mismodelling_guard(None, data, nominal, theta)
    np.testing.assert_allclose(
        [v.chi2 for v in truth.variables], [v.chi2 for v in exact.variables], rtol=1e-9
    )


def test_guard_on_background_subtracted_data():
    """Negative weights: signal + background − a control sample passes; unsubtracted fails."""
    rng = np.random.default_rng(5)
    background = np.array([-0.5, -0.2, 0.5])
    parts = [
        TOY.simulate(N, THETA, rng),
        TOY.simulate(N // 2, background, rng),
        TOY.simulate(N // 2, background, rng),
    ]
    w = np.concatenate([np.ones(N + N // 2), -np.ones(N // 2)])
    data = EventTable.concat(parts).with_columns({"weight": w})
    nominal = TOY.simulate(2 * N, THETA0, rng)
    report = mismodelling_guard(MODEL, data, nominal, fit(MODEL, data, nominal).values)
    assert report.passed, report.table()
    # the background kept, fitted at the signal's θ: the angular variables cannot close
    kept = EventTable.concat(parts[:2])
    with pytest.warns(DyfitWarning) as caught:
        assert not mismodelling_guard(MODEL, kept, nominal, THETA).passed
    assert any("differ in" in str(w.message) for w in caught)
