"""Training samples, the training loop and the ratio checks, on the analytic toy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from dyfit.data.events import EventTable
from dyfit.errors import InputError
from dyfit.physics.angular import THETA0, angular_basis, as_theta
from dyfit.physics.prior import ThetaPrior
from dyfit.toy import ToyExperiment
from dyfit.training.checkpoint import load_model
from dyfit.training.config import TrainingConfig
from dyfit.training.device import free_cores
from dyfit.training.loop import train
from dyfit.training.quality import check_ratio, model_log_ratio
from dyfit.training.samples import (
    TOY_FEATURES,
    FixedTrainingSource,
    TrainingSource,
    nominal_abar,
    truth_log_ratio,
)

torch.set_num_threads(1)

TOY = ToyExperiment()
# Away from θ0 in every coefficient, inside the default prior.
CHECK_THETAS = np.array([[1.6, 0.25, -0.3], [0.4, -0.3, 0.3], [1.0, 0.3, 0.3]])


def small_config(**kw) -> TrainingConfig:
    base = dict(
        features=TOY_FEATURES,
        phi_encoding="cossin",
        width=32,
        depth=3,
        batch_size=4096,
        learning_rate=3e-3,
        validation_events=100_000,
        calibration_events=100_000,
        device="cpu",
        threads=1,
    )
    return TrainingConfig(**(base | kw))


# ---------------------------------------------------------------- samples


def test_classifier_set_pairs_theta_and_balances():
    prior = ThetaPrior()
    s = TrainingSource(TOY, TOY_FEATURES).classifier_set(5000, prior, np.random.default_rng(1))
    n = 5000
    assert s.x.shape == (2 * n, 3) and s.x.dtype == np.float32
    np.testing.assert_array_equal(s.label, np.r_[np.ones(n), np.zeros(n)])
    np.testing.assert_array_equal(s.theta[:n], s.theta[n:])  # Table 1: same θ in both classes
    assert np.all(prior.contains(s.theta.astype(np.float64)))
    assert np.unique(s.theta[:n], axis=0).shape[0] == n  # one θ per event


class Shuffled:
    """A source that returns accepted events in another order than the θ it was asked for
    (as an acceptance that selects events would), and writes θ_λ into the mass column."""

    def simulate(self, n, theta, rng):
        events = TOY.simulate(n, theta, rng)
        events = events.with_columns({"mass": events["theta_lambda"] + 10.0})
        return events.select(rng.permutation(n))


def test_theta_is_read_from_the_events_not_the_request():
    s = TrainingSource(Shuffled(), TOY_FEATURES).classifier_set(
        2000, ThetaPrior(), np.random.default_rng(2)
    )
    # class 1: the θ input belongs to the event itself; class 0: nominal, paired θ
    np.testing.assert_allclose(s.x[:2000, 0] - 10.0, s.theta[:2000, 0], atol=1e-5)
    np.testing.assert_allclose(s.x[2000:, 0], 11.0, atol=1e-5)
    np.testing.assert_array_equal(s.theta[:2000], s.theta[2000:])


def test_truth_log_ratio_equals_the_toy_oracle_up_to_the_normalisation():
    """With ā from M nominal events, the truth ratio is the exact toy ratio up to a constant
    log(ā_true·c/ā·c); its sampling error is std(a·c)/(√M ā·c). Tolerance 4σ."""
    rng = np.random.default_rng(3)
    nominal = TOY.simulate(200_000, THETA0, rng)
    abar = nominal_abar(nominal)
    events = TOY.simulate(1000, [1.5, 0.2, -0.3], rng)
    for theta in CHECK_THETAS:
        ours = truth_log_ratio(events["true_costh"], events["true_phi"], theta, abar)
        exact = TOY.log_ratio(events["costh"], events["phi"], theta)
        offset = ours - exact
        assert np.ptp(offset) < 1e-12  # the same for every event
        ac = angular_basis(nominal["true_costh"], nominal["true_phi"]) @ np.r_[1.0, theta]
        sigma = ac.std() / np.sqrt(ac.size) / ac.mean()
        assert abs(offset[0]) < 4 * sigma


def test_fixed_source_unweighting_reproduces_a_direct_sample():
    """Class 1 made by unweighting nominal events at θ* matches events generated at θ*.

    The prior is a box 10⁻³ wide, so θ ≈ θ*; the moments ⟨a_k⟩ of both samples are compared
    within 4 combined standard errors."""
    rng = np.random.default_rng(4)
    nominal = TOY.simulate(300_000, THETA0, rng)
    nominal = nominal.with_columns({"index": np.arange(len(nominal))})  # identifies events
    target = np.array([1.8, 0.3, -0.3])
    prior = ThetaPrior(lambda_=(1.7995, 1.8005), mu=(0.2995, 0.3005), nu=(-0.3005, -0.2995))
    source = FixedTrainingSource(nominal, TOY_FEATURES, validation_fraction=0.1)
    train_idx = source.pools["train"]["index"]
    assert np.intersect1d(train_idx, source.pools["validation"]["index"]).size == 0
    s = source.classifier_set(10**6, prior, rng)
    n = s.x.shape[0] // 2
    assert n > 40_000 and np.all(s.theta[:n] == s.theta[n:])
    assert len(np.unique(s.x, axis=0)) == 2 * n  # class-1 and class-0 events are distinct
    direct = TOY.simulate(200_000, target, rng)

    def basis(x):
        costh, phi = x[:, 2].astype(np.float64), x[:, 1].astype(np.float64)
        return angular_basis(costh, phi)[:, 1:]

    a1, a0 = basis(s.x[:n]), angular_basis(direct["costh"], direct["phi"])[:, 1:]
    diff = a1.mean(0) - a0.mean(0)
    sigma = np.sqrt(a1.var(0) / len(a1) + a0.var(0) / len(a0))
    assert np.all(np.abs(diff) < 4 * sigma), diff / sigma
    # and the unweighting did something: nominal differs from θ* by many σ
    a_nom = basis(s.x[n:])
    assert np.max(np.abs(a_nom.mean(0) - a0.mean(0)) / sigma) > 10


def test_fixed_source_needs_truth_angles():
    table = EventTable({"mass": np.ones(10), "phi": np.zeros(10), "costh": np.zeros(10)})
    with pytest.raises(InputError, match="true_costh"):
        FixedTrainingSource(table, TOY_FEATURES)


# ---------------------------------------------------------------- training


def rms_error(model, thetas, n=100_000, seed=7):
    events = TOY.simulate(n, THETA0, np.random.default_rng(seed))
    out = []
    for theta in thetas:
        learned = model_log_ratio(model, events, theta)
        exact = TOY.log_ratio(events["costh"], events["phi"], theta)
        out.append((np.sqrt(np.mean((learned - exact) ** 2)), exact.std()))
    return np.array(out)


def test_classifier_recovers_the_exact_log_ratio():
    """Fresh events each epoch; the captured fraction and the log-ratio error are bounded.

    Near the optimum the excess BCE is E[Δ²]/8 (the BCE's curvature in the logit is
    f(1 − f) ≈ 1/4), with Δ the log-ratio error; so capturing a fraction c of the gap
    G = ln 2 − L_Bayes (0.0024 nats here) means RMS Δ ≈ √(8(1 − c)G) ≈ 0.07 at c = 0.75.
    With 8 × 4·10⁵ training events this network reaches c ≈ 0.8; we demand c > 0.6 and an
    RMS error below half the RMS of the exact log-ratio at each θ.
    """
    config = small_config(events_per_epoch=400_000, epochs=8, seed=11)
    model, history = train(config, TrainingSource(TOY, TOY_FEATURES))
    # G = 0.00243 ± 0.00003 from 4·10⁶ events; on 10⁵ validation events σ = 2.2·10⁻⁴
    assert abs(np.log(2) - history.bayes_loss - 0.00243) < 4 * 2.2e-4
    assert history.best["captured"] > 0.6
    for rms, signal in rms_error(model, CHECK_THETAS):
        assert rms < 0.5 * signal, (rms, signal)


@pytest.fixture(scope="module")
def moments_model():
    config = small_config(estimator="moments", events_per_epoch=200_000, epochs=6, seed=5)
    return train(config, TrainingSource(TOY, TOY_FEATURES))


def test_moment_regressor_recovers_the_exact_log_ratio(moments_model):
    """On the toy, a_k is a function of the measured angles, so ĥ can be learned almost
    exactly (R² → 1) and the error is network approximation, not statistics: we demand
    R² > 0.98 and an RMS log-ratio error below 0.03 (a tenth of the signal's ≈ 0.15)."""
    model, history = moments_model
    assert min(history.best["r2"]) > 0.98
    for rms, _ in rms_error(model, CHECK_THETAS):
        assert rms < 0.03


def test_moment_regressor_closes_linear_structure(moments_model):
    """On an independent nominal sample ⟨r⟩ = 1 and the r-weighted ⟨cos²θ⟩ equals that of
    a direct sample at θ, each within 4 standard errors (weighted and direct combined)."""
    model, _ = moments_model
    rng = np.random.default_rng(8)
    nominal = TOY.simulate(200_000, THETA0, rng)
    for theta in CHECK_THETAS:
        r = np.exp(model_log_ratio(model, nominal, theta))
        assert abs(r.mean() - 1.0) < 4 * r.std() / np.sqrt(r.size)
        c2 = nominal["costh"] ** 2
        weighted = np.sum(r * c2) / np.sum(r)
        err_w = np.sqrt(np.sum((r * (c2 - weighted)) ** 2)) / np.sum(r)
        direct = TOY.simulate(200_000, theta, rng)["costh"] ** 2
        err_d = direct.std() / np.sqrt(direct.size)
        assert abs(weighted - direct.mean()) < 4 * np.hypot(err_w, err_d)


def test_training_is_reproducible_and_restores_the_best_epoch():
    config = small_config(
        events_per_epoch=20_000,
        validation_events=10_000,
        epochs=4,
        seed=3,
        learning_rate=0.05,
        patience=1,
    )
    states = []
    m1, h1 = train(
        config,
        TrainingSource(TOY, TOY_FEATURES),
        callback=lambda record, model: states.append(
            {k: v.clone() for k, v in model.state_dict().items()}
        ),
    )
    m2, _ = train(config, TrainingSource(TOY, TOY_FEATURES))
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    losses = [r["val_loss"] for r in h1.records]
    assert h1.best_epoch == int(np.argmin(losses))
    assert h1.stopped_early == (len(losses) < config.epochs)
    for a, b in zip(m1.state_dict().values(), states[h1.best_epoch].values(), strict=True):
        assert torch.equal(a, b)


def test_free_cores_and_bad_device():
    assert 1 <= free_cores() <= len(__import__("os").sched_getaffinity(0))
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="cuda"):
            train(small_config(device="cuda"), TrainingSource(TOY, TOY_FEATURES))


