"""The conditional VAE: representation, ELBO training, generation, the θ fit, checkpoints."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from dyfit.errors import CheckpointError, DyfitWarning, InputError
from dyfit.fitting.cvae import fit_conditions, fit_cvae
from dyfit.networks.cvae import CVAE
from dyfit.studies.gaussian import GaussianSettings, GaussianSource, train_gaussian_cvae
from dyfit.training.checkpoint import MANIFEST, WEIGHTS, load_model, save_model
from dyfit.training.cvae import fit_cvae_weights

torch.set_num_threads(1)

SMALL = GaussianSettings(train_events=40_000, epochs=12, width=16, seed=3)


@pytest.fixture(scope="module")
def gauss():
    """A cVAE of x ~ N(μ, 1), μ ∈ [−2, 2], trained once for the module (~10 s)."""
    model, history = train_gaussian_cvae(SMALL)
    return model, history


def test_representation_round_trip_and_normalised_likelihood():
    model = CVAE(("mass", "pT", "xF", "phi", "costh"), latent_dim=2, width=8, depth=1)
    assert model.transforms == ("log", "log", "linear", "angle", "atanh")
    rng = np.random.default_rng(0)
    x = np.column_stack(
        [
            4.5 + rng.exponential(1, 50),
            rng.uniform(0.01, 2, 50),
            rng.uniform(-0.1, 0.9, 50),
            rng.uniform(-np.pi, np.pi, 50),
            rng.uniform(-0.8, 0.8, 50),
        ]
    )
    model.fit_scaler(torch.as_tensor(x))
    back = model.unrepresent(model.represent(torch.as_tensor(x)).double().numpy())
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["xF", "phi"])
@torch.no_grad()
def test_decoder_density_is_normalised(name):
    """exp log p(y|z, θ) integrates to 1 over y (Gaussian and von Mises; oracle: 1)."""
    torch.manual_seed(0)
    model = CVAE((name,), latent_dim=2, width=8, depth=1).double()
    p = model.decode(torch.randn(3, 2, dtype=torch.float64), torch.zeros(3, 3, dtype=torch.float64))
    lo, hi = (-np.pi, np.pi) if name == "phi" else (-40.0, 40.0)
    grid = torch.linspace(lo, hi, 40001, dtype=torch.float64)
    one = {k: v[None].expand(len(grid), -1, -1) for k, v in p.items()}
    dens = torch.exp(model.log_likelihood(grid[:, None, None].expand(-1, 3, 1), one))
    assert torch.trapezoid(dens, grid, dim=0).numpy() == pytest.approx(np.ones(3), abs=1e-4)


def test_elbo_increases_with_training(gauss):
    _, history = gauss
    val = [r["val_elbo"] for r in history.records]
    # x standardised: exact mean log-density is −½log 2π − ½ + log(std_x / 1) with std_x² = 1 + 4/3
    exact = -0.5 * np.log(2 * np.pi) - 0.5 + 0.5 * np.log(1 + 4 / 3)
    assert val[-1] > val[0] + 0.01
    # a bound: not above the exact value beyond the validation noise (50k events: ~0.005)
    assert exact - 0.05 < val[-1] < exact + 0.01


@pytest.mark.parametrize("mu", [-1.0, 0.5, 1.5])
def test_generated_moments_follow_mu(gauss, mu):
    model, _ = gauss
    n = 20_000
    x = model.generate([mu], n, np.random.default_rng(1))["x"]
    # mean: σ/√n = 0.007, 4σ plus 0.03 for the small cVAE's learnt mean; sd 1: 1/√(2n) = 0.005
    assert abs(x.mean() - mu) < 4 / np.sqrt(n) + 0.03
    assert abs(x.std() - 1.0) < 4 / np.sqrt(2 * n) + 0.03


def test_fit_recovers_mu_like_the_exact_mle(gauss):
    model, _ = gauss
    n = 4000
    x = 1.5 + np.random.default_rng(7).standard_normal(n)
    f = fit_conditions(model, x[:, None])
    exact, sigma = x.mean(), 1 / np.sqrt(n)
    assert f.converged
    assert abs(f.values[0] - 1.5) < 4 * sigma
    # same data: the cVAE estimate follows x̄ up to the small model's learnt bias (< σ/2)
    assert abs(f.values[0] - exact) < 0.5 * sigma
    assert f.errors[0] == pytest.approx(sigma, rel=0.1)
    adam = fit_conditions(model, x[:, None], optimiser="adam", start=[0.0], lr=0.05)
    assert abs(adam.values[0] - f.values[0]) < 0.05 * sigma
    assert len(adam.history) == len(adam.loss_history) > 5


def test_pseudo_experiment_pulls(gauss):
    model, _ = gauss
    n, toys, pulls = 2000, 20, []
    for t in range(toys):
        x = 1.5 + np.random.default_rng([9, t]).standard_normal(n)
        f = fit_conditions(model, x[:, None], seed=t)
        pulls.append((f.values[0] - 1.5) / f.errors[0])
    pulls = np.array(pulls)
    # 20 toys: the pull mean has sd 1/√20 = 0.22, the width 1/√38 = 0.16; 3 sd each
    assert abs(pulls.mean()) < 3 / np.sqrt(toys)
    assert abs(pulls.std(ddof=1) - 1) < 3 / np.sqrt(2 * (toys - 1))


def test_save_load_round_trip_and_tampering(gauss, tmp_path):
    model, history = gauss
    save_model(model, tmp_path, history=history.to_dict(), provenance={"source": "gauss"})
    loaded = load_model(tmp_path)
    assert isinstance(loaded, CVAE) and loaded.condition_names == ("mu",)
    x = torch.randn(64, 1)
    noise = torch.randn(64, 3, 1)
    assert torch.equal(
        loaded.log_bound(x, torch.tensor([0.3]), noise),
        model.log_bound(x, torch.tensor([0.3]), noise),
    )
    a = loaded.sample([0.3], 100, np.random.default_rng(5))
    assert np.array_equal(a, model.sample([0.3], 100, np.random.default_rng(5)))
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["kind"] == "cvae" and manifest["scaler"]["inputs"] == ["x"]
    manifest["architecture"]["latent_dim"] = 2
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="edited"):
        load_model(tmp_path)
    save_model(model, tmp_path)
    raw = bytearray((tmp_path / WEIGHTS).read_bytes())
    raw[-3] ^= 0xFF
    (tmp_path / WEIGHTS).write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(tmp_path)


def test_fit_cvae_on_the_toy_experiment_and_through_fit():
    """A 3-parameter cVAE on the analytic toy: the FitResult contract and the dispatch."""
    from dyfit.fitting import fit
    from dyfit.fitting.result import FIT_RESULT_SCHEMA, schema_errors
    from dyfit.physics.prior import ThetaPrior
    from dyfit.toy import ToyExperiment
    from dyfit.training.cvae import draw_sample

    toy, prior = ToyExperiment(), ThetaPrior()
    torch.manual_seed(0)
    model = CVAE(("mass", "phi", "costh"), bounds=prior.bounds, latent_dim=2, width=16, depth=2)
    rng = np.random.default_rng(0)
    train = draw_sample(model, toy, 40_000, prior.sample, rng)
    val = draw_sample(model, toy, 5_000, prior.sample, rng)
    fit_cvae_weights(
        model, train, val, epochs=8, batch_size=512, learning_rate=3e-3, patience=3, seed=0
    )
    data = toy.simulate(2000, [1.0, 0.0, 0.0], rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DyfitWarning)  # a small model may end on the box edge
        result = fit(model, data, method="cvae")
        weighted = fit_cvae(model, data.with_columns({"weight": np.full(2000, 2.0)}))
    assert result.method == "cvae" and result.n_events == 2000
    assert schema_errors(result.to_json(), FIT_RESULT_SCHEMA) == []
    assert np.all(prior.contains(result.values))
    # a common weight scales the loss, not its minimum; the sandwich error is unchanged
    assert np.all(np.abs(weighted.values - result.values) < 0.02 * result.errors)  # MIGRAD tol
    np.testing.assert_allclose(weighted.errors, result.errors, rtol=1e-3)
    bad = data.with_columns({"costh": np.where(np.arange(2000) == 3, np.nan, data["costh"])})
    with pytest.raises(InputError, match="NaN"):
        fit_cvae(model, bad)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert fit_cvae(model, bad, drop_invalid=True).n_events == 1999
    assert any("dropped 1 of 2000" in str(w.message) for w in seen)


def test_gaussian_source_is_per_event():
    ev = GaussianSource().simulate(5, np.arange(5.0), np.random.default_rng(0))
    assert np.array_equal(ev["mu"], np.arange(5.0)) and len(ev["x"]) == 5
