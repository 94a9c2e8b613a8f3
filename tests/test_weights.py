"""Weighted fits: a weighted sample fits like the sample it stands for, with sandwich errors.

The toy (|cosθ| < 0.8, perfect resolution) and its exact truth-level ratio keep every fit
fast and the answer known; the prior box is wide so that no fit meets its edge.
"""

import numpy as np
import pytest
import torch

from dyfit.data.events import EventTable
from dyfit.errors import InputError
from dyfit.fitting import TruthRatio, fit
from dyfit.fitting.scan import loss_objective
from dyfit.physics.angular import THETA0, angular_weight, is_physical
from dyfit.physics.prior import ThetaPrior
from dyfit.toy import ToyExperiment

torch.set_num_threads(1)

TOY = ToyExperiment(cos_max=0.8)
MODEL = TruthRatio.for_toy(0.8, prior=ThetaPrior(lambda_=(-1.0, 3.0), mu=(-1.0, 1.0), nu=(-1, 1)))
THETA = np.array([1.0, 0.15, 0.25])


def _weighted(table: EventTable, w) -> EventTable:
    return table.with_columns({"weight": np.asarray(w, dtype=np.float64)})


def _meat_relative_error(model, data, nominal, theta) -> np.ndarray:
    """The relative standard error of the sandwich's Σ g_k² (per parameter), from the sample.

    Σ g gᵀ and the Hessian both estimate N × Fisher information; they differ by the
    sampling error of Σ g_k², std(g_k²) / (mean(g_k²) √N).
    """
    nll = loss_objective(model, data, nominal, "nll")
    _, g = nll.data.log_ratio(theta, grad=True)
    r, dr = nll.nominal.ratio(theta, grad=True)
    s2 = (dr.mean(0) / r.mean() - g) ** 2
    return s2.std(0) / (s2.mean(0) * np.sqrt(len(g)))


@pytest.mark.parametrize("method", ["likelihood", "bce"])
def test_unit_weights_give_the_unweighted_fit(method):
    """w ≡ 1: the same θ̂; the sandwich equals the Hessian errors up to its sampling error."""
    rng = np.random.default_rng(1)
    data, nominal = TOY.simulate(20_000, THETA, rng), TOY.simulate(40_000, THETA0, rng)
    plain = fit(MODEL, data, nominal, method=method)
    ones = fit(MODEL, _weighted(data, np.ones(len(data))), nominal, method=method)
    np.testing.assert_allclose(ones.values, plain.values, rtol=0, atol=1e-10)
    assert ones.extra["n_effective"] == pytest.approx(len(data))
    v_plain, v_ones = np.diag(plain.covariance["stat"]), np.diag(ones.covariance["stat"])
    if method == "bce":  # the BCE errors are a sandwich already: the same formula
        np.testing.assert_allclose(v_ones, v_plain, rtol=1e-9)
    else:  # within 4 standard errors of the meat's estimate (at N = 2e4 about 1-2 %)
        tol = 4 * _meat_relative_error(MODEL, data, nominal, plain.values)
        assert np.all(np.abs(v_ones / v_plain - 1) < tol), (v_ones / v_plain, tol)
    np.testing.assert_allclose(
        np.diag(ones.covariance["nominal"]), np.diag(plain.covariance["nominal"]), rtol=1e-9
    )


@pytest.mark.parametrize("method", ["likelihood", "bce"])
def test_weight_two_equals_duplicated_events_with_honest_errors(method):
    """Each event twice ↔ weight 2: the same θ̂, but twice the variance of the naive fit.

    The duplicated sample's Hessian errors claim 2N events' worth of information; the
    sandwich knows the weighted sample holds N. The BCE's own sandwich sees duplicates as
    independent events too, so the ratio is 2 there as well.
    """
    rng = np.random.default_rng(2)
    data, nominal = TOY.simulate(10_000, THETA, rng), TOY.simulate(40_000, THETA0, rng)
    twice = fit(MODEL, EventTable.concat([data, data]), nominal, method=method)
    weighted = fit(MODEL, _weighted(data, np.full(len(data), 2.0)), nominal, method=method)
    sigma = np.sqrt(np.diag(twice.covariance["stat"]))
    # MIGRAD starts with other step sizes (it sees N, not 2N events): agree to its tolerance
    assert np.all(np.abs(weighted.values - twice.values) < 0.01 * sigma)
    ratio = np.diag(weighted.covariance["stat"]) / np.diag(twice.covariance["stat"])
    if method == "bce":
        np.testing.assert_allclose(ratio, 2.0, rtol=1e-3)  # (2N-1)/(2N-2) from the Cov ddof
    else:
        tol = 4 * _meat_relative_error(MODEL, data, nominal, weighted.values)
        assert np.all(np.abs(ratio / 2 - 1) < tol), (ratio, tol)


