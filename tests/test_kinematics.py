"""Four-vector kinematics and the Collins-Soper frame against independent computations."""

import numpy as np
import pytest

from dyfit.physics.kinematics import (
    M_MUON,
    beam_target,
    boost,
    collins_soper_angles,
    dilepton_observables,
    invariant_mass,
    leptons_from_collins_soper,
    minkowski_dot,
)

P1, P2 = beam_target(120.0)


SQRT_S = np.sqrt(minkowski_dot(P1 + P2, P1 + P2))
TOTAL = P1 + P2
Y_CM = 0.5 * np.log((TOTAL[0] + TOTAL[3]) / (TOTAL[0] - TOTAL[3]))  # 2.77 at 120 GeV


def random_dileptons(n, rng):
    """Dileptons with -0.5 < xF < 0.95 built in the hadron CM, then boosted to the lab."""
    mass = rng.uniform(4.0, 9.0, n)
    pt = rng.exponential(1.0, n)
    phi_q = rng.uniform(-np.pi, np.pi, n)
    pz_cm = rng.uniform(-0.5, 0.95, n) * SQRT_S * (1 - mass**2 / SQRT_S**2) / 2
    e_cm = np.sqrt(mass**2 + pt**2 + pz_cm**2)
    energy = e_cm * np.cosh(Y_CM) + pz_cm * np.sinh(Y_CM)
    pz = pz_cm * np.cosh(Y_CM) + e_cm * np.sinh(Y_CM)
    return np.stack([energy, pt * np.cos(phi_q), pt * np.sin(phi_q), pz], axis=-1)


def test_sqrt_s_of_120_gev_beam():
    assert np.sqrt(minkowski_dot(P1 + P2, P1 + P2)) == pytest.approx(15.0647, abs=1e-3)


def test_boost_preserves_invariants_and_reaches_rest_frame():
    rng = np.random.default_rng(0)
    q = random_dileptons(1000, rng)
    rest = boost(q, q[:, 1:] / q[:, :1])
    np.testing.assert_allclose(rest[:, 1:], 0.0, atol=1e-9)
    np.testing.assert_allclose(rest[:, 0], invariant_mass(q), rtol=1e-10)


def test_round_trip_through_collins_soper_frame():
    rng = np.random.default_rng(1)
    q = random_dileptons(20_000, rng)
    c = rng.uniform(-1, 1, q.shape[0])
    p = rng.uniform(-np.pi, np.pi, q.shape[0])
    lp, lm = leptons_from_collins_soper(q, c, p, P1, P2)
    np.testing.assert_allclose(lp + lm, q, atol=1e-9)
    np.testing.assert_allclose(invariant_mass(lp), M_MUON, rtol=1e-6)
    c2, p2 = collins_soper_angles(lp, lm, P1, P2)
    np.testing.assert_allclose(c2, c, atol=1e-9)
    # phi is undefined at |cos(theta)| -> 1; compare it where sin(theta) > 1e-3.
    ok = np.abs(c) < 1 - 1e-6
    np.testing.assert_allclose(np.angle(np.exp(1j * (p2 - p)))[ok], 0.0, atol=1e-9)


def test_light_cone_formula_agrees_in_the_massless_limit_only_approximately():
    """The exact frame vs the massless light-cone cos(theta): close, but not identical."""
    rng = np.random.default_rng(2)
    q = random_dileptons(20_000, rng)
    c = rng.uniform(-1, 1, q.shape[0])
    lp, lm = leptons_from_collins_soper(q, c, np.zeros_like(c), P1, P2)

    def plus_minus(v):
        return (v[:, 0] + v[:, 3]) / np.sqrt(2), (v[:, 0] - v[:, 3]) / np.sqrt(2)

    (l1p, l1m), (l2p, l2m) = plus_minus(lp), plus_minus(lm)
    mass, qt = invariant_mass(q), np.hypot(q[:, 1], q[:, 2])
    light_cone = 2 * (l1p * l2m - l1m * l2p) / (mass * np.sqrt(mass**2 + qt**2))
    diff = np.abs(light_cone - c)
    # The two definitions differ by terms of order m_p^2 / (M^2 + ...): up to ~0.01 here.
    assert diff.max() < 0.03
    assert diff.max() > 1e-3


def test_x_axis_follows_dilepton_transverse_momentum():
    """A positive lepton emitted along +q_T in the lab has phi near 0 (mu > 0 convention)."""
    q = np.array([[np.sqrt(25 + 4 + 900), 2.0, 0.0, 30.0]])
    lp, lm = leptons_from_collins_soper(q, np.array([0.0]), np.array([0.0]), P1, P2)
    boosted = boost(lp, q[:, 1:] / q[:, :1])
    assert boosted[0, 1] > 0.9 * np.linalg.norm(boosted[0, 1:])


def test_observables_xf_and_momentum_fractions():
    rng = np.random.default_rng(4)
    q = random_dileptons(5000, rng)
    lp, lm = leptons_from_collins_soper(q, rng.uniform(-1, 1, 5000), np.zeros(5000), P1, P2)
    obs = dilepton_observables(lp, lm, P1, P2)
    # Independent xF: rapidity boost along z to the centre of mass.
    pz_cm = q[:, 3] * np.cosh(Y_CM) - q[:, 0] * np.sinh(Y_CM)
    xf = 2 * pz_cm / (SQRT_S * (1 - obs["mass"] ** 2 / SQRT_S**2))
    np.testing.assert_allclose(obs["xF"], xf, atol=1e-9)
    # x1, x2 written out in the CM, where the hadrons are (E_p, 0, 0, +-p) with E_p = sqrt(s)/2.
    e_cm = q[:, 0] * np.cosh(Y_CM) - q[:, 3] * np.sinh(Y_CM)
    e_p = SQRT_S / 2
    p_p = np.sqrt(e_p**2 - P2[0] ** 2)
    np.testing.assert_allclose(obs["x1"], (e_p * e_cm + p_p * pz_cm) / (e_p**2 + p_p**2), rtol=1e-9)
    np.testing.assert_allclose(obs["x2"], (e_p * e_cm - p_p * pz_cm) / (e_p**2 + p_p**2), rtol=1e-9)
