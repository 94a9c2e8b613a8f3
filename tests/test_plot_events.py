"""Event figures: the bin probabilities, the acceptance estimate and the Gaussian core, each
against an independent computation; and the figures themselves get written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from dyfit.data.events import EventTable
from dyfit.errors import DyfitWarning
from dyfit.physics.angular import normalised_density, sample_angles
from dyfit.plots.events import (
    acceptance,
    costh_bin_probability,
    gaussian_core,
    phi_bin_probability,
    plot_events,
)

THETA = np.array([0.8, 0.15, 0.3])


def grid(n: int = 1200) -> tuple[np.ndarray, np.ndarray, float]:
    """Midpoints of an n×n grid in (cosθ, φ) and the cell area."""
    c = -1.0 + (np.arange(n) + 0.5) * 2.0 / n
    p = -np.pi + (np.arange(n) + 0.5) * 2.0 * np.pi / n
    cc, pp = np.meshgrid(c, p, indexing="ij")
    return cc, pp, (2.0 / n) * (2.0 * np.pi / n)


def test_bin_probabilities_match_numerical_integration() -> None:
    cc, pp, area = grid()
    dens = normalised_density(cc.ravel(), pp.ravel(), THETA).reshape(cc.shape) * area
    edges_c = np.linspace(-1.0, 1.0, 21)  # 60 grid cells per bin: edges fall on cell borders
    edges_p = np.linspace(-np.pi, np.pi, 21)
    by_c = dens.sum(axis=1).reshape(20, -1).sum(axis=1)
    by_p = dens.sum(axis=0).reshape(20, -1).sum(axis=1)
    # the midpoint rule errs by O(h²) ≈ 1e-6 here
    np.testing.assert_allclose(costh_bin_probability(edges_c, THETA), by_c, atol=2e-6)
    np.testing.assert_allclose(phi_bin_probability(edges_p, THETA), by_p, atol=2e-6)
    assert costh_bin_probability([-1.0, 1.0], THETA)[0] == pytest.approx(1.0)
    assert phi_bin_probability([-np.pi, np.pi], THETA)[0] == pytest.approx(1.0)


def eff_c(c):
    return 0.2 + 0.6 * (1.0 - c * c)


def eff_p(p):
    return 0.5 + 0.4 * np.cos(p)


@pytest.mark.parametrize("axis", ["costh", "phi"])
def test_acceptance_recovers_a_known_efficiency(axis: str) -> None:
    n_gen = 200_000
    rng = np.random.default_rng(17)
    c, p = sample_angles(THETA, n_gen, rng)
    kept = rng.uniform(size=n_gen) < eff_c(c) * eff_p(p)
    edges = np.linspace(*((-1.0, 1.0) if axis == "costh" else (-np.pi, np.pi)), 21)
    prob = (costh_bin_probability if axis == "costh" else phi_bin_probability)(edges, THETA)
    values = (c if axis == "costh" else p)[kept]
    eff, err = acceptance(values, edges, n_gen, prob)
    # oracle: ∫_bin p(Ω) ε(Ω) dΩ / ∫_bin p(Ω) dΩ on a fine grid, independent of the sampling
    cc, pp, area = grid()
    dens = normalised_density(cc.ravel(), pp.ravel(), THETA).reshape(cc.shape) * area
    x = cc if axis == "costh" else pp
    which = np.digitize(x, edges) - 1
    num = np.bincount(which.ravel(), (dens * eff_c(cc) * eff_p(pp)).ravel(), minlength=20)
    den = np.bincount(which.ravel(), dens.ravel(), minlength=20)
    expected = num / den
    # χ² of the 20 bins with the quoted errors: mean 20, σ = √40; allow 5σ
    chi2 = np.sum(((eff - expected) / err) ** 2)
    assert abs(chi2 - 20.0) < 5.0 * np.sqrt(40.0)


def truncated_second_moment(a: float, s: float) -> tuple[float, float]:
    """∫_{-a}^{a} x² N(x; 0, s) dx and ∫_{-a}^{a} N(x; 0, s) dx."""
    inside = 2.0 * norm.cdf(a / s) - 1.0
    return s * s * (inside - 2.0 * (a / s) * norm.pdf(a / s)), inside


def core_fixed_point(weights, sigmas, k: float = 2.0) -> float:
    """The σ at which the clipped-RMS iteration stands still, for a centred Gaussian mixture."""
    shrink = np.sqrt(1.0 - 2.0 * k * norm.pdf(k) / (2.0 * norm.cdf(k) - 1.0))

    def step(sigma: float) -> float:
        moments = [truncated_second_moment(k * sigma, s) for s in sigmas]
        m2 = sum(w * m for w, (m, _) in zip(weights, moments, strict=True))
        p = sum(w * q for w, (_, q) in zip(weights, moments, strict=True))
        return np.sqrt(m2 / p) / shrink - sigma

    return brentq(step, 0.5 * min(sigmas), max(sigmas))


@pytest.mark.parametrize("tail", [0.0, 0.1])
def test_gaussian_core(tail: float) -> None:
    n, core, wide = 20_000, 0.03, 0.15
    rng = np.random.default_rng(5)
    x = np.where(rng.uniform(size=n) < tail, wide, core) * rng.standard_normal(n)
    mean, sigma = gaussian_core(x + 0.01)
    expected = core_fixed_point([1.0 - tail, tail], [core, wide])
    if tail == 0.0:
        assert expected == pytest.approx(core)
    # The clipped estimator is less efficient than the full-sample one (σ/√(2N)); its
    # efficiency for a Gaussian is ≈ 0.36, so 0.25 is safe. Allow 4 of those errors.
    tol = 4.0 * expected / np.sqrt(2.0 * n * 0.25)
    assert sigma == pytest.approx(expected, abs=tol)
    assert mean == pytest.approx(0.01, abs=4.0 * 1.2 * expected / np.sqrt(n))
    assert gaussian_core(np.full(10, 2.0)) == (2.0, 0.0)


def test_plot_events_writes_figures_and_notes_what_it_skips(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n_gen = 5000
    c, p = sample_angles(THETA, n_gen, rng)
    kept = np.abs(c) < 0.5
    n = int(kept.sum())
    true_mass = 4.5 + rng.exponential(1.0, n)
    columns = {
        "true_costh": c[kept],
        "true_phi": p[kept],
        "costh": c[kept],
        "phi": p[kept],
        "true_mass": true_mass,
        "mass": true_mass * (1.0 + 0.03 * rng.standard_normal(n)),
    }
    table = EventTable(columns, {"theta": THETA.tolist(), "n_generated": n_gen})
    paths = plot_events(table, tmp_path / "figs")
    stems = {f"reco_vs_truth_{v}" for v in ("mass", "costh", "phi")}
    stems |= {"acceptance", "mass_resolution"}
    assert {q.name for q in paths} == {s + e for s in stems for e in (".png", ".pdf")}
    assert all(q.stat().st_size > 1000 for q in paths)
    with pytest.warns(DyfitWarning, match="acceptance plot skipped"):
        paths = plot_events(EventTable(columns, {"prior": {}}), tmp_path / "prior")
    assert "acceptance.png" not in {q.name for q in paths}