def _pulls(make_data, toys: int, n_nominal: int, method: str = "likelihood") -> np.ndarray:
    """(θ̂ − θ) / σ_total over toys, shape (toys, 3); a fresh nominal sample per toy."""
    out = []
    for k in range(toys):
        rng = np.random.default_rng(100 + k)
        data = make_data(rng)
        result = fit(MODEL, data, TOY.simulate(n_nominal, THETA0, rng), method=method)
        assert result.converged
        out.append((result.values - THETA) / result.errors)
    return np.array(out)


def _check_standard_normal(pulls: np.ndarray) -> None:
    # K pulls: the mean scatters by 1/√K and the standard deviation by 1/√(2K); 3.5σ bands
    k = len(pulls)
    assert np.all(np.abs(pulls.mean(0)) < 3.5 / np.sqrt(k)), pulls.mean(0)
    assert np.all(np.abs(pulls.std(0, ddof=1) - 1) < 3.5 / np.sqrt(2 * k)), pulls.std(0)


def test_angular_weights_on_a_nominal_sample_fit_the_target_theta():
    """θ0 events weighted by p(Ω|θ)/p(Ω|θ0) stand for a θ sample: pulls are N(0, 1)."""

    def reweighted(rng):
        events = TOY.simulate(4000, THETA0, rng)
        return _weighted(events, angular_weight(events["true_costh"], events["true_phi"], THETA))

    _check_standard_normal(_pulls(reweighted, toys=150, n_nominal=8000))


BACKGROUND = np.array([-0.5, -0.2, 0.5])


def _with_subtracted_background(rng, n_signal=3000, n_background=1500) -> EventTable:
    """Signal at THETA plus background, and a background control sample with weight −1."""
    parts = [
        TOY.simulate(n_signal, THETA, rng),
        TOY.simulate(n_background, BACKGROUND, rng),
        TOY.simulate(n_background, BACKGROUND, rng),
    ]
    w = np.concatenate([np.ones(n_signal + n_background), -np.ones(n_background)])
    return _weighted(EventTable.concat(parts), w)


def test_negative_weights_subtract_a_background():
    """A background removed by a −1-weighted control sample: pulls N(0, 1) with the sandwich."""
    assert is_physical(BACKGROUND)
    _check_standard_normal(_pulls(_with_subtracted_background, toys=150, n_nominal=8000))


@pytest.mark.parametrize("method", ["likelihood", "bce"])
def test_without_the_subtraction_the_fit_is_biased(method):
    """The same events with the control sample dropped miss THETA: the test above can fail."""
    rng = np.random.default_rng(7)
    events = _with_subtracted_background(rng, 30_000, 15_000)
    nominal = TOY.simulate(100_000, THETA0, rng)
    subtracted = fit(MODEL, events, nominal, method=method)
    kept = events.select(events["weight"] > 0).with_columns({"weight": np.ones(45_000)})
    biased = fit(MODEL, kept, nominal, method=method)
    assert np.all(np.abs(subtracted.values - THETA) < 4 * subtracted.errors)
    assert np.any(np.abs(biased.values - THETA) > 5 * biased.errors)


def test_bad_weights_are_refused():
    rng = np.random.default_rng(3)
    data, nominal = TOY.simulate(500, THETA, rng), TOY.simulate(1000, THETA0, rng)
    with pytest.raises(InputError, match="NaN or inf"):
        fit(MODEL, _weighted(data, np.r_[np.nan, np.ones(499)]), nominal)
    with pytest.raises(InputError, match="sum to"):
        fit(MODEL, _weighted(data, -np.ones(500)), nominal)
    with pytest.raises(InputError, match="MINOS"):
        fit(MODEL, _weighted(data, np.ones(500)), nominal, minos=True)
