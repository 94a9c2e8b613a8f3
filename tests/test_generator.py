"""The LO Drell-Yan generator: frames, angular moments, (M, xF) spectra, targets, config."""

from itertools import pairwise

import numpy as np
import pytest
from scipy import stats

from dyfit.config import validate
from dyfit.data.columns import THETA_COLUMNS, TRUTH_LEPTON_COLUMNS
from dyfit.errors import ConfigError, InputError
from dyfit.physics.generator import (
    GeneratorConfig,
    _Sampler,
    _sampler,
    generate_truth,
    integrated_cross_section,
    lo_cross_section,
)
from dyfit.physics.kinematics import (
    M_MUON,
    M_PROTON,
    beam_target,
    collins_soper_angles,
    dilepton_observables,
    invariant_mass,
)
from dyfit.physics.pdf import cteq5l

ALPHA = 1.0 / 137.035999
NB = 0.3893794e6  # GeV² nb
N_SPECTRUM = 200_000


@pytest.fixture(scope="module")
def sample_p():
    return generate_truth(N_SPECTRUM, [1.0, 0.0, 0.0], GeneratorConfig(), np.random.default_rng(1))


@pytest.fixture(scope="module")
def sample_d():
    cfg = GeneratorConfig(target="d")
    return generate_truth(N_SPECTRUM, [1.0, 0.0, 0.0], cfg, np.random.default_rng(2))


# An independent computation of the same cross-section: d²σ/dM dy in the textbook form
# 8πα²/(9Ms) Σ e² [q(x1) q̄(x2) + q̄(x1) q(x2)], integrated over y between the rapidities of
# the xF (or x2) limits, so the generator's Jacobian dy/dxF never enters.
def _s(config):
    return 2.0 * M_PROTON * (M_PROTON + config.beam_energy)


def _dsigma_dm_dy(m, y, config):
    s = _s(config)
    x1 = m / np.sqrt(s) * np.exp(y)
    x2 = m / np.sqrt(s) * np.exp(-y)
    f1 = cteq5l().number_densities(x1, m * m, "p")
    f2 = cteq5l().number_densities(x2, m * m, config.target)
    charge2 = {1: 1 / 9, 2: 4 / 9, 3: 1 / 9, 4: 4 / 9}
    lumi = sum(e2 * (f1[q] * f2[-q] + f1[-q] * f2[q]) for q, e2 in charge2.items())
    return 8.0 * np.pi * ALPHA**2 / (9.0 * m * s) * lumi * NB


def _y_of_xf(xf, m, config):
    s = _s(config)
    return np.arcsinh(xf * np.sqrt(s) * (1.0 - m * m / s) / (2.0 * m))


def _integral(m_lo, m_hi, y_limits, config, n=8, pieces=16):
    """∫ dM ∫ dy d²σ/dM dy over [m_lo, m_hi] × y_limits(M), composite Gauss-Legendre."""
    g, w = np.polynomial.legendre.leggauss(n)
    edges = np.geomspace(m_lo, m_hi, pieces + 1)
    half = 0.5 * np.diff(edges)[:, None]
    m = (0.5 * (edges[:-1] + edges[1:])[:, None] + half * g).ravel()
    wm = (half * w).ravel()
    y_lo, y_hi = y_limits(m)
    y_hi = np.maximum(y_hi, y_lo)
    yh = 0.5 * (y_hi - y_lo)[:, None]
    y = 0.5 * (y_lo + y_hi)[:, None] + yh * g
    inner = np.sum(yh * w * _dsigma_dm_dy(m[:, None], y, config), axis=1)
    return float(np.sum(wm * inner))


def _xf_limits(lo, hi, config):
    return lambda m: (_y_of_xf(lo, m, config), _y_of_xf(hi, m, config))


def _chi2_pvalue(observed, expected_fraction):
    expected = observed.sum() * np.asarray(expected_fraction) / np.sum(expected_fraction)
    chi2 = np.sum((observed - expected) ** 2 / expected)
    return stats.chi2.sf(chi2, observed.size - 1)


def test_xf_spectrum_matches_lo_integral(sample_p):
    cfg = GeneratorConfig()
    edges = np.linspace(*cfg.xf_range, 27)
    expected = [_integral(4.0, 10.0, _xf_limits(a, b, cfg), cfg) for a, b in pairwise(edges)]
    observed, _ = np.histogram(sample_p["true_xF"], edges)
    assert _chi2_pvalue(observed, expected) > 1e-3
    # The generator's own trapezoid integral is the same number to its 1e-4 accuracy.
    assert np.sum(expected) == pytest.approx(integrated_cross_section(cfg), rel=1e-3)


