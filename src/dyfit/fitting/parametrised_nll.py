r"""The per-event-θ negative log-likelihood of the parametrised fit, its derivatives and errors.

θ_p(v) = Σ_k β_pk t^k in the scaled variable t = (v − v_c)/v_s
(:mod:`dyfit.fitting.parametrised`); :func:`to_powers_of_v` maps β back to powers of v.

**Likelihood.** For a moments model (ĥ(x)·c with c = (1, λ, μ, ν)) the density of
accepted events at a fixed θ is q(x|θ) ∝ q(x|θ0) ĥ(x)·c / ā_Ω·c, where
ā_Ω·c = (3 + λ)/4 is the full-sphere normalisation 4π(1 + λ/3) relative to θ0's
(:mod:`dyfit.physics.angular`). The model's own ratio r = ĥ·c / ā·c divides in
addition by the acceptance at θ, ε(θ)/ε(θ0) = ā·c / ā_Ω·c: a constant for one θ, which
cancels in the ordinary fit, but not when θ differs from event to event. So, with
s(x, θ) = ĥ(x)·c / ā_Ω·c and θ_i = θ(v_i),

    NLL(β) = −Σ_i log s(x_i, θ_i) + N log[(1/M) Σ_j s(y_j, θ_j)],

the nominal events y_j each at their own θ_j = θ(v_j). This is exact when v is
measured perfectly (truth level); with resolution, θ(v) is the curve in the measured v.

**Errors.** ``stat``: the inverse of the analytic Hessian. ``nominal``: the finite nominal sample
by the M-estimator argument of :mod:`dyfit.fitting.likelihood`, with u_j = (s_j, ∇_β s_j).
"""

from __future__ import annotations

from math import comb
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from dyfit.fitting.likelihood import INVALID

if TYPE_CHECKING:
    from dyfit.fitting.parametrised import Parametrisation

__all__ = ["ABAR_SPHERE", "PerEventNLL", "to_powers_of_v"]

ABAR_SPHERE = np.array([0.75, 0.25, 0.0, 0.0])  # ā_Ω·c = (3 + λ)/4


class PerEventNLL:
    """NLL(β) of the module docstring on ĥ (N, 4) and the scaled variable t (N,)."""

    errordef = 0.5

    def __init__(self, h, t, h_nom, t_nom, par: Parametrisation) -> None:
        self.par, self.blocks = par, par.blocks()
        self.samples = [
            (h, [np.vander(t, d + 1, increasing=True) for d in par.degrees]),
            (h_nom, [np.vander(t_nom, d + 1, increasing=True) for d in par.degrees]),
        ]
        self.n = h.shape[0]

    def _s(self, beta, sample):
        """ĥ·c (N,) and ā_Ω·c (N,) at the events' own θ(v); None where either is ≤ 0."""
        h, powers = sample
        theta = [p @ beta[b] for p, b in zip(powers, self.blocks, strict=True)]
        hc = h[:, 0] + sum(h[:, i + 1] * t for i, t in enumerate(theta))
        ac = ABAR_SPHERE[0] + ABAR_SPHERE[1] * theta[0]
        return (hc, ac) if np.all(hc > 0) and np.all(ac > 0) else None

    def _jacobians(self, beta, sample, hc, ac):
        """∇_β log(ĥ·c) and ∇_β log(ā_Ω·c), each (N, K): the blocks t^k ∂/∂θ_p."""
        h, powers = sample
        a = np.hstack([p * (h[:, i + 1] / hc)[:, None] for i, p in enumerate(powers)])
        b = np.zeros_like(a)
        b[:, self.blocks[0]] = powers[0] * (ABAR_SPHERE[1] / ac)[:, None]  # only λ enters ā_Ω·c
        return a, b

    def __call__(self, beta) -> float:
        beta = np.asarray(beta)
        parts = [self._s(beta, sample) for sample in self.samples]
        if parts[0] is None or parts[1] is None:
            return INVALID
        (hc, ac), (hc_nom, ac_nom) = parts
        m0 = np.mean(hc_nom / ac_nom)
        return float(-np.log(hc).sum() + np.log(ac).sum() + self.n * np.log(m0))

    def grad(self, beta) -> NDArray:
        beta = np.asarray(beta)
        parts = [self._s(beta, sample) for sample in self.samples]
        if parts[0] is None or parts[1] is None:
            return np.zeros_like(beta)
        a, b = self._jacobians(beta, self.samples[0], *parts[0])
        a_nom, b_nom = self._jacobians(beta, self.samples[1], *parts[1])
        s = parts[1][0] / parts[1][1]
        return -(a - b).sum(0) + self.n * (s @ (a_nom - b_nom)) / s.sum()

    def hessian(self, beta) -> NDArray:
        """The analytic Hessian (K, K): log s = log(ĥ·c) − log(ā_Ω·c) with c linear in β,
        so ∇²log s = −AAᵀ + BBᵀ per event and ∇²s = s (GGᵀ − AAᵀ + BBᵀ), G = A − B."""
        a, b = self._jacobians(beta, self.samples[0], *self._s(beta, self.samples[0]))
        hc_nom, ac_nom = self._s(beta, self.samples[1])
        a_nom, b_nom = self._jacobians(beta, self.samples[1], hc_nom, ac_nom)
        s = hc_nom / ac_nom
        g = a_nom - b_nom
        m0, m1 = s.mean(), s @ g / s.size
        m2 = ((g.T * s) @ g - (a_nom.T * s) @ a_nom + (b_nom.T * s) @ b_nom) / s.size
        return a.T @ a - b.T @ b + self.n * (m2 / m0 - np.outer(m1, m1) / m0**2)

    def nominal_covariance(self, beta, h_inv) -> NDArray:
        """H⁻¹ B (Cov(u)/M) Bᵀ H⁻¹ with u_j = (s_j, ∇s_j), B = (N/m0)[−m1/m0 | 1_K]."""
        hc, ac = self._s(beta, self.samples[1])
        a, b = self._jacobians(beta, self.samples[1], hc, ac)
        s = hc / ac
        u = np.column_stack([s, s[:, None] * (a - b)])
        m0, m1 = u[:, 0].mean(), u[:, 1:].mean(0)
        bmat = (self.n / m0) * np.hstack([-m1[:, None] / m0, np.eye(m1.size)])
        j = h_inv @ bmat
        return j @ (np.cov(u, rowvar=False) / u.shape[0]) @ j.T


def to_powers_of_v(par: Parametrisation, centre: float, scale: float) -> NDArray:
    """T with β_v = T β_t: Σ_k b_k ((v − c)/s)^k = Σ_j a_j v^j, block-diagonal (K, K)."""
    k_total = sum(d + 1 for d in par.degrees)
    t = np.zeros((k_total, k_total))
    for block, d in zip(par.blocks(), par.degrees, strict=True):
        for k in range(d + 1):
            for j in range(k + 1):
                t[block.start + j, block.start + k] = comb(k, j) * (-centre) ** (k - j) / scale**k
    return t
