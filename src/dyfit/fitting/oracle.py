r"""The truth-level oracle: the exact ratio as a ``kind == "moments"`` model.

With the generator-level angles the ratio to the nominal is exactly linear in θ,

    r(Ω|θ) = a(Ω)·c / ā·c,   a = angular_basis(cosθ, φ),  c = (1, λ, μ, ν),

so fitting it with the same likelihood code as a learned model on the same events
gives the physical limit of the measurement (perfect resolution, same acceptance).
In the likelihood ā cancels; only the BCE fits need it to equal the mean of a over
the accepted nominal sample (:meth:`TruthRatio.calibrated`, or the exact value for
the toy: :meth:`TruthRatio.for_toy`).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from dyfit.data.events import EventTable
from dyfit.fitting.result import FitResult
from dyfit.physics.angular import THETA_NAMES, angular_basis, basis_coefficients
from dyfit.physics.prior import ThetaPrior

__all__ = ["TruthRatio", "check_physical_limit", "expected_oracle_errors"]

# E_0[a] over the full sphere: ∫ b dΩ / ∫ (1 + cos²θ) dΩ = (3/4, 1/4, 0, 0).
ABAR_SPHERE = (0.75, 0.25, 0.0, 0.0)


class TruthRatio(nn.Module):
    r"""The exact truth-level ratio, in float64.

    Arguments:
        prior: The θ box fits are limited to (default: :class:`ThetaPrior`).
        abar: ā, the nominal mean of a, with shape (4,) (default: the full sphere's).
        feature_names: The two columns holding cosθ and φ (rad).
    """

    kind = "moments"

    def __init__(
        self,
        prior: ThetaPrior | None = None,
        abar: ArrayLike = ABAR_SPHERE,
        feature_names: tuple[str, str] = ("true_costh", "true_phi"),
    ) -> None:
        super().__init__()
        self.prior = prior if prior is not None else ThetaPrior()
        self.feature_names = tuple(feature_names)
        self.register_buffer("abar", torch.as_tensor(np.asarray(abar, dtype=np.float64)))

    @classmethod
    def calibrated(cls, nominal: EventTable, **kwargs) -> TruthRatio:
        """The oracle with ā measured as the mean of a over a nominal sample."""
        names = kwargs.get("feature_names", ("true_costh", "true_phi"))
        return cls(abar=angular_basis(nominal[names[0]], nominal[names[1]]).mean(0), **kwargs)

    @classmethod
    def for_toy(cls, cos_max: float, **kwargs) -> TruthRatio:
        r"""The oracle with the toy's exact ā for acceptance |cosθ| < a (:mod:`dyfit.toy`):

        ā = (1, a²/3, 0, 0) / (1 + a²/3), the φ-terms integrating to zero.
        """
        a2 = cos_max**2
        return cls(abar=np.array([1.0, a2 / 3.0, 0.0, 0.0]) / (1.0 + a2 / 3.0), **kwargs)

    def moments(self, x: Tensor) -> Tensor:
        r"""a(Ω) = (1, c², sin2θ cosφ, ½ sin²θ cos2φ) / (1 + c²).

        Arguments:
            x: (cosθ, φ), with shape (N, 2).

        Returns:
            The basis weights, with shape (N, 4).
        """
        c, phi = x[:, 0], x[:, 1]
        sin2 = 1.0 - c * c
        b = torch.stack(
            [
                torch.ones_like(c),
                c * c,
                2.0 * c * sin2.clamp(min=0.0).sqrt() * torch.cos(phi),
                0.5 * sin2 * torch.cos(2.0 * phi),
            ],
            dim=-1,
        )
        return b / (1.0 + c * c)[:, None]

    def log_ratio(self, x: Tensor, theta: Tensor) -> Tensor:
        r"""log r(x|θ) = log(a·c) − log(ā·c), with shape (N,); θ with shape (3,) or (N, 3)."""
        theta = torch.as_tensor(theta, dtype=x.dtype)
        coef = torch.cat([torch.ones_like(theta[..., :1]), theta], dim=-1)
        h = self.moments(x)
        return torch.log((h * coef).sum(-1)) - torch.log((self.abar.to(x.dtype) * coef).sum(-1))


def expected_oracle_errors(
    nominal: EventTable, theta: ArrayLike, n_events: int
) -> np.ndarray | None:
    r"""The truth-level (oracle) error on θ expected for ``n_events`` events at θ, shape (3,).

    The Fisher information of the normalised truth-level likelihood is
    n · Cov_θ(∇log(a·c)), the covariance taken over the nominal sample reweighted to θ
    by w = a·c. No detector-level method can have a smaller statistical error on the
    same acceptance, so a fit reporting less has a miscalibrated ratio model. Returns
    None when the nominal sample lacks the truth angles (real data workflows).
    """
    if "true_costh" not in nominal or "true_phi" not in nominal:
        return None
    a = angular_basis(nominal["true_costh"], nominal["true_phi"])
    ac = a @ basis_coefficients(theta)
    if np.any(ac <= 0):
        return None
    score = a[:, 1:] / ac[:, None]
    w = ac / ac.sum()
    centred = score - w @ score
    info = n_events * (centred.T * w) @ centred
    try:
        return np.sqrt(np.diag(np.linalg.inv(info)))
    except np.linalg.LinAlgError:
        return None


def check_physical_limit(result: FitResult, nominal: EventTable) -> None:
    """Warn (in ``result.warnings``) if the statistical errors beat the truth-level limit.

    Needs a simulated nominal sample (truth angles); records the expected oracle errors
    in ``result.extra["sigma_oracle_expected"]``.

    An error more than 20 % below the truth-level limit cannot come from a correct
    ratio model (the Hessian of N events fluctuates by far less than that).
    """
    limit = expected_oracle_errors(nominal, result.values, result.n_events)
    stat = result.covariance.get("stat")
    if limit is None or stat is None:
        return
    result.extra["sigma_oracle_expected"] = dict(zip(THETA_NAMES, map(float, limit), strict=True))
    below = np.sqrt(np.clip(np.diag(stat), 0.0, None)) < 0.8 * limit
    if np.any(below):
        names = ", ".join(n for n, b in zip(THETA_NAMES, below, strict=True) if b)
        result.warnings.append(
            f"the statistical error on {names} is below the truth-level limit for this "
            "acceptance: the ratio model is miscalibrated and its errors cannot be trusted"
        )
