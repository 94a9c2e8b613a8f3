r"""An analytic toy experiment whose detector-level likelihood ratio is known exactly.

Events carry the true Collins-Soper angles; the "detector" keeps those with
|cosθ| < a and measures them perfectly, and adds a mass column that carries no
information on θ. With acceptance depending on cosθ only, the μ and ν terms
integrate to zero over φ and the accepted fraction at θ is

    ε(θ) ∝ ∫_{-a}^{a} (1 + λc²) dc = 2a(1 + λa²/3),

so the normalised detector-level ratio is, exactly,

    r(x|θ) = [f(x|θ) / f(x|θ0)] · (1 + λ0 a²/3) / (1 + λ a²/3).

Tests of the ratio estimators and of the fits compare with this oracle.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.data.events import EventTable
from dyfit.physics.angular import THETA0, angular_density, as_theta, sample_angles

__all__ = ["ToyExperiment"]


class ToyExperiment:
    """The toy: |cosθ| < ``cos_max`` acceptance, perfect resolution, an inert mass column.

    Arguments:
        cos_max: The acceptance edge a in |cosθ| < a.
    """

    def __init__(self, cos_max: float = 0.5) -> None:
        self.cos_max = cos_max

    def simulate(self, n: int, theta: ArrayLike, rng: np.random.Generator) -> EventTable:
        """n accepted events at θ with shape (3,), or at one θ per event with shape (n, 3).

        Columns: ``costh``, ``phi``, ``mass`` (detector level) and ``true_costh``,
        ``true_phi``, ``theta_lambda``, ``theta_mu``, ``theta_nu``.
        """
        t = as_theta(theta)
        per_event = np.broadcast_to(t, (n, 3)) if t.ndim == 1 else t
        costh = np.empty(n)
        phi = np.empty(n)
        todo = np.arange(n)
        while todo.size:
            c, p = sample_angles(per_event[todo], None, rng)
            ok = np.abs(c) < self.cos_max
            costh[todo[ok]] = c[ok]
            phi[todo[ok]] = p[ok]
            todo = todo[~ok]
        mass = 4.5 + rng.exponential(1.0, n)
        columns = {
            "mass": mass,
            "costh": costh,
            "phi": phi,
            "true_costh": costh.copy(),
            "true_phi": phi.copy(),
            "theta_lambda": per_event[:, 0].copy(),
            "theta_mu": per_event[:, 1].copy(),
            "theta_nu": per_event[:, 2].copy(),
        }
        return EventTable(columns, {"generator": "toy", "cos_max": self.cos_max})

    def log_ratio(self, costh: ArrayLike, phi: ArrayLike, theta: ArrayLike) -> NDArray:
        """The exact normalised detector-level log r(x|θ) = log p(x|θ) - log p(x|θ0)."""
        t = as_theta(theta)
        a2 = self.cos_max**2
        lam = t[..., 0]
        return (
            np.log(angular_density(costh, phi, t))
            - np.log(angular_density(costh, phi, THETA0))
            + np.log1p(THETA0[0] * a2 / 3.0)
            - np.log1p(lam * a2 / 3.0)
        )
