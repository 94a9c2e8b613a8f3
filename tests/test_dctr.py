"""DCTR: a θ-parametrised reweighter that corrects a mis-trained cVAE (Gaussian toy)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dyfit.errors import DyfitWarning, InputError
from dyfit.fitting.cvae import fit_conditions
from dyfit.networks.cvae import CVAE
from dyfit.studies.gaussian import GaussianSource
from dyfit.training.checkpoint import MANIFEST, load_model, save_model
from dyfit.training.cvae import fit_cvae_weights
from dyfit.training.dctr import DCTRConfig, DCTRReweighter, train_dctr
from dyfit.training.dctr_run import dctr_diagnostics, load_reweighter

torch.set_num_threads(1)

SHIFT, WIDTH = 0.2, 1.15  # the cVAE learns x ~ N(μ + 0.2, 1.15²) instead of N(μ, 1)
CONFIG = DCTRConfig(
    events=40_000,
    validation_events=10_000,
    calibration_events=200_000,
    epochs=10,
    width=32,
    depth=2,
)


@pytest.fixture(scope="module")
def pair():
    """A deliberately mis-trained cVAE of the Gaussian toy and its reweighter (~5 s)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    def draw(n: int):
        mu = rng.uniform(-2, 2, n)
        return (mu + SHIFT + WIDTH * rng.standard_normal(n))[:, None], mu[:, None]

    cvae = CVAE(("x",), ("mu",), [(-2, 2)], latent_dim=1, width=16, depth=2)
    fit_cvae_weights(
        cvae,
        draw(40_000),
        draw(5_000),
        epochs=8,
        batch_size=1024,
        learning_rate=3e-3,
        patience=8,
        seed=0,
        schedule="cosine",
    )
    reweighter, history = train_dctr(CONFIG, cvae.eval(), GaussianSource())
    return cvae, reweighter, history


def test_training_separates_and_stops(pair):
    _, _, history = pair
    val = [r["val_loss"] for r in history.records]
    # BCE below log 2: the classifier sees the cVAE's error; the best epoch is the minimum
    assert min(val) < np.log(2) - 0.005
    assert val[history.best_epoch] == min(val)
    assert len(history.calibration) == 3  # (1, μ, μ²)


def test_auc_drops_to_one_half_and_ratio_is_normalised(pair):
    cvae, reweighter, _ = pair
    checks = dctr_diagnostics(reweighter, cvae, GaussianSource(), [[-1.0], [0.5], [1.5]], 20_000)
    # the calibration sample (2·10⁵ events) adds std(r)/√(2·10⁵) to the check's own error
    for c in checks:
        # before: the shifted, wider cVAE is visible far beyond the null error (~0.004)
        assert c["auc_before"] > 0.5 + 5 * c["auc_err"]
        # after: consistent with the null hypothesis at 3 standard errors
        assert abs(c["auc_after"] - 0.5) < 3 * c["auc_after_err"]
        err = np.hypot(c["mean_ratio_err"], c["mean_ratio_err"] * np.sqrt(20_000 / 200_000))
        assert abs(c["mean_ratio"] - 1) < 3 * err
        assert 0.8 < c["n_eff_fraction"] < 1  # r = N(μ,1)/N(μ+0.2,1.15²): E[r²] ≈ 1.05


def test_corrected_fit_removes_the_bias(pair):
    cvae, reweighter, _ = pair
    n, toys, mu = 20_000, 3, 1.5
    plain, corrected, exact = [], [], []
    for t in range(toys):
        x = GaussianSource().simulate(n, mu, np.random.default_rng([5, t]))["x"][:, None]
        plain.append(fit_conditions(cvae, x, seed=t).values[0])
        fit = fit_conditions(cvae, x, seed=t, correction=reweighter)
        assert fit.converged and fit.errors[0] == pytest.approx(1 / np.sqrt(n), rel=0.1)
        corrected.append(fit.values[0])
        exact.append(x.mean())
    plain, corrected, exact = map(np.array, (plain, corrected, exact))
    sigma_bias = 1 / np.sqrt(n * toys)  # the standard error of a bias from `toys` fits
    # the margin between the two biases (vs the truth) beyond 5 of their standard errors
    assert abs(plain.mean() - mu) - abs(corrected.mean() - mu) > 5 * 2 * sigma_bias
    # against the exact MLE on the same data: what remains is the reweighter's training
    # error, its learnt shift known to ~1/√(events) = 0.005; allow 3 of that
    assert abs(np.mean(corrected - exact)) < 3 / np.sqrt(CONFIG.events)
    assert abs(np.mean(plain - exact) + SHIFT) < 0.05  # the mis-training, as built