def test_mass_spectrum_matches_lo_integral(sample_p):
    cfg = GeneratorConfig()
    edges = np.append(np.geomspace(4.0, 8.0, 19), 10.0)  # ≥ 100 expected events per bin
    limits = _xf_limits(*cfg.xf_range, cfg)
    expected = [_integral(a, b, limits, cfg, pieces=2) for a, b in pairwise(edges)]
    observed, _ = np.histogram(sample_p["true_mass"], edges)
    assert _chi2_pvalue(observed, expected) > 1e-3


def test_lo_cross_section_against_rapidity_form():
    cfg = GeneratorConfig()
    rng = np.random.default_rng(3)
    m = rng.uniform(4.0, 10.0, 200)
    xf = rng.uniform(-0.3, 0.9, 200)
    h = 1e-6  # dy/dxF by a central difference: an independent Jacobian, good to ~1e-9
    jac = (_y_of_xf(xf + h, m, cfg) - _y_of_xf(xf - h, m, cfg)) / (2 * h)
    want = _dsigma_dm_dy(m, _y_of_xf(xf, m, cfg), cfg) * jac
    np.testing.assert_allclose(lo_cross_section(m, xf, cfg), want, rtol=1e-7)


def test_frames_and_observables_recomputed_from_four_vectors():
    cfg = GeneratorConfig()
    ev = generate_truth(20_000, [0.6, 0.2, 0.3], cfg, np.random.default_rng(4))
    p_beam, p_target = beam_target(cfg.beam_energy)
    l_plus = ev.matrix(TRUTH_LEPTON_COLUMNS[:4])
    l_minus = ev.matrix(TRUTH_LEPTON_COLUMNS[4:])
    np.testing.assert_allclose(invariant_mass(l_plus), M_MUON, rtol=1e-6)
    np.testing.assert_allclose(invariant_mass(l_minus), M_MUON, rtol=1e-6)
    costh, phi = collins_soper_angles(l_plus, l_minus, p_beam, p_target)

    # Compare directions, not φ itself, which is undefined at cosθ = ±1.
    def direction(c, p):
        s = np.sqrt(1.0 - c * c)
        return np.stack([s * np.cos(p), s * np.sin(p), c], axis=-1)

    got = direction(costh, phi)
    np.testing.assert_allclose(got, direction(ev["true_costh"], ev["true_phi"]), atol=1e-9)
    obs = dilepton_observables(l_plus, l_minus, p_beam, p_target)
    for name in ("mass", "pT", "xF", "x1", "x2"):
        np.testing.assert_allclose(obs[name], ev["true_" + name], rtol=0, atol=1e-9, err_msg=name)
    assert np.all((ev["true_mass"] >= 4.0) & (ev["true_mass"] <= 10.0))
    assert np.all((ev["true_xF"] >= -0.3) & (ev["true_xF"] <= 0.99))
    assert np.all(ev["true_pT"] <= cfg.pt_max)
    assert np.all((ev["true_x1"] > 0) & (ev["true_x1"] < 1) & (ev["true_x2"] > 0))
    assert ev.meta["generator"] == "dyfit-lo" and ev.meta["pdf"].startswith("CTEQ5L")
    assert ev.meta["generator_config"] == cfg.model_dump()


def _moments(ev):
    c, p = ev["true_costh"], ev["true_phi"]
    s2 = 1.0 - c * c
    return np.stack([c * c, 2.0 * c * np.sqrt(s2) * np.cos(p), s2 * np.cos(2.0 * p)], axis=-1)


def _expected_moments(lam, mu, nu):
    return np.array(
        [(5 + 3 * lam) / (5 * (3 + lam)), 4 * mu / (5 * (3 + lam)), 2 * nu / (5 * (3 + lam))]
    )


@pytest.mark.parametrize("theta", [(1.0, 0.0, 0.0), (0.5, 0.2, 0.4), (-0.4, -0.15, 0.5)])
def test_angular_moments_recover_theta(theta):
    ev = generate_truth(100_000, theta, GeneratorConfig(), np.random.default_rng(5))
    mom = _moments(ev)
    # Each mean is within 3 standard errors (sample std / √N) of its analytic value.
    err = mom.std(axis=0) / np.sqrt(len(ev))
    assert np.all(np.abs(mom.mean(axis=0) - _expected_moments(*theta)) < 3 * err)
    for name, value in zip(THETA_COLUMNS, theta, strict=True):
        assert np.all(ev[name] == value)


