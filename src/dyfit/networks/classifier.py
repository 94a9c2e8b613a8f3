r"""The parametrized classifier: the likelihood ratio r(x|θ) from a θ-conditioned BCE fit.

Trained on class 1 = events at θ_i and class 0 = nominal events at θ0 carrying
the same θ_i as input (the proposal's Table 1), the BCE-optimal score is
f = p(x|θ) / [p(x|θ) + p(x|θ0)], so f / (1 − f) = r(x|θ) and the logit itself is
log r (Cranmer, Pavez & Louppe, arXiv:1506.02169; Baldi et al., arXiv:1601.07913;
DCTR, arXiv:1907.08209).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dyfit.data.columns import FEATURES_DEFAULT
from dyfit.networks.mlp import MLP, PhiEncoding, RatioModel
from dyfit.physics.prior import ThetaPrior

__all__ = ["ParametrizedClassifier"]


class ParametrizedClassifier(RatioModel):
    r"""An MLP on (x, θ) whose logit is log r(x|θ) = log p(x|θ) − log p(x|θ0).

    Arguments:
        feature_names: The raw detector-level columns x reads, in order.
        prior: The θ box the model is trained on; it also fixes the θ standardisation
            (centre and the uniform distribution's standard deviation, width/√12).
        width: Nodes per hidden layer (64 in the proposal).
        depth: Hidden layers (5 in the proposal).
        phi_encoding: ``"raw"`` (the proposal) or ``"cossin"``.
        batch_norm: Batch normalisation after each hidden linear layer.

    Example:
        >>> model = ParametrizedClassifier(("mass", "phi", "costh"), width=16, depth=2)
        >>> model.eval().log_ratio(torch.zeros(5, 3), torch.tensor([1.0, 0.0, 0.0])).shape
        torch.Size([5])
    """

    kind = "classifier"

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
        bounds = self.prior.bounds
        self.register_buffer("theta_mean", torch.tensor(bounds.mean(1), dtype=torch.float32))
        self.register_buffer(
            "theta_scale",
            torch.tensor(np.diff(bounds, axis=1)[:, 0] / 12**0.5, dtype=torch.float32),
        )
        self.body = MLP(len(self.encoder.names) + 3, 1, width, depth, batch_norm)

    def forward(self, x: Tensor, theta: Tensor) -> Tensor:
        r"""The logit.

        Arguments:
            x: Raw columns in ``feature_names`` order, with shape (N, F).
            theta: (λ, μ, ν), with shape (3,) or (N, 3).

        Returns:
            The logit log f/(1 − f), with shape (N,).
        """
        x = self.as_input(x)
        theta = torch.broadcast_to(torch.as_tensor(theta).to(x), (x.shape[0], 3))
        t = (theta - self.theta_mean) / self.theta_scale
        return self.body(torch.cat([self.encoder(x), t], dim=-1)).squeeze(-1)

    def log_ratio(self, x: Tensor, theta: Tensor) -> Tensor:
        """log r(x|θ) with shape (N,): the logit, since f/(1 − f) = r."""
        return self(x, theta)

    def predict_proba(self, x: Tensor, theta: Tensor) -> Tensor:
        """The class-1 probability f(x, θ), with shape (N,)."""
        return torch.sigmoid(self(x, theta))