# ---------------------------------------------------------------- quality check


class ExactToyRatio(torch.nn.Module):
    """The exact toy ratio in the ratio-model contract: an oracle for the checks."""

    kind = "moments"
    feature_names = ("mass", "phi", "costh")
    prior = ThetaPrior()

    def __init__(self):
        super().__init__()
        self.register_buffer("cos_max", torch.tensor(TOY.cos_max))

    def log_ratio(self, x, theta):
        lr = TOY.log_ratio(
            x[:, 2].double().numpy(), x[:, 1].double().numpy(), as_theta(theta.double().numpy())
        )
        return torch.from_numpy(lr)


def test_check_ratio_closes_for_the_exact_ratio():
    """With the exact ratio each variable's χ² follows χ²(ndf): below its 99.9 % quantile;
    the unweighted nominal sample fails the same test. A μ-only change is invisible in the
    cosθ and φ marginals and must show in the sin2θ cosφ projection."""
    thetas = np.vstack([CHECK_THETAS, [1.0, 0.4, 0.0]])
    report = check_ratio(
        ExactToyRatio(), TOY, np.random.default_rng(9), thetas=thetas, n_events=100_000, bins=10
    )
    assert len(report.checks) == 4
    for check in report.checks:
        variables = {v.name: v for v in check.variables}
        assert set(variables) == {*TOY_FEATURES, "sin2theta_cosphi", "sin2theta_cos2phi"}
        for v in check.variables:
            assert v.chi2 < stats.chi2.ppf(0.999, v.ndf), (check.theta, v.name, v.chi2)
        assert max(v.chi2_nominal for v in check.variables) > stats.chi2.ppf(0.999, 9)
        assert abs(check.mean_ratio - 1) < 4 * check.mean_ratio_err
        assert check.log_ratio_rms < 1e-6
        assert np.allclose(check.profile["learned"], check.profile["reference"], rtol=1e-6)
        # the two-sample classifier cannot tell the exactly reweighted nominal from θ events
        assert abs(check.auc - 0.5) < 3 * check.auc_err, (check.theta, check.auc)
    mu_only = {v.name: v.chi2_nominal for v in report.checks[-1].variables}
    assert mu_only["sin2theta_cosphi"] > stats.chi2.ppf(0.999, 9)
    assert "chi2/ndf" in report.table() and "AUC" in report.table()


