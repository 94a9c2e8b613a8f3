"""Pythia 8 truth events feed the same spectrometer (optional extra: pythia8mc)."""

import numpy as np
import pytest

pytest.importorskip("pythia8mc")

from dyfit.data.columns import TRUTH_LEPTON_COLUMNS  # noqa: E402
from dyfit.detector import SpectrometerConfig, simulate_detector  # noqa: E402
from dyfit.physics.generator import GeneratorConfig  # noqa: E402
from dyfit.physics.kinematics import M_MUON, beam_target, dilepton_observables, invariant_mass  # noqa: E402
from dyfit.physics.pythia import pythia_truth  # noqa: E402

pytestmark = pytest.mark.pythia


@pytest.fixture(scope="module")
def truth():
    return pythia_truth(4000, GeneratorConfig(), seed=2)


def test_muon_pairs_in_the_mass_window(truth):
    assert len(truth) == 4000
    assert set(TRUTH_LEPTON_COLUMNS) <= set(truth.names)
    lp = truth.matrix(TRUTH_LEPTON_COLUMNS[:4])
    lm = truth.matrix(TRUTH_LEPTON_COLUMNS[4:])
    np.testing.assert_allclose(invariant_mass(lp), M_MUON, rtol=1e-3)
    obs = dilepton_observables(lp, lm, *beam_target(120.0))
    # final-state photon radiation can only lower the pair mass below the generated window
    assert obs["mass"].max() <= 10.0 + 1e-6
    assert np.mean(obs["mass"] > 4.0) > 0.95


def test_angular_distribution_close_to_leading_order(truth):
    """gamma* -> mu mu is 1 + cos^2 in the parton frame; showers move lambda only slightly.

    <cos^2> = (5 + 3 lambda) / (5 (3 + lambda)) = 0.4 at lambda = 1; require it within
    4 sigma of 0.4 plus 0.02 for the shower-induced shift (|d lambda| ~ 0.1).
    """
    lp = truth.matrix(TRUTH_LEPTON_COLUMNS[:4])
    lm = truth.matrix(TRUTH_LEPTON_COLUMNS[4:])
    costh = dilepton_observables(lp, lm, *beam_target(120.0))["costh"]
    sigma = np.std(costh**2) / np.sqrt(costh.size)
    assert abs(np.mean(costh**2) - 0.4) < 4 * sigma + 0.02


def test_pythia_truth_passes_the_detector(truth):
    reco, summary = simulate_detector(truth, SpectrometerConfig(), np.random.default_rng(0))
    assert summary.generated == 4000
    assert 0.002 < summary.acceptance < 0.05
    assert np.all((reco["mass"] > 4.5) & (reco["mass"] < 8.8))


def test_same_seed_same_events():
    a = pythia_truth(50, GeneratorConfig(target="d"), seed=7)
    b = pythia_truth(50, GeneratorConfig(target="d"), seed=7)
    for name in a.names:
        np.testing.assert_array_equal(a[name], b[name])