def test_per_event_theta():
    a, b = np.array([1.4, 0.0, -0.3]), np.array([0.2, 0.3, 0.6])
    theta = np.where(np.arange(120_000)[:, None] % 2 == 0, a, b)
    ev = generate_truth(120_000, theta, GeneratorConfig(), np.random.default_rng(6))
    np.testing.assert_array_equal(ev.matrix(THETA_COLUMNS), theta)
    mom = _moments(ev)
    for rows, th in ((slice(0, None, 2), a), (slice(1, None, 2), b)):
        err = mom[rows].std(axis=0) / np.sqrt(mom[rows].shape[0])
        assert np.all(np.abs(mom[rows].mean(axis=0) - _expected_moments(*th)) < 3 * err)


def test_same_seed_same_events():
    cfg = GeneratorConfig(target="d")
    one = generate_truth(70_000, [0.8, 0.1, 0.2], cfg, np.random.default_rng(9))
    two = generate_truth(70_000, [0.8, 0.1, 0.2], cfg, np.random.default_rng(9))
    other = generate_truth(70_000, [0.8, 0.1, 0.2], cfg, np.random.default_rng(10))
    assert one.names == two.names and len(one) == 70_000
    for name in one.names:
        np.testing.assert_array_equal(one[name], two[name])
    assert not np.array_equal(one["true_mass"], other["true_mass"])


def test_deuteron_enhances_large_x2(sample_p, sample_d):
    # Per nucleon, p+n exceeds p+p where the beam's u(x1) meets the target's sea: u(x1)d̄(x2)
    # replaces u(x1)ū(x2), so σ_pd/2σ_pp ≈ ½(1 + d̄/ū) at large x1, diluted by the d(x1)
    # and sea-x1 terms. CTEQ5L has d̄/ū ≈ 1.57 at x2 = 0.2.
    lo, hi = 0.17, 0.23
    cfg_p, cfg_d = GeneratorConfig(), GeneratorConfig(target="d")

    def in_window(ev, cfg):  # the PDF's x2 = (E* - p*_z)/√s at pT = 0, from (M, xF)
        s = _s(cfg)
        m, xf = ev["true_mass"], ev["true_xF"]
        pz = 0.5 * np.sqrt(s) * (1 - m * m / s) * xf
        x2 = (np.sqrt(m * m + pz * pz) - pz) / np.sqrt(s)
        return np.count_nonzero((x2 > lo) & (x2 < hi))

    def window_integral(cfg):
        def limits(m):
            y_lo, y_hi = _xf_limits(*cfg.xf_range, cfg)(m)
            rt = m / np.sqrt(_s(cfg))
            return np.maximum(y_lo, np.log(rt / hi)), np.minimum(y_hi, np.log(rt / lo))

        return _integral(4.0, 10.0, limits, cfg)

    k_p, k_d = in_window(sample_p, cfg_p), in_window(sample_d, cfg_d)
    sig_p, sig_d = integrated_cross_section(cfg_p), integrated_cross_section(cfg_d)
    measured = (sig_d * k_d / N_SPECTRUM) / (sig_p * k_p / N_SPECTRUM)
    # Binomial counts: relative variance of k/N is 1/k - 1/N for each sample.
    err = measured * np.sqrt(1 / k_p + 1 / k_d - 2 / N_SPECTRUM)
    expected = window_integral(cfg_d) / window_integral(cfg_p)
    assert abs(measured - expected) < 3 * err
    f = cteq5l().number_densities(0.2, 25.0)
    assert 1.1 < expected < 0.5 * (1 + f[-1] / f[-2])
    assert measured - 1.0 > 5 * err


def test_accept_reject_bounds_hold():
    # Exactness rests on squeeze ≤ density ≤ bound in every cell; probe each cell off its nodes.
    rng = np.random.default_rng(8)
    for cfg in (GeneratorConfig(), GeneratorConfig(target="d", mass_range=(4.5, 8.8))):
        s = _sampler(cfg)
        cell = np.repeat(np.arange(s.bound.size), 100)
        im, ix = np.divmod(cell, s.N_XF)
        m = s.m_lo[im] + s.dm[im] * rng.random(cell.size)
        x = s.x_lo[ix] + s.dx[ix] * rng.random(cell.size)
        dens = s.density(m, x)
        assert np.all(dens <= s.bound[cell]) and np.all(dens >= s.squeeze[cell])
        assert 0.8 < s.acceptance < 1.0


