"""The likelihood fit on the analytic toy: θ recovered, Hessian error = Fisher error, the
nominal-sample and ensemble terms, the network code path, warnings and bad inputs."""

import numpy as np
import pytest
import torch
from torch import nn

from dyfit.data.events import EventTable
from dyfit.errors import DyfitWarning, InputError
from dyfit.fitting import TruthRatio, fit, fit_likelihood
from dyfit.fitting.evaluate import MomentsSample
from dyfit.fitting.likelihood import INVALID, NLL, diagnose
from dyfit.physics.angular import THETA0, angular_basis
from dyfit.physics.prior import ThetaPrior
from dyfit.toy import ToyExperiment

torch.set_num_threads(1)

COS_MAX = 0.5
TOY = ToyExperiment(COS_MAX)
# Wide enough that no fit below comes near an edge (σ_λ ≲ 0.3 here).
WIDE = ThetaPrior(lambda_=(-0.9, 4.0), mu=(-1.0, 1.0), nu=(-1.0, 1.0))
THETA = np.array([1.2, 0.1, 0.2])


class ExactToyRatio(nn.Module):
    """The toy's exact detector-level ratio as a moments model (detector = truth on the toy)."""

    kind = "moments"
    feature_names = ("costh", "phi")

    def __init__(self, prior=WIDE, scale=(1.0, 1.0, 1.0, 1.0)):
        super().__init__()
        self.prior = prior
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float64))
        self.register_buffer("abar", torch.tensor([0.75, 0.25, 0.0, 0.0], dtype=torch.float64))

    def moments(self, x):
        a = angular_basis(x[:, 0].numpy(), x[:, 1].numpy())
        return torch.from_numpy(a) * self.scale

    def log_ratio(self, x, theta):
        c = torch.cat([torch.ones_like(theta[..., :1]), theta], dim=-1)
        return torch.log((self.moments(x) * c).sum(-1)) - torch.log((self.abar * c).sum(-1))


class AsNetwork(TruthRatio):
    """The oracle seen as a classifier: every θ step is a pass with autograd."""

    kind = "classifier"


def sample(n, theta, seed):
    return TOY.simulate(n, theta, np.random.default_rng(seed))


def fisher_per_event(theta, n_c=400, n_phi=128):
    """E[∇log p ∇log pᵀ] of the toy by quadrature: Gauss-Legendre in cosθ on (−a, a),
    the (spectrally exact) trapezoid rule in φ."""
    x, w = np.polynomial.legendre.leggauss(n_c)
    c = COS_MAX * x
    phi = np.linspace(-np.pi, np.pi, n_phi, endpoint=False)
    c, phi = np.meshgrid(c, phi, indexing="ij")
    weight = (COS_MAX * w)[:, None] * (2 * np.pi / n_phi)
    s2 = 1 - c * c
    dd = np.stack([c * c, 2 * c * np.sqrt(s2) * np.cos(phi), 0.5 * s2 * np.cos(2 * phi)])
    density = 1 + theta[0] * c * c + theta[1] * dd[1] + theta[2] * dd[2]
    z = np.sum(weight * density)
    dz = np.sum(weight * dd, axis=(1, 2))
    outer = np.einsum("iab,jab->ij", dd * weight / density, dd)
    return outer / z - np.outer(dz, dz) / z**2


def test_oracle_moments_and_toy_normalisation():
    data = sample(1000, THETA, 1)
    x = torch.from_numpy(data.matrix(("costh", "phi")))
    oracle = TruthRatio.for_toy(COS_MAX, feature_names=("costh", "phi"))
    expected = angular_basis(data["costh"], data["phi"])
    np.testing.assert_allclose(oracle.moments(x).numpy(), expected, rtol=1e-12, atol=1e-14)
    got = oracle.log_ratio(x, torch.tensor(THETA)).numpy()
    np.testing.assert_allclose(got, TOY.log_ratio(data["costh"], data["phi"], THETA), atol=1e-12)


def test_recovers_theta_with_the_fisher_error():
    n, m = 20000, 200000
    result = fit_likelihood(ExactToyRatio(), sample(n, THETA, 2), sample(m, THETA0, 3))
    expected = np.sqrt(np.diag(np.linalg.inv(n * fisher_per_event(THETA))))
    stat = result.error_breakdown()["stat"]
    # The observed information scatters about the expected one by O(1/sqrt(N)) ≈ 1-2 %.
    np.testing.assert_allclose(stat, expected, rtol=0.10)
    assert result.converged
    # A fixed-seed draw: each pull is N(0, 1), so |pull| < 3 fails with probability 0.3 %.
    assert np.all(np.abs(result.values - THETA) < 3 * result.errors)


def test_network_path_matches_closed_form():
    data, nominal = sample(5000, THETA, 4), sample(15000, THETA0, 5)
    oracle = fit_likelihood(TruthRatio(prior=WIDE), data, nominal)
    network = fit_likelihood(AsNetwork(prior=WIDE), data, nominal)
    # Both minimise the same function; HESSE's finite differences agree to well under 1 %.
    np.testing.assert_allclose(network.values, oracle.values, atol=1e-3 * oracle.errors.min())
    for part in ("stat", "nominal"):
        np.testing.assert_allclose(
            network.error_breakdown()[part], oracle.error_breakdown()[part], rtol=0.01
        )


def test_nominal_error_matches_spread_over_nominal_samples():
    # The data fixed, the nominal sample redrawn: θ̂ then scatters by the nominal term alone.
    data = sample(5000, THETA, 6)
    model = ExactToyRatio()
    fits = [fit_likelihood(model, data, sample(3000, THETA0, 100 + k)) for k in range(100)]
    spread = np.std([f.values for f in fits], axis=0, ddof=1)
    reported = np.mean([f.error_breakdown()["nominal"] for f in fits], axis=0)
    # The spread of 100 draws has relative standard error 1/sqrt(2·99) = 7 %; allow 3σ.
    np.testing.assert_allclose(spread / reported, 1.0, atol=3 * 0.071)


