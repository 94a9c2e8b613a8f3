"""The BCE fits (MIGRAD and the proposal's Adam) on the analytic toy with the oracle."""

import numpy as np
import pytest
import torch

from dyfit.errors import DyfitWarning, InputError
from dyfit.fitting import TruthRatio, fit_bce, fit_likelihood
from dyfit.fitting.bce import BCE
from dyfit.fitting.evaluate import ratio_sample
from dyfit.physics.angular import THETA0
from dyfit.physics.prior import ThetaPrior
from dyfit.toy import ToyExperiment

torch.set_num_threads(1)

COS_MAX = 0.5
TOY = ToyExperiment(COS_MAX)
WIDE = ThetaPrior(lambda_=(-0.9, 4.0), mu=(-1.0, 1.0), nu=(-1.0, 1.0))
THETA = np.array([1.2, 0.1, 0.2])
# The exact, normalised detector-level ratio of the toy: ā over the accepted nominal events.
ORACLE = TruthRatio.for_toy(COS_MAX, prior=WIDE)


class AsNetwork(TruthRatio):
    kind = "classifier"


def sample(n, theta, seed):
    return TOY.simulate(n, theta, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def events():
    return sample(5000, THETA, 1), sample(15000, THETA0, 2)


@pytest.fixture(scope="module")
def bce_fit(events):
    return fit_bce(ORACLE, *events)


def test_bce_and_adam_agree_for_a_normalised_ratio(events, bce_fit):
    adam = fit_bce(ORACLE, *events, method="bce-adam")
    assert adam.converged and bce_fit.converged
    # Both minimise the same F; Adam stops when |Δθ| < 1e-5 per epoch, far below σ ≈ 0.05.
    np.testing.assert_allclose(adam.values, bce_fit.values, atol=0.02 * bce_fit.errors.min())
    assert adam.history.shape == (len(adam.loss_history), 3)
    np.testing.assert_array_equal(adam.history[-1], adam.values)
    assert adam.loss_history[-1] < adam.loss_history[0] < np.log(2) + 0.05


def test_minibatch_adam_reaches_the_same_minimum(events, bce_fit):
    adam = fit_bce(ORACLE, *events, method="bce-adam", batch_size=2500, seed=3)
    np.testing.assert_allclose(adam.values, bce_fit.values, atol=0.02 * bce_fit.errors.min())


def test_network_path_matches_closed_form(events, bce_fit):
    network = fit_bce(AsNetwork(abar=ORACLE.abar.numpy(), prior=WIDE), *events)
    np.testing.assert_allclose(network.values, bce_fit.values, atol=1e-3 * bce_fit.errors.min())
    np.testing.assert_allclose(network.errors, bce_fit.errors, rtol=0.01)


def test_analytic_hessian_matches_finite_differences(events):
    d, _ = ratio_sample(ORACLE, events[0])
    n, _ = ratio_sample(ORACLE, events[1])
    bce = BCE(d, n)
    h = 1e-5
    numeric = np.array(
        [(bce.grad(THETA + h * e) - bce.grad(THETA - h * e)) / (2 * h) for e in np.eye(3)]
    )
    # Central differences of the exact gradient: error O(h²) ≈ 1e-10 relative.
    np.testing.assert_allclose(bce.analytic_hessian(THETA), numeric, rtol=1e-5, atol=1e-6)


def test_bce_needs_a_normalised_ratio_the_likelihood_does_not():
    data, nominal = sample(50000, THETA, 4), sample(150000, THETA0, 5)
    unnormalised = TruthRatio(prior=WIDE)  # ā of the full sphere, not of the acceptance
    # The wrongly normalised ratio also claims more precision than the truth-level limit.
    with pytest.warns(DyfitWarning, match="below the truth-level limit"):
        biased = fit_bce(unnormalised, data, nominal)
    good = fit_bce(ORACLE, data, nominal)
    # Measured here: the λ pull is about −19 with the wrong ā, below 1 with the right one.
    assert abs(biased.values[0] - THETA[0]) > 5 * biased.errors[0]
    assert np.all(np.abs(good.values - THETA) < 3 * good.errors)
    # In the likelihood ā cancels exactly.
    np.testing.assert_allclose(
        fit_likelihood(unnormalised, data, nominal).values,
        fit_likelihood(ORACLE, data, nominal).values,
        rtol=0,
        atol=1e-9,
    )


def test_sandwich_errors_cover():
    pulls, pulls_stat = [], []
    for k in range(100):
        data, nominal = sample(5000, THETA, 100 + 2 * k), sample(5000, THETA0, 101 + 2 * k)
        r = fit_bce(ORACLE, data, nominal)
        pulls.append((r.values - THETA) / r.errors)
        pulls_stat.append((r.values - THETA) / r.error_breakdown()["stat"])
    width = np.std(pulls, axis=0, ddof=1)
    # The width of 100 unit-Gaussian pulls scatters by 1/sqrt(2·99) = 0.071; allow 3σ.
    np.testing.assert_allclose(width, 1.0, atol=3 * 0.071)
    # With the nominal sample as large as the data its term is not small: the data-only
    # sandwich under-covers.
    assert np.all(np.std(pulls_stat, axis=0, ddof=1) > 1 + 3 * 0.071)


def test_unknown_method(events):
    with pytest.raises(InputError, match="bce or bce-adam"):
        fit_bce(ORACLE, *events, method="adam")


def test_calibrated_oracle_matches_the_exact_normalisation(events):
    nominal = events[1]
    calibrated = TruthRatio.calibrated(nominal).abar.numpy()
    a = np.stack([nominal["true_costh"], nominal["true_phi"]], axis=1)
    spread = TruthRatio().moments(torch.from_numpy(a)).numpy().std(0) / np.sqrt(len(nominal))
    # A sample mean: within 4 standard errors of the exact ā of the toy's acceptance.
    assert np.all(np.abs(calibrated - ORACLE.abar.numpy()) < 4 * spread)