def test_violated_bounds_raise():
    rng = np.random.default_rng(0)
    low = _Sampler(GeneratorConfig(), cteq5l())
    low.bound = 0.9 * low.bound
    low.squeeze = 0.9 * low.squeeze
    with pytest.raises(RuntimeError, match="bounds"):
        low.sample_mass_xf(50_000, rng)
    high = _Sampler(GeneratorConfig(), cteq5l())
    high.squeeze = np.minimum(1.2 * high.squeeze, high.bound)
    with pytest.raises(RuntimeError, match="bounds"):
        high.sample_mass_xf(50_000, rng)


def test_bad_arguments():
    rng = np.random.default_rng(0)
    empty = generate_truth(0, [1, 0, 0], GeneratorConfig(), rng)
    assert len(empty) == 0 and "true_costh" in empty
    with pytest.raises(InputError, match="rows"):
        generate_truth(10, np.zeros((9, 3)), GeneratorConfig(), rng)
    with pytest.raises(InputError, match="negative angular density"):
        generate_truth(10, [-2.0, 0.0, 0.0], GeneratorConfig(), rng)
    with pytest.raises(InputError, match="rng"):
        generate_truth(10, [1, 0, 0], GeneratorConfig(), None)
    with pytest.raises(InputError, match="outside the table"):
        generate_truth(10, [1, 0, 0], GeneratorConfig(mass_range=(1.0, 4.0)), rng)


@pytest.mark.parametrize(
    "data",
    [
        {"beam_enrgy": 120.0},
        {"target": "Pb"},
        {"mass_range": (10.0, 4.0)},
        {"mass_range": (-1.0, 4.0)},
        {"mass_range": (4.0, 16.0)},  # above √s = 15.06 GeV
        {"xf_range": (-1.2, 0.5)},
        {"xf_range": (0.5, 0.2)},
        {"pt_max": 0.0},
        {"beam_energy": -5.0},
        {"kaplan_p1": 0.5},  # p1 = 0.5 - 0.77|xF| < 0 at xF = 0.99
    ],
)
def test_config_rejects(data):
    with pytest.raises(ConfigError):
        validate(GeneratorConfig, data)


def test_config_defaults():
    cfg = validate(GeneratorConfig, {})
    assert cfg == GeneratorConfig()
    assert cfg.mass_range == (4.0, 10.0) and cfg.xf_range == (-0.3, 0.99)
    assert validate(GeneratorConfig, {"target": "d", "mass_range": [4.5, 8.8]}).target == "d"


@pytest.mark.pythia
def test_cross_section_matches_pythia():
    # Pythia's own q q̄ → γ* → μ⁺μ⁻ with CTEQ5L at Q² = M² and α(0): an independent LO code.
    pythia8mc = pytest.importorskip("pythia8mc")

    def pythia_sigma(target_id):
        pythia = pythia8mc.Pythia("", False)
        for line in (
            "Beams:frameType = 2",
            "Beams:idA = 2212",
            f"Beams:idB = {target_id}",
            "Beams:eA = 120.",
            "Beams:eB = 0.",
            "WeakSingleBoson:ffbar2gmZ = on",
            "WeakZ0:gmZmode = 1",
            "23:onMode = off",
            "23:onIfAny = 13",
            "23:mMin = 4.",
            "23:mMax = 10.",
            "PhaseSpace:mHatMin = 4.",
            "PhaseSpace:mHatMax = 10.",
            "PartonLevel:all = off",
            "HadronLevel:all = off",
            "PDF:pSet = 2",
            "SigmaProcess:alphaEMorder = 0",
            "Random:setSeed = on",
            "Random:seed = 17",
            "Print:quiet = on",
        ):
            pythia.readString(line)
        pythia.init()
        for _ in range(20_000):
            pythia.next()
        info = pythia.infoPython()
        return info.sigmaGen() * 1e6, info.sigmaErr() * 1e6  # mb -> nb

    full = {"xf_range": (-0.999, 0.999)}
    pp, err_pp = pythia_sigma(2212)
    pn, err_pn = pythia_sigma(2112)
    ours_p = integrated_cross_section(GeneratorConfig(**full))
    ours_d = integrated_cross_section(GeneratorConfig(target="d", **full))
    # Pythia's MC error, plus 0.5 % for the PDF table's interpolation.
    assert abs(ours_p - pp) < 3 * err_pp + 5e-3 * pp
    assert abs(ours_d - 0.5 * (pp + pn)) < 1.5 * (err_pp + err_pn) + 5e-3 * pp