def test_ensemble_adds_the_spread_of_the_members():
    data, nominal = sample(5000, THETA, 7), sample(15000, THETA0, 8)
    members = [ExactToyRatio(scale=(1.0, 1.0, 1.0 + e, 1.0 - e)) for e in (-0.05, 0.0, 0.05)]
    result = fit_likelihood(members[0], data, nominal, ensemble=members[1:])
    values = np.array([fit_likelihood(m, data, nominal).values for m in members])
    np.testing.assert_allclose(result.covariance["training"], np.cov(values.T), rtol=1e-6)
    total = sum(result.covariance[k] for k in ("stat", "nominal", "training"))
    np.testing.assert_allclose(result.errors, np.sqrt(np.diag(total)))


def test_minos_agrees_with_hessian_for_large_samples():
    result = fit_likelihood(
        ExactToyRatio(), sample(20000, THETA, 9), sample(60000, THETA0, 10), minos=True
    )
    stat = result.error_breakdown()["stat"]
    for i, name in enumerate(("lambda", "mu", "nu")):
        lo, hi = result.minos[name]
        # The NLL is near-parabolic at N = 20000: MINOS within 5 % of the Hessian error.
        assert lo < 0 < hi
        np.testing.assert_allclose([-lo, hi], stat[i], rtol=0.05)


def test_boundary_warning():
    narrow = ThetaPrior(lambda_=(1.5, 2.5))
    with pytest.warns(DyfitWarning, match="boundary in lambda"):
        result = fit_likelihood(
            ExactToyRatio(prior=narrow), sample(5000, THETA0, 11), sample(15000, THETA0, 12)
        )
    assert result.values[0] == pytest.approx(1.5, abs=1e-3)
    assert any("boundary" in w for w in result.warnings)


def test_diagnose_flags_negative_density_and_invalid_points():
    nll = NLL(
        MomentsSample([[1.0, -2.0, 0.0, 0.0]], [0.75, 0.25, 0, 0]),
        MomentsSample([[1.0, 0.25, 0.0, 0.0]], [0.75, 0.25, 0, 0]),
    )
    # ĥ·c = 1 − 2λ < 0 at λ = 1: the loss marks the point as excluded.
    assert nll(THETA0) == INVALID and nll.n_invalid == 1
    notes = diagnose(np.array([-1.5, 0.0, 0.0]), WIDE, nll)
    assert any("negative" in n for n in notes) and any("excluded" in n for n in notes)
    assert diagnose(THETA, WIDE, NLL(nll.nominal, nll.nominal)) == []


def test_bad_inputs_raise_input_error():
    model = ExactToyRatio()
    data, nominal = sample(2000, THETA, 13), sample(2000, THETA0, 14)
    with pytest.raises(InputError, match="lacks column"):
        fit_likelihood(model, EventTable({"costh": data["costh"]}), nominal)
    bad = data.with_columns({"phi": np.where(np.arange(2000) < 7, np.nan, data["phi"])})
    with pytest.raises(InputError, match="7 event"):
        fit_likelihood(model, bad, nominal)
    with pytest.warns(DyfitWarning, match="dropped 7"):
        result = fit_likelihood(model, bad, nominal, drop_invalid=True)
    assert result.n_events == 1993
    with pytest.raises(InputError, match="outside the model's prior"):
        fit_likelihood(model, data, nominal, start=[5.0, 0.0, 0.0])
    with pytest.raises(InputError, match="true_costh"):
        fit_likelihood(TruthRatio(), EventTable({"costh": data["costh"]}), nominal)
    with pytest.raises(InputError, match="unknown fit method"):
        fit(model, data, nominal, method="chi2")
    with pytest.raises(InputError, match="event source"):
        fit(model, data)


def test_nominal_sample_simulated_from_a_source():
    data = sample(2000, THETA, 15)
    nominal = TOY.simulate(5000, THETA0, np.random.default_rng(16))
    direct = fit(ExactToyRatio(), data, nominal)
    simulated = fit(
        ExactToyRatio(), data, source=TOY, n_nominal=5000, rng=np.random.default_rng(16)
    )
    np.testing.assert_array_equal(simulated.values, direct.values)
    assert simulated.n_nominal == 5000


class Sharpened(AsNetwork):
    """The oracle's log-ratio tripled: a ratio model that claims three times the information."""

    def log_ratio(self, x, theta):
        return 3.0 * super().log_ratio(x, theta)


def test_oracle_expectation_matches_the_fisher_error_and_guards_overconfidence():
    data, nominal = sample(20_000, THETA, 31), sample(60_000, THETA0, 32)
    with pytest.warns(DyfitWarning, match="below the truth-level limit"):
        overconfident = fit_likelihood(Sharpened(WIDE), data, nominal)
    exact = fit_likelihood(TruthRatio(WIDE), data, nominal)
    limit = np.array(list(exact.extra["sigma_oracle_expected"].values()))
    # The expected oracle error from the reweighted nominal sample equals the quadrature
    # Fisher error within the nominal sample's statistical precision (a few per cent).
    fisher = np.sqrt(np.diag(np.linalg.inv(len(data) * fisher_per_event(exact.values))))
    np.testing.assert_allclose(limit, fisher, rtol=0.05)
    assert np.all(overconfident.error_breakdown()["stat"] < 0.8 * limit)
    assert not any("truth-level limit" in w for w in exact.warnings)