def test_save_load_round_trip(pair, tmp_path):
    cvae, reweighter, history = pair
    save_model(cvae, tmp_path / "cvae")
    save_model(reweighter, tmp_path / "dctr", history=history.to_dict())
    manifest = json.loads((tmp_path / "dctr" / MANIFEST).read_text())
    assert manifest["kind"] == "dctr" and manifest["scaler"]["inputs"] == ["x"]
    loaded = load_model(tmp_path / "dctr")
    assert isinstance(loaded, DCTRReweighter)
    x, c = torch.randn(64, 1), torch.rand(64, 1) * 4 - 2
    assert torch.equal(loaded.log_ratio(x, c), reweighter.log_ratio(x, c))
    assert torch.equal(loaded.calibration, reweighter.calibration)
    # the pairing check: this reweighter records no cVAE, so it corrects none
    with pytest.raises(InputError, match="another cVAE"):
        load_reweighter(tmp_path / "dctr", tmp_path / "cvae")
    with pytest.raises(InputError, match="train-dctr"):
        load_reweighter(tmp_path / "cvae", tmp_path / "cvae")


def test_log_ratio_is_differentiable_in_theta(pair):
    """The fit needs ∇_θ log r; compare autograd with a central difference (float64)."""
    _, reweighter, _ = pair
    r = reweighter.double()
    try:
        x = torch.randn(16, 1, dtype=torch.float64)
        c = torch.full((16, 1), 0.3, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(r.log_ratio(x, c).sum(), c)
        h = 1e-5
        fd = (r.log_ratio(x, c.detach() + h) - r.log_ratio(x, c.detach() - h)) / (2 * h)
        np.testing.assert_allclose(g[:, 0].numpy(), fd.detach().numpy(), rtol=1e-6, atol=1e-8)
    finally:
        r.float()


def test_cli_train_dctr_and_fit_on_the_toy(tmp_path):
    """train-cvae --toy → train-dctr → fit --method cvae --dctr, at tiny sizes."""
    from dyfit.cli import fit as fit_cli
    from dyfit.cli import train_cvae, train_dctr
    from dyfit.data.io import write_events
    from dyfit.toy import ToyExperiment

    runner = CliRunner()
    cvae_dir, dctr_dir = tmp_path / "cvae", tmp_path / "dctr"
    out = runner.invoke(
        train_cvae.command, ["--toy", "-o", str(cvae_dir), "--events", "3000", "--epochs", "2"]
    )
    assert out.exit_code == 0, out.output
    args = [
        "--cvae",
        str(cvae_dir),
        "-o",
        str(dctr_dir),
        "--events",
        "3000",
        "--epochs",
        "2",
        "--check-events",
        "2000",
    ]
    out = runner.invoke(train_dctr.command, args)
    assert out.exit_code == 0, out.output
    assert out.output.count("AUC") == 3 and (dctr_dir / "dctr_theta0.png").exists()
    data = tmp_path / "data.parquet"
    write_events(ToyExperiment().simulate(2000, [1.0, 0.0, 0.0], np.random.default_rng(1)), data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DyfitWarning)  # a tiny model may end on the box edge
        args = ["--model", str(cvae_dir), "--data", str(data), "--method", "cvae", "--json"]
        out = runner.invoke(fit_cli.command, [*args, "--dctr", str(dctr_dir)])
        assert out.exit_code == 0, out.output
        assert json.loads(out.output.strip().splitlines()[-1])["dctr"] is True
    # simulated data (truth columns): the guard is off and the cVAE fit reads no nominal sample
    inputs = fit_cli.load_inputs(
        str(cvae_dir), str(data), None, None, 0, nominal_needed=lambda d: "true_costh" not in d
    )
    assert inputs[2] is None and len(inputs[1]) == 2000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DyfitWarning)
        out = runner.invoke(
            fit_cli.command, [*args[:4], "--method", "likelihood", "--dctr", str(dctr_dir)]
        )
    assert out.exit_code != 0 and "--dctr applies to --method cvae only" in str(out.exception)
