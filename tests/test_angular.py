"""The angular distribution: normalisation, weights, positivity, sampling."""

import numpy as np
import pytest
from scipy import integrate, stats

from dyfit.errors import InputError
from dyfit.physics.angular import (
    THETA0,
    angular_basis,
    angular_density,
    angular_norm,
    angular_weight,
    basis_coefficients,
    check_physical,
    min_density_eigenvalue,
    normalised_density,
    sample_angles,
)

THETAS = [(1.0, 0.0, 0.0), (0.8, 0.2, 0.3), (0.0, -0.4, 0.5), (1.5, 0.1, -0.4), (-0.3, 0.0, 0.2)]


@pytest.mark.parametrize("theta", THETAS)
def test_normalisation_matches_numerical_integral(theta):
    value, _ = integrate.dblquad(
        lambda phi, c: angular_density(np.array([c]), np.array([phi]), theta)[0],
        -1.0,
        1.0,
        -np.pi,
        np.pi,
    )
    assert value == pytest.approx(angular_norm(theta), rel=1e-8)


@pytest.mark.parametrize("theta", THETAS)
def test_min_eigenvalue_is_minimum_of_density_on_a_grid(theta):
    c, p = np.meshgrid(np.linspace(-1, 1, 401), np.linspace(-np.pi, np.pi, 401))
    grid_min = angular_density(c.ravel(), p.ravel(), theta).min()
    # The eigenvalue is the exact minimum; a 401x401 grid comes within ~1e-4 of it.
    assert min_density_eigenvalue(theta) <= grid_min + 1e-12
    assert grid_min - min_density_eigenvalue(theta) < 1e-3


def test_negative_density_is_refused():
    with pytest.raises(InputError, match="negative angular density"):
        check_physical([-1.5, 0.0, 0.0])
    with pytest.raises(InputError, match="negative"):
        check_physical([[1.0, 0.0, 0.0], [0.0, 1.2, 0.0]])
    with pytest.raises(InputError, match="3 components"):
        check_physical([1.0, 0.0])


def test_basis_contracts_to_the_unnormalised_weight():
    rng = np.random.default_rng(1)
    c, p = rng.uniform(-1, 1, 1000), rng.uniform(-np.pi, np.pi, 1000)
    theta = np.array([0.7, -0.2, 0.35])
    lhs = angular_basis(c, p) @ basis_coefficients(theta)
    rhs = angular_density(c, p, theta) / angular_density(c, p, THETA0)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


@pytest.mark.parametrize("theta", THETAS[1:4])
def test_angular_moments_recover_theta(theta):
    """Analytic moments of the normalised density, tested jointly.

    The three sample means are compared with their analytic values through a chi-square
    with the sample covariance (3 dof), required below the 3-sigma quantile (p > 0.0027).
    """
    lam, mu, nu = theta
    rng = np.random.default_rng(7)
    c, p = sample_angles(theta, 400_000, rng)
    s = np.sqrt(1 - c * c)
    moments = {
        "cos2": (c * c, (5 + 3 * lam) / (5 * (3 + lam))),
        "sin2theta_cosphi": (2 * c * s * np.cos(p), 4 * mu / (5 * (3 + lam))),
        "sin2_cos2phi": (s * s * np.cos(2 * p), 2 * nu / (5 * (3 + lam))),
    }
    values = np.stack([v for v, _ in moments.values()])
    expected = np.array([e for _, e in moments.values()])
    resid = values.mean(axis=1) - expected
    cov = np.cov(values) / values.shape[1]
    chi2 = resid @ np.linalg.solve(cov, resid)
    assert stats.chi2.sf(chi2, 3) > 0.0027, dict(zip(moments, resid, strict=True))


def test_per_event_theta_sampling_follows_each_theta():
    rng = np.random.default_rng(3)
    theta = np.repeat(np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]), 100_000, axis=0)
    c, _ = sample_angles(theta, None, rng)
    for half, lam in ((c[:100_000], 0.0), (c[100_000:], 2.0)):
        expected = (5 + 3 * lam) / (5 * (3 + lam))
        assert abs(np.mean(half**2) - expected) < 3 * np.std(half**2) / np.sqrt(half.size)


def test_weighted_nominal_sample_reproduces_direct_sample():
    """Chi-square of a weighted nominal histogram against a directly generated one."""
    rng = np.random.default_rng(11)
    theta = np.array([0.4, 0.25, -0.3])
    n = 300_000
    c0, p0 = sample_angles(THETA0, n, rng)
    c1, p1 = sample_angles(theta, n, rng)
    w = angular_weight(c0, p0, theta)
    assert abs(w.mean() - 1.0) < 4 * w.std() / np.sqrt(n)
    bins = (np.linspace(-1, 1, 11), np.linspace(-np.pi, np.pi, 13))
    hw, *_ = np.histogram2d(c0, p0, bins, weights=w)
    hw2, *_ = np.histogram2d(c0, p0, bins, weights=w * w)
    hd, *_ = np.histogram2d(c1, p1, bins)
    chi2 = np.sum((hw - hd) ** 2 / (hw2 + hd))
    assert stats.chi2.sf(chi2, hw.size) > 1e-3


def test_weight_is_ratio_of_normalised_densities():
    c, p = np.array([0.3, -0.8]), np.array([1.0, -2.5])
    theta = (1.4, -0.1, 0.2)
    np.testing.assert_allclose(
        angular_weight(c, p, theta),
        normalised_density(c, p, theta) / normalised_density(c, p, THETA0),
    )
    # Normalisation factor (1 + 1/3) / (1 + lambda/3) between unnormalised densities.
    np.testing.assert_allclose(
        angular_weight(c, p, theta),
        angular_density(c, p, theta) / angular_density(c, p, THETA0) * (4 / 3) / (1 + 1.4 / 3),
    )
