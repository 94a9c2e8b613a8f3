"""Tests of the SeaQuest-like spectrometer simulation and reconstruction (dyfit.detector)."""

from __future__ import annotations

import numpy as np
import pytest

from dyfit.config import load_toml, validate
from dyfit.data.columns import DIMUON_COLUMNS, TRUTH_LEPTON_COLUMNS
from dyfit.data.events import EventTable
from dyfit.detector import STAGES, DetectorSummary, SpectrometerConfig, simulate_detector
from dyfit.detector.config import FmagConfig, TargetConfig
from dyfit.detector.propagation import drift, scatter, thin_kick, traverse_fmag
from dyfit.detector.reconstruction import fit_kmag_tracks
from dyfit.errors import ConfigError, InputError
from dyfit.physics.angular import THETA0, sample_angles
from dyfit.physics.kinematics import (
    M_MUON,
    beam_target,
    boost,
    dilepton_observables,
    leptons_from_collins_soper,
    minkowski_dot,
)

BEAM, TARGET = beam_target(120.0)
S = minkowski_dot(BEAM + TARGET, BEAM + TARGET)


def _valence(x):
    return x**-0.5 * (1.0 - x) ** 3


def _sea(x):
    return (1.0 - x) ** 7 / x


def drell_yan_truth(n: int, rng: np.random.Generator, mass=(4.5, 9.0)) -> EventTable:
    """Leading-order-like p+p Drell-Yan truth at 120 GeV with toy parton densities.

    dσ/dx1dx2 ∝ [q(x1)q̄(x2) + q̄(x1)q(x2)] / (x1 x2), sampled in (τ, y) with a τ⁻² proposal;
    pT from the Kaplan form with SeaQuest's p1 = 2.41 - 0.77|xF| GeV; angles 1 + cos²θ.
    """
    tau_lo, tau_hi = mass[0] ** 2 / S, mass[1] ** 2 / S
    # The weight below peaks at y = 0, τ = τ_lo (checked by the assert).
    bound = 1.05 * 2.0 * _valence(np.sqrt(tau_lo)) * _sea(np.sqrt(tau_lo)) * tau_lo
    x1s, x2s, got = [], [], 0
    while got < n:
        m = 8 * (n - got) + 1000
        tau = 1.0 / (1.0 / tau_lo - rng.random(m) * (1.0 / tau_lo - 1.0 / tau_hi))
        y = rng.uniform(-1.25, 1.25, m)
        x1, x2 = np.sqrt(tau) * np.exp(y), np.sqrt(tau) * np.exp(-y)
        ok = (x1 < 1.0) & (x2 < 1.0)
        a, b = np.where(ok, x1, 0.5), np.where(ok, x2, 0.5)
        w = np.where(ok, (_valence(a) * _sea(b) + _sea(a) * _valence(b)) * tau, 0.0)
        assert w.max() < bound
        keep = rng.random(m) * bound < w
        x1s.append(x1[keep])
        x2s.append(x2[keep])
        got += int(keep.sum())
    x1, x2 = np.concatenate(x1s)[:n], np.concatenate(x2s)[:n]
    mass_ = np.sqrt(x1 * x2 * S)
    pz = 0.5 * (x1 - x2) * np.sqrt(S)
    pt = (2.41 - 0.77 * np.abs(x1 - x2)) * np.sqrt(rng.uniform(1e-3, 1.0, n) ** -0.2 - 1.0)
    phi_q = rng.uniform(-np.pi, np.pi, n)
    energy = np.sqrt(mass_**2 + pt**2 + pz**2)
    q_cm = np.stack([energy, pt * np.cos(phi_q), pt * np.sin(phi_q), pz], axis=-1)
    total = BEAM + TARGET
    q = boost(q_cm, np.broadcast_to(-total[1:] / total[0], (n, 3)))
    costh, phi = sample_angles(THETA0, n, rng)
    l_plus, l_minus = leptons_from_collins_soper(q, costh, phi, BEAM, TARGET)
    four = np.concatenate([l_plus, l_minus], axis=-1)
    return EventTable({c: four[:, i] for i, c in enumerate(TRUTH_LEPTON_COLUMNS)})


