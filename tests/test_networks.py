"""Invariants of the ratio models: shapes, gradients, eval/folded agreement, the moment formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dyfit.errors import InputError
from dyfit.networks import MLP, AngularMomentRegressor, ParametrizedClassifier, fold_batchnorm
from dyfit.physics.angular import basis_coefficients

torch.set_num_threads(1)

FEATURES = ("mass", "phi", "costh")
MODELS = [ParametrizedClassifier, AngularMomentRegressor]


def make(cls, phi_encoding="raw", batch_norm=True):
    torch.manual_seed(0)
    return cls(FEATURES, width=16, depth=3, phi_encoding=phi_encoding, batch_norm=batch_norm)


def events(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mass = 4.5 + torch.rand(n, generator=g) * 4
    phi = (torch.rand(n, generator=g) * 2 - 1) * torch.pi
    costh = torch.rand(n, generator=g) - 0.5
    return torch.stack([mass, phi, costh], dim=-1)


def scramble_batchnorm(model) -> None:
    """Give every batch-norm layer non-trivial affine parameters and running statistics."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g))
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.2 + torch.rand(m.num_features, generator=g))


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("phi_encoding", ["raw", "cossin"])
def test_shapes(cls, phi_encoding):
    model = make(cls, phi_encoding).eval()
    x = events(7)
    assert model.log_ratio(x, torch.tensor([1.0, 0.2, -0.1])).shape == (7,)
    assert model.log_ratio(x, torch.rand(7, 3)).shape == (7,)
    assert model.kind in ("classifier", "moments")
    assert model.feature_names == FEATURES
    if cls is AngularMomentRegressor:
        assert model.moments(x).shape == (7, 4)
    else:
        assert torch.equal(model(x, torch.zeros(3)), model.log_ratio(x, torch.zeros(3)))
        p = model.predict_proba(x, torch.zeros(3))
        assert torch.all((p > 0) & (p < 1))


@pytest.mark.parametrize("cls", MODELS)
def test_wrong_columns_refused(cls):
    with pytest.raises(InputError, match="shape"):
        make(cls).log_ratio(torch.zeros(4, 5), torch.zeros(3))


@pytest.mark.parametrize("cls", MODELS)
def test_gradients_reach_every_parameter_and_theta(cls):
    model = make(cls, "cossin").train()
    theta = torch.tensor([1.2, 0.1, -0.2], requires_grad=True)
    if cls is AngularMomentRegressor:
        # untrained, ĥ·c may sit at its positivity clamp, which passes no gradient
        model.moments(events(64)).pow(2).sum().backward()
        model.log_ratio(events(64), theta).sum().backward()
    else:
        model.log_ratio(events(64), theta).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.any(p.grad != 0), name
    assert theta.grad is not None and torch.all(torch.isfinite(theta.grad))
    assert torch.any(theta.grad != 0)


@pytest.mark.parametrize("cls", MODELS)
def test_eval_is_independent_of_the_batch(cls):
    model = make(cls)
    scramble_batchnorm(model)
    model.eval()
    x, theta = events(50), torch.tensor([0.5, 0.3, 0.2])
    whole = model.log_ratio(x, theta)
    parts = torch.cat([model.log_ratio(x[:3], theta), model.log_ratio(x[3:], theta)])
    torch.testing.assert_close(parts, whole, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", MODELS)
def test_train_and_eval_agree_without_batchnorm(cls):
    model = make(cls, batch_norm=False)
    x, theta = events(20), torch.rand(20, 3)
    torch.testing.assert_close(model.train().log_ratio(x, theta), model.eval().log_ratio(x, theta))


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("phi_encoding", ["raw", "cossin"])
def test_folded_batchnorm_agrees(cls, phi_encoding):
    model = make(cls, phi_encoding)
    scramble_batchnorm(model)
    model.eval()
    folded = model.folded()
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in folded.modules())
    assert folded.architecture()["batch_norm"] is False and not folded.body.training
    x, theta = events(200), torch.rand(200, 3) * torch.tensor([2.0, 1.0, 1.0])
    torch.testing.assert_close(
        folded.log_ratio(x, theta), model.log_ratio(x, theta), rtol=1e-5, atol=1e-5
    )
    # the original is untouched
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())


def test_fold_batchnorm_against_explicit_affine_map():
    torch.manual_seed(3)
    mlp = MLP(4, 2, width=8, depth=1)
    scramble_batchnorm(mlp)
    mlp.eval()
    x = torch.randn(10, 4)
    lin, bn, out = mlp[0], mlp[1], mlp[3]
    by_hand = out(
        torch.relu(
            (lin(x) - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        )
    )
    torch.testing.assert_close(fold_batchnorm(mlp)(x), by_hand, rtol=1e-5, atol=1e-6)


def test_cossin_encoding_is_periodic_in_phi():
    model = make(ParametrizedClassifier, "cossin").eval()
    x = events(30)
    shifted = x.clone()
    shifted[:, 1] += 2 * torch.pi
    theta = torch.tensor([1.0, 0.3, 0.3])
    torch.testing.assert_close(model(shifted, theta), model(x, theta), rtol=1e-4, atol=1e-4)
    assert model.encoder.names == ("mass", "cos(phi)", "sin(phi)", "costh")


def test_encoder_standardises():
    model = make(ParametrizedClassifier, "cossin")
    x = events(5000)
    model.encoder.fit(x)
    z = model.encoder(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(4), atol=1e-5, rtol=0)


def test_moment_log_ratio_formula_and_calibration():
    """log r = log(ĥ·c) − log(ā·c), checked in NumPy; ā calibrated on x gives ⟨r⟩ = 1 on x."""
    model = make(AngularMomentRegressor, batch_norm=False).eval()
    with torch.no_grad():  # an output offset that keeps ĥ·c positive for these θ
        model.target_mean.copy_(torch.tensor([0.8, 0.2, 0.0, 0.0]))
        model.target_scale.fill_(0.01)
    x = events(1000)
    abar = model.calibrate(x)
    h = model.moments(x).detach().double().numpy()
    np.testing.assert_allclose(abar.numpy(), h.mean(0), rtol=1e-6)
    theta = np.array([1.4, -0.2, 0.3])
    c = basis_coefficients(theta)
    expected = np.log(h @ c) - np.log(abar.double().numpy() @ c)
    got = model.log_ratio(x, torch.tensor(theta, dtype=torch.float32)).detach().double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.mean(np.exp(got)) == pytest.approx(1.0, abs=1e-5)
