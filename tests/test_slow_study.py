"""End to end on the full simulation (slow: `make test-slow`, several minutes on two cores).

A moment regressor is trained on the built-in SeaQuest-like chain, then pseudo-experiments
with fresh data *and* fresh nominal samples test that the likelihood fit is unbiased and its
errors cover. Tolerances are 3 standard errors of each summary over K toys:
pull mean ± 1/√K, pull width ± 1/√(2K), coverage ± √(p(1−p)/K).
"""

import numpy as np
import pytest

from dyfit.simulation import Simulation
from dyfit.studies import run_study
from dyfit.training.config import TrainingConfig
from dyfit.training.run import train_run

pytestmark = pytest.mark.slow

TOYS = 60
THETAS = np.array([[1.0, 0.0, 0.05], [0.5, 0.2, -0.2], [1.5, -0.2, 0.3]])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    sim = Simulation(workers=2)
    config = TrainingConfig(
        estimator="moments",
        events_per_epoch=100_000,
        epochs=6,
        batch_size=1024,
        validation_events=30_000,
        calibration_events=50_000,
        seed=4,
        device="cpu",
    )
    model, history = train_run(config, sim, tmp_path_factory.mktemp("run"))
    yield model, history, sim
    sim.close()


def test_moment_regressor_fits_are_unbiased_and_cover(trained):
    model, history, sim = trained
    assert min(history.best["r2"]) > 0.5  # the azimuthal moments are the hardest to learn
    study = run_study(model, sim, THETAS, TOYS, 5_000, 15_000, seed=11)
    rows = [r for r in study.summary() if r["method"] == "likelihood"]
    assert len(rows) == 3 * len(THETAS)
    for r in rows:
        where = f"{r['theta']} {r['parameter']}"
        assert r["n_failed"] == 0, where
        assert abs(r["pull_mean"]) < 3 / np.sqrt(TOYS), where
        assert abs(r["pull_width"] - 1) < 3 / np.sqrt(2 * TOYS), where
        assert abs(r["cov68"] - 0.683) < 3 * np.sqrt(0.683 * 0.317 / TOYS), where
        # a learned ratio cannot beat the truth-level oracle by more than the toys' noise
        assert r["sigma_ratio_oracle"] > 1 - 3 / np.sqrt(2 * TOYS), where