@pytest.fixture(scope="module")
def truth() -> EventTable:
    return drell_yan_truth(300_000, np.random.default_rng(11))


@pytest.fixture(scope="module")
def smeared(truth):
    return simulate_detector(truth, SpectrometerConfig(), np.random.default_rng(12), debug=True)


@pytest.fixture(scope="module")
def noiseless(truth):
    return simulate_detector(truth, SpectrometerConfig(), np.random.default_rng(13), smearing=False)


def _wrap(dphi):
    return np.angle(np.exp(1j * dphi))


def _constrained_oracle(table: EventTable, config: SpectrometerConfig) -> dict:
    """What noiseless reconstruction must give: each muon with its true |p|, pointing from
    (0, 0, z_target) to where its true straight path from the true vertex meets FMAG's
    kick plane (the only approximation left without scattering)."""
    vertex = table.matrix(["true_vx", "true_vy", "true_vz"])
    z_kick = config.fmag.z_kick_cm
    leptons = []
    for lep in ("mup", "mum"):
        p = table.matrix([f"true_{lep}_{c}" for c in ("px", "py", "pz")])
        point = vertex + p / p[:, 2:] * (z_kick - vertex[:, 2:])
        d = point - np.array([0.0, 0.0, config.target.z_center_cm])
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        size = np.linalg.norm(p, axis=1, keepdims=True)
        leptons.append(np.concatenate([np.sqrt(size**2 + M_MUON**2), size * d], axis=1))
    return dilepton_observables(*leptons, BEAM, TARGET)


def test_noiseless_reconstruction_matches_the_vertex_constraint_oracle(noiseless):
    out, _ = noiseless
    expected = _constrained_oracle(out, SpectrometerConfig())
    assert len(out) > 1000
    for c in ("mass", "pT", "xF", "costh", "x1", "x2"):
        # The p0 - ΔE(p0) = p1 iteration converges to ~1e-9 GeV after 4 steps.
        np.testing.assert_allclose(out[c], expected[c], rtol=0, atol=1e-7, err_msg=c)
    # φ is ill-defined as pT -> 0; pT·Δφ is the transverse displacement it stands for.
    assert np.max(out["pT"] * np.abs(_wrap(out["phi"] - expected["phi"]))) < 1e-7


def test_point_vertex_noiseless_reco_equals_truth(truth):
    point = SpectrometerConfig(
        target=TargetConfig(length_cm=0.0, beam_sigma_x_cm=0.0, beam_sigma_y_cm=0.0)
    )
    out, _ = simulate_detector(truth.head(100_000), point, np.random.default_rng(1), smearing=False)
    assert len(out) > 300
    for c in ("mass", "pT", "xF", "costh", "x1", "x2", "mup_px", "mum_pz", "mum_E"):
        np.testing.assert_allclose(out[c], out["true_" + c], rtol=0, atol=1e-7, err_msg=c)
    assert np.max(out["pT"] * np.abs(_wrap(out["phi"] - out["true_phi"]))) < 1e-7