# ---------------------------------------------------------------- command line


def test_train_and_check_ratio_commands(tmp_path):
    from dyfit.cli.check_ratio import command as check_command
    from dyfit.cli.train import command as train_command

    run = tmp_path / "run"
    config = tmp_path / "train.toml"
    config.write_text("width = 8\ndepth = 2\nvalidation_events = 4000\nthreads = 1\n")
    args = [
        "-o",
        str(run),
        "--toy",
        "--events",
        "4000",
        "--epochs",
        "2",
        "--no-progress",
        "--config",
        str(config),
        "--estimator",
        "moments",
        "--prior",
        "proposal",
    ]
    train_command.main(args, standalone_mode=False)
    assert load_model(run).prior.lambda_ == (1.5, 2.5)  # the proposal's training box
    assert {"manifest.json", "model.safetensors", "training.png", "training.pdf"} <= {
        p.name for p in run.iterdir()
    }
    with pytest.raises(InputError, match="already holds a model"):
        train_command.main(args, standalone_mode=False)
    check_command.main(
        [str(run), "--events", "5000", "--theta", "1.5,0.1,0.1"], standalone_mode=False
    )
    out = run / "check_ratio"
    assert (out / "check_ratio.json").is_file() and (out / "log_ratio.png").is_file()
    assert (out / "closure_0.pdf").is_file()
