r"""The exact-structure ratio model: one regression of the angular basis on x.

The angular density is linear in θ, f(Ω|θ)/f(Ω|θ0) = a(Ω)·c(θ) with the basis
a_k = :func:`~dyfit.physics.angular.angular_basis` and c = (1, λ, μ, ν). The
detector response does not depend on θ, so the detector-level ratio is

    r(x|θ) = h(x)·c / ā·c,   h_k(x) = E_0[a_k | x],   ā_k = E_0[a_k],

with expectations over accepted nominal events (a morphing-aware ratio in the sense
of arXiv:1805.00020, Sec. 4). A network regressing a_k on x with mean-squared error
learns h(x); all θ dependence is then exact.

The normalisation must agree with the network's own outputs: an offset of 2×10⁻⁴
in the mean of ĥ moved a fitted λ by 0.8σ. So ā is not the truth mean of a but the
network's own mean of ĥ over an independent nominal sample (:meth:`calibrate`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional

from dyfit.data.columns import FEATURES_DEFAULT
from dyfit.networks.mlp import MLP, PhiEncoding, RatioModel
from dyfit.physics.prior import ThetaPrior

__all__ = ["AngularMomentRegressor", "basis_coefficients_t"]

# ĥ·c is a conditional mean of non-negative weights; a learned one may still dip
# to zero or below at extreme θ, where the log would be undefined.
_MIN_NUMERATOR = 1e-6


def basis_coefficients_t(theta: Tensor) -> Tensor:
    """c = (1, λ, μ, ν) for θ with shape (*, 3); shape (*, 4). Torch twin of the NumPy one."""
    return functional.pad(theta, (1, 0), value=1.0)


class AngularMomentRegressor(RatioModel):
    r"""x → ĥ(x) ≈ E_0[a | x], with shape (N, 4), and the exact-structure log-ratio.

    The body predicts the standardised targets; ``target_mean`` and ``target_scale``
    (buffers, set from training targets) map back to a-units. ``abar`` is set by
    :meth:`calibrate`. Arguments as for
    :class:`~dyfit.networks.classifier.ParametrizedClassifier`; the prior is only
    carried along for the fit.

    Example:
        >>> model = AngularMomentRegressor(("phi", "costh"), width=16, depth=2).eval()
        >>> model.moments(torch.zeros(5, 2)).shape
        torch.Size([5, 4])
    """

    kind = "moments"

    def __init__(
        self,
        feature_names: tuple[str, ...] = FEATURES_DEFAULT,
        prior: ThetaPrior | dict | None = None,
        width: int = 64,
        depth: int = 5,
        phi_encoding: PhiEncoding = "raw",
        batch_norm: bool = True,
    ) -> None:
        super().__init__(
            feature_names, prior or ThetaPrior(), width, depth, phi_encoding, batch_norm
        )
        self.register_buffer("target_mean", torch.zeros(4))
        self.register_buffer("target_scale", torch.ones(4))
        # Until calibrated: ā over the full sphere, where E_0[cos²θ/(1 + cos²θ)] = 1/4
        # and the μ, ν terms average to zero (a0 + a1 = 1 for every event).
        self.register_buffer("abar", torch.tensor([0.75, 0.25, 0.0, 0.0]))
        self.body = MLP(len(self.encoder.names), 4, width, depth, batch_norm)

    @torch.no_grad()
    def fit_targets(self, target: Tensor) -> AngularMomentRegressor:
        """Set the target standardisation from training targets a with shape (N, 4)."""
        target = target.to(self.target_mean)
        self.target_mean.copy_(target.mean(0))
        self.target_scale.copy_(target.std(0).clamp_min(1e-6))
        return self

    def standardised(self, x: Tensor) -> Tensor:
        """The body's output, (ĥ − target_mean)/target_scale, with shape (N, 4)."""
        return self.body(self.encoder(self.as_input(x)))

    def moments(self, x: Tensor) -> Tensor:
        """ĥ(x) ≈ E_0[a_k | x], with shape (N, 4); x raw columns with shape (N, F)."""
        return self.standardised(x) * self.target_scale + self.target_mean

    forward = moments

    @torch.no_grad()
    def calibrate(self, x: Tensor, batch_size: int = 65536) -> Tensor:
        """Set ``abar`` to the mean of ĥ over nominal events x (N, F); returns it.

        Use events the network was not trained on. Evaluated in eval mode.
        """
        was_training = self.training
        self.eval()
        total = torch.zeros(4, dtype=torch.float64, device=self.abar.device)
        for start in range(0, x.shape[0], batch_size):
            total += self.moments(x[start : start + batch_size]).double().sum(0)
        self.abar.copy_(total / x.shape[0])
        self.train(was_training)
        return self.abar

    def log_ratio(self, x: Tensor, theta: Tensor) -> Tensor:
        r"""log r(x|θ) = log(ĥ(x)·c) − log(ā·c), with shape (N,).

        Arguments:
            x: Raw columns in ``feature_names`` order, with shape (N, F).
            theta: (λ, μ, ν), with shape (3,) or (N, 3).
        """
        h = self.moments(x)
        c = basis_coefficients_t(torch.as_tensor(theta).to(h))
        numerator = (h * c).sum(-1).clamp_min(_MIN_NUMERATOR)
        return torch.log(numerator) - torch.log((self.abar * c).sum(-1))