def test_noiseless_reco_is_close_to_truth(noiseless):
    out, _ = noiseless
    # A vertex at z_v scales both muons' angles, hence M and pT, by
    # s = (z_kick - z_v)/(z_kick - z_target): |s - 1| <= 25.4/381.5 = 6.7 %. Beyond that law
    # only second-order terms (≈ (s-1)·θ² ~ 1e-4) and the beam spot remain.
    s = (251.5 - out["true_vz"]) / 381.5
    assert np.max(np.abs(out["mass"] / out["true_mass"] - s)) < 5e-3
    assert np.max(np.abs(out["mass"] / out["true_mass"] - 1.0)) < 0.07
    # The 0.3 cm beam spot tilts both muons by ≈ 0.8 mrad: δpT ≈ 70 GeV × 0.3/381.5 = 0.055
    # GeV rms per component, and each muon's E - pz ≈ pθ²/2 moves by a few percent, so
    # cosθ moves by ≈ 0.01 and φ by ≈ δpT/pT; xF follows the rescaled mass at fixed E
    # (≈ 0.02). Bounds at about twice these first-order estimates.
    assert np.sqrt(np.mean((out["pT"] - s * out["true_pT"]) ** 2)) < 0.1
    assert np.sqrt(np.mean((out["costh"] - out["true_costh"]) ** 2)) < 0.02
    assert np.sqrt(np.mean((out["xF"] - out["true_xF"]) ** 2)) < 0.04
    hard = out["true_pT"] > 0.5
    assert np.sqrt(np.mean(_wrap(out["phi"] - out["true_phi"])[hard] ** 2)) < 0.15


def test_smeared_mass_resolution_and_bias(smeared, noiseless):
    ratios = []
    for out, _ in (smeared, noiseless):
        window = (out["true_mass"] > 5.0) & (out["true_mass"] < 6.0)
        ratios.append(out["mass"][window] / out["true_mass"][window] - 1.0)
    r, r0 = ratios
    assert r.size > 1000
    # Unbiased within 0.5 % (a tenth of the resolution); the statistical σ of the mean is
    # 0.05/√N ≈ 0.1 % (N ≈ 2800), so a 0.5 % bias shows at > 4σ. Away from the generated mass edges
    # (4.5, 9) no events migrate in from one side only.
    assert abs(np.mean(r)) < 5e-3
    # Few-percent resolution: the target length alone gives 14.7/381.5 = 3.8 % (checked on
    # the noiseless sample, σ of the rms ≈ 3.8 %/√(2N) ≈ 0.07 %); scattering, straggling and
    # hits add ≈ 3.5 % in quadrature.
    assert np.std(r0) == pytest.approx(50.8 / np.sqrt(12.0) / 381.5, abs=0.004)
    assert 0.045 < np.std(r) < 0.065
    assert np.std(r) ** 2 - np.std(r0) ** 2 > 0.02**2


def test_acceptance_and_costh_concentration(smeared):
    out, summary = smeared
    # Measured ≈ 2.0 % of LO-like pairs with 4.5 < M < 9 GeV; binomial σ ≈ 0.03 %.
    assert 0.01 < summary.acceptance < 0.05
    # Measured ≈ 94 %; binomial σ ≈ 0.3 % with N ≈ 5900.
    assert np.mean(np.abs(out["true_costh"]) < 0.5) > 0.9


def test_trigger_one_muon_up_one_down(truth, smeared):
    out, summary = smeared
    assert np.all(out["true_mup_y_st3"] * out["true_mum_y_st3"] < 0.0)
    assert np.all(out["mup_nhits_st1"] >= 4) and np.all(out["mum_nhits_st3"] >= 4)
    no_trigger = SpectrometerConfig(trigger_opposite_y_st3=False)
    free, free_summary = simulate_detector(truth, no_trigger, np.random.default_rng(12), debug=True)
    assert free_summary.counts["trigger"] == free_summary.counts["station4"]
    assert np.any(free["true_mup_y_st3"] * free["true_mum_y_st3"] > 0.0)
    assert free_summary.accepted > summary.accepted


def test_summary_counts(smeared, truth):
    out, summary = smeared
    counts = [summary.counts[s] for s in STAGES]
    assert list(summary.counts) == list(STAGES)
    assert counts[0] == len(truth) and summary.accepted == len(out)
    assert all(a >= b for a, b in zip(counts, counts[1:], strict=False))
    assert (summary + summary).accepted == 2 * summary.accepted
    assert sum([summary, summary]).generated == 2 * len(truth)
    assert "trigger" in str(summary)


