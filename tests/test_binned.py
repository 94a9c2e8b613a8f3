"""The binned fits (bin-by-bin acceptance, unfolding, template): exact bin integrals,
unbiased θ on large samples of the toy and of the full simulation, pulls with the
nominal-sample term, per-event weights and kinematic bins."""

import numpy as np
import pytest
import torch
from scipy.integrate import dblquad

from dyfit.data.events import EventTable
from dyfit.errors import InputError
from dyfit.fitting import fit
from dyfit.fitting.binned import Binning, bin_integrals, fit_binned, parse_bins
from dyfit.physics.angular import THETA0, angular_basis, angular_weight
from dyfit.studies import run_study
from dyfit.toy import ToyExperiment

torch.set_num_threads(1)

TOY = ToyExperiment(0.5)
METHODS = ("template", "binned-acceptance", "unfold")


def test_bin_integrals_match_numerical_integration():
    binning = parse_bins("costh=-1:-0.3:0.2:1,phi=-3.14159:-1:0.5:3.14159")
    exact = bin_integrals(binning)
    n_phi = len(binning.phi) - 1
    for j in (0, 4, 8):
        c0, c1 = binning.costh[j // n_phi], binning.costh[j // n_phi + 1]
        p0, p1 = binning.phi[j % n_phi], binning.phi[j % n_phi + 1]
        for k in range(4):
            # the basis times (1 + c²) is b_k
            val, _ = dblquad(lambda p, c, k=k: angular_basis(c, p)[k] * (1 + c * c), c0, c1, p0, p1)
            assert exact[j, k] == pytest.approx(val, rel=1e-9, abs=1e-12)
    # Over the sphere ∫b dΩ = (4π, 4π/3, 0, 0).
    total = bin_integrals(Binning()).sum(0)
    np.testing.assert_allclose(total, [4 * np.pi, 4 * np.pi / 3, 0, 0], atol=1e-12)


def test_parse_bins():
    nominal = TOY.simulate(1000, THETA0, np.random.default_rng(0))
    b = parse_bins("costh=10, phi=0:1:2, mass=4", nominal)
    assert len(b.costh) == 11 and list(b.phi) == [0, 1, 2] and b.n_groups == 4
    # Equal-population mass bins on the nominal sample.
    counts = np.histogram(nominal["mass"], b.kinematic["mass"])[0]
    assert counts.min() >= 249 and counts.max() <= 251
    for bad in ("costh", "eta=3", "phi=0", "costh=-2:1", "phi=1:0", "mass=2"):
        with pytest.raises(InputError):
            parse_bins(bad)


@pytest.fixture(scope="module")
def toy_nominal():
    return TOY.simulate(100_000, THETA0, np.random.default_rng(1))


@pytest.mark.parametrize("theta", [(1.0, 0.0, 0.0), (0.5, 0.2, -0.3)])
def test_unbiased_on_a_large_toy_sample(toy_nominal, theta):
    data = TOY.simulate(100_000, theta, np.random.default_rng(2))
    for method in METHODS:
        r = fit(None, data, toy_nominal, method=method)
        assert r.converged and not r.warnings, (method, r.warnings)
        # |θ̂ − θ| within 3 of the fit's total σ (checked against the spread in the pull test)
        np.testing.assert_array_less(np.abs(r.values - theta), 3 * r.errors, err_msg=method)
        assert r.extra["bins"]["used"] == 120 and r.extra["bins"]["data_left_out"] == 0


@pytest.fixture(scope="module")
def full_sim():
    from dyfit.simulation import Simulation

    sim = Simulation()
    theta = np.array([0.6, 0.2, 0.3])
    nominal = sim.simulate(20_000, THETA0, np.random.default_rng(5))
    return theta, sim.simulate(12_000, theta, np.random.default_rng(6)), nominal


def test_unbiased_on_the_full_simulation(full_sim):
    theta, data, nominal = full_sim
    results = {m: fit_binned(data, nominal, m) for m in METHODS}
    for method, r in results.items():
        assert r.converged, method
        np.testing.assert_array_less(np.abs(r.values - theta), 3 * r.errors, err_msg=method)
    # Converged acceptance passes predict the template's bin contents at θ̂ (not its
    # gradients): two consistent estimators on the same events, a fraction of σ apart,
    # with errors alike once the passes' feedback is propagated. One pass at θ0 (the
    # classic correction) keeps θ0's migrations: ν̂ is pulled towards 0 by several σ
    # at 150k events (module unfold's scan), by over 1σ here.
    tmpl, acc = results["template"], results["binned-acceptance"]
    np.testing.assert_array_less(np.abs(acc.values - tmpl.values), 0.3 * tmpl.errors)
    np.testing.assert_allclose(acc.errors, tmpl.errors, rtol=0.05)
    classic = fit_binned(data, nominal, "binned-acceptance", iterations=1)
    assert tmpl.values[2] - classic.values[2] > tmpl.errors[2]


@pytest.fixture(scope="module")
def pull_study():
    # The nominal sample as large as the data, so that its error term matters; 8000 events
    # keep σ(λ) ≈ 0.25 in the Gaussian regime (at 1500, σ(λ) ≈ 0.6 and the error of a toy
    # grows with its λ̂, so pull widths mean little).
    return run_study(
        None,
        TOY,
        [[0.8, 0.1, 0.2]],
        100,
        8000,
        8000,
        methods=("template", "binned-acceptance"),
        seed=3,
        oracle=False,
    )


@pytest.mark.parametrize("method", ["template", "binned-acceptance"])
def test_pulls_with_the_nominal_term(pull_study, method):
    rows = [r for r in pull_study.summary() if r["method"] == method]
    assert len(rows) == 3
    for r in rows:
        assert r["n_failed"] == 0
        # 3 standard errors of each statistic over 100 toys.
        assert abs(r["pull_width"] - 1) < 3 * r["pull_width_err"], r
        assert abs(r["pull_mean"]) < 3 * r["pull_mean_err"], r
        assert abs(r["cov68"] - 0.683) < 3 * np.sqrt(0.683 * 0.317 / r["n"]), r
        # Without the nominal term the pulls are measurably too wide.
        assert r["pull_width_stat"] > 1 + 3 * r["pull_width_err"], r


@pytest.mark.slow
def test_unfold_pulls():
    study = run_study(
        None, TOY, [[0.8, 0.1, 0.2]], 150, 8000, 8000, methods=("unfold",), seed=4, oracle=False
    )
    for r in study.summary():
        assert abs(r["pull_width"] - 1) < 3 * r["pull_width_err"], r
        assert abs(r["pull_mean"]) < 3 * r["pull_mean_err"], r


@pytest.mark.parametrize("method", METHODS)
def test_weights(toy_nominal, method):
    data = TOY.simulate(20_000, THETA0, np.random.default_rng(7))
    plain = fit_binned(data, toy_nominal, method)
    # Weights of 2 add no information: same θ̂ and (one kinematic bin) the same errors.
    doubled = fit_binned(
        data.with_columns({"weight": np.full(len(data), 2.0)}), toy_nominal, method
    )
    np.testing.assert_allclose(doubled.values, plain.values, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(doubled.errors, plain.errors, rtol=1e-6)
    # θ0 events reweighted with the exact truth weights to θ recover θ.
    theta = np.array([0.6, -0.1, 0.3])
    w = angular_weight(data["true_costh"], data["true_phi"], theta)
    r = fit_binned(data.with_columns({"weight": w}), toy_nominal, method)
    np.testing.assert_array_less(np.abs(r.values - theta), 3 * r.errors)


def test_kinematic_bins(toy_nominal):
    data = TOY.simulate(50_000, (0.7, 0.1, 0.1), np.random.default_rng(8))
    one = fit_binned(data, toy_nominal, "template")
    for method in METHODS:
        r = fit_binned(data, toy_nominal, method, bins="costh=20,phi=12,mass=3")
        assert r.extra["bins"]["used"] == 3 * 120 and r.converged
        # The toy's mass carries no information on θ: only the free normalisations are
        # added, so the errors stay close to the one-bin fit's.
        np.testing.assert_allclose(r.errors, one.errors, rtol=0.1)
        np.testing.assert_array_less(np.abs(r.values - (0.7, 0.1, 0.1)), 3 * r.errors)


def test_bad_inputs(toy_nominal):
    data = TOY.simulate(1000, THETA0, np.random.default_rng(9))
    with pytest.raises(InputError, match="true_costh"):
        fit_binned(data, EventTable({k: v for k, v in data.columns.items() if "true" not in k}))
    bad = data.with_columns({"costh": np.where(np.arange(1000) == 3, np.nan, data["costh"])})
    with pytest.raises(InputError, match="NaN"):
        fit_binned(bad, toy_nominal)
    with pytest.warns(Warning, match="dropped"):
        r = fit_binned(bad, toy_nominal, drop_invalid=True)
    assert r.n_events == 999
    with pytest.raises(InputError, match="binned method"):
        fit_binned(data, toy_nominal, "chi2")
    # Events outside the binning are counted and reported.
    r = fit_binned(data, toy_nominal, bins="costh=-0.3:0.3")
    assert r.extra["bins"]["data_left_out"] > 0.3 * len(data) and r.warnings


@pytest.mark.parametrize("method", ["template", "binned-acceptance"])
def test_too_few_nominal_events_is_bad_input(method):
    """300 nominal events over 20 x 12 bins leave no bin with 10: one line, not a crash."""
    toy = ToyExperiment()
    data = toy.simulate(100, THETA0, np.random.default_rng(1))
    nominal = toy.simulate(300, THETA0, np.random.default_rng(2))
    with pytest.raises(InputError, match="enough nominal events"):
        fit_binned(data, nominal, method)