def test_columns_carried_and_truth_observables(truth):
    small = truth.head(20_000)
    extra = small.with_columns({"event_id": np.arange(len(small))})
    out, _ = simulate_detector(extra, SpectrometerConfig(), np.random.default_rng(3))
    for c in (*TRUTH_LEPTON_COLUMNS, "event_id", "true_vx", "true_vy", "true_vz"):
        assert c in out
    for c in DIMUON_COLUMNS:
        assert c in out and "true_" + c in out
    # The truth columns must stay with their event.
    rows = out["event_id"]
    np.testing.assert_array_equal(out["true_mup_pz"], small["true_mup_pz"][rows])
    got = dilepton_observables(
        small.matrix(TRUTH_LEPTON_COLUMNS[:4])[rows],
        small.matrix(TRUTH_LEPTON_COLUMNS[4:])[rows],
        BEAM,
        TARGET,
    )
    np.testing.assert_allclose(out["true_costh"], got["costh"], atol=1e-12)
    # Truth observables already present are kept, not recomputed.
    given = small.with_columns({"true_mass": np.full(len(small), 42.0)})
    out2, _ = simulate_detector(given, SpectrometerConfig(), np.random.default_rng(3))
    assert np.all(out2["true_mass"] == 42.0)


def test_same_seed_same_output(truth):
    small = truth.head(30_000)
    a, sa = simulate_detector(small, SpectrometerConfig(), np.random.default_rng(5))
    b, sb = simulate_detector(small, SpectrometerConfig(), np.random.default_rng(5))
    c, _ = simulate_detector(small, SpectrometerConfig(), np.random.default_rng(6))
    assert sa == sb and a.names == b.names
    for name in a.names:
        np.testing.assert_array_equal(a[name], b[name])
    assert not (len(a) == len(c) and np.array_equal(a["mass"], c["mass"]))


def test_missing_truth_columns_raise():
    table = EventTable({"true_mup_E": np.ones(3), "true_mup_px": np.ones(3)})
    with pytest.raises(InputError, match="true_mup_py.*true_mum_pz"):
        simulate_detector(table, SpectrometerConfig(), np.random.default_rng(0))


def test_config_from_toml(tmp_path):
    path = tmp_path / "det.toml"
    path.write_text(
        "[fmag]\npt_kick_GeV = 2.9\n[cuts]\nmass_GeV = [5.0, inf]\n"
        "[station1]\nz_cm = 660.0\nx_range_cm = [-80, 80]\ny_range_cm = [-70, 70]\n"
    )
    config = load_toml(path, SpectrometerConfig)
    assert config.fmag.pt_kick_GeV == 2.9 and config.cuts.mass_GeV == (5.0, float("inf"))
    assert config.station1.z_cm == 660.0 and config.kmag.pt_kick_GeV == 0.41
    path.write_text("[fmag]\nptkick = 3.0\n")
    with pytest.raises(ConfigError, match="ptkick"):
        load_toml(path, SpectrometerConfig)
    with pytest.raises(ConfigError, match="low < high"):
        validate(SpectrometerConfig, {"cuts": {"xF": [0.9, 0.1]}})
    with pytest.raises(ConfigError, match="out of order"):
        validate(SpectrometerConfig, {"kmag": {"z_kick_cm": 2500.0}})


def test_scatter_follows_the_pdg_correlated_gaussians():
    n, theta0, length = 200_000, 0.01, 100.0
    zeros = np.zeros(n)
    x, _, tx, _ = scatter(zeros, zeros, zeros, zeros, theta0, length, np.random.default_rng(2))
    # σ of a sample rms is rms/√(2n) = 0.16 %: 1 % is > 6σ. The correlation's σ is
    # (1 - ρ²)/√n ≈ 6e-4.
    assert np.std(tx) == pytest.approx(theta0, rel=0.01)
    assert np.std(x) == pytest.approx(length * theta0 / np.sqrt(3.0), rel=0.01)
    assert np.corrcoef(x, tx)[0, 1] == pytest.approx(np.sqrt(3.0) / 2.0, abs=3e-3)


def test_fmag_energy_loss_and_scattering():
    fmag = FmagConfig(pt_kick_GeV=0.0, eloss_log_slope_GeV=0.0)
    n, p0 = 100_000, 50.0
    zeros, p = np.zeros(n), np.full(n, p0)
    rng = np.random.default_rng(4)
    x, _, tx, _, p1, ok = traverse_fmag(zeros, zeros, zeros, zeros, p, 1.0, fmag, rng)
    assert ok.all()
    # Mean loss 7.7 GeV, straggling σ 0.3 GeV: the mean is good to 0.3/√n ≈ 1e-3 GeV.
    assert np.mean(p0 - p1) == pytest.approx(7.7, abs=5e-3)
    assert np.std(p1) == pytest.approx(0.3, rel=0.02)
    # θ0 = 0.28/p per full length, split into halves at their mean momenta.
    p_half = np.array([p0 - 7.7 / 4.0, p0 - 3.0 * 7.7 / 4.0])
    theta_half = 0.28 / np.sqrt(2.0) / p_half
    assert np.std(tx) == pytest.approx(np.sqrt(np.sum(theta_half**2)), rel=0.02)
    # Exit displacement: each half's own (1/12 + 1/4) plus the first half's angle carried
    # over the second, h²θ1²(1/12 + (1/2 + 1)²) + h²θ2²/3; at equal θ this is L θ0/√3.
    var_x = 251.5**2 * (theta_half[0] ** 2 * 7.0 / 3.0 + theta_half[1] ** 2 / 3.0)
    assert np.std(x) == pytest.approx(np.sqrt(var_x), rel=0.02)


def test_kmag_fit_inverts_the_thin_kick():
    rng = np.random.default_rng(9)
    n = 1000
    p = rng.uniform(5.0, 100.0, (n, 2))
    tx, ty = rng.uniform(-0.1, 0.1, (2, n, 2))
    charge = np.array([1.0, -1.0])
    z1, zk, z2, z3 = 667.0, 1042.0, 1340.0, 1910.0
    x1, y1 = rng.normal(0.0, 20.0, (2, n, 2))
    xk, yk = drift(x1, y1, tx, ty, zk - z1)
    tx_a, ty_a, forward = thin_kick(tx, ty, p, charge * 0.41)
    assert forward.all()
    x2, y2 = drift(xk, yk, tx_a, ty_a, z2 - zk)
    x3, y3 = drift(xk, yk, tx_a, ty_a, z3 - zk)
    xs, ys = np.stack([x1, x2, x3], axis=1), np.stack([y1, y2, y3], axis=1)
    got_tx, got_ty, inv_p, got_q = fit_kmag_tracks(xs, ys, (z1, z2, z3), zk, 0.41)
    np.testing.assert_allclose(got_tx, tx, atol=1e-12)
    np.testing.assert_allclose(got_ty, ty, atol=1e-12)
    np.testing.assert_allclose(1.0 / inv_p, p, rtol=1e-9)
    np.testing.assert_array_equal(got_q, np.broadcast_to(charge, (n, 2)))
    # The kick adds ≈ 0.41 GeV to px and keeps |p| and py.
    pz_a = p / np.sqrt(1.0 + tx_a**2 + ty_a**2)
    pz_b = p / np.sqrt(1.0 + tx**2 + ty**2)
    np.testing.assert_allclose(ty_a * pz_a, ty * pz_b, rtol=1e-12)
    np.testing.assert_allclose(
        tx_a * pz_a - tx * pz_b, np.broadcast_to(0.41 * charge, (n, 2)), rtol=0.01
    )


def test_summary_of_no_events(truth):
    out, summary = simulate_detector(truth.head(0), SpectrometerConfig(), np.random.default_rng(0))
    assert len(out) == 0 and summary.acceptance == 0.0 and isinstance(summary, DetectorSummary)
