r"""The profiled Poisson likelihood of the binned fits, maximised by Newton's method.

Every binned method (:mod:`dyfit.fitting.binned`) predicts the content of bin j in
kinematic bin m as s_m f_j(θ), with f_j = M_j·c linear in c = (1, λ, μ, ν) and a free
normalisation s_m per kinematic bin. The fit maximises the Poisson likelihood with s_m
profiled, ŝ_m = N_m / F_m:

    NLL(θ) = −Σ_j n_j log f_j + Σ_m N_m log F_m,   F_m = Σ_{j∈m} f_j,

by Newton's method (its Hessian is analytic). ``stat``: H⁻¹, or H⁻¹(Σ w²-sandwich)H⁻¹
for weighted data (sumw2). ``nominal``: the nominal sample's fluctuation of M_j
(covariance C_j per bin) moves θ̂ by −H⁻¹ Σ_j D_j δM_j, D_j = ∂score/∂M_j, so
V_nominal = H⁻¹ (Σ_j D_j C_j D_jᵀ) H⁻¹ (the M-estimator argument of
:mod:`dyfit.fitting.likelihood`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.fitting.binning import bin_sums
from dyfit.physics.angular import THETA0, basis_coefficients

__all__ = ["profile_fit"]

_E = np.eye(4)[1:]  # ∂c/∂θ, (3, 4)


def _nll(theta: NDArray, n: NDArray, m: NDArray, group: NDArray, n_group: NDArray):
    """The profiled NLL, its gradient (3,) and Hessian (3, 3); None where some f_j ≤ 0."""
    c = basis_coefficients(theta)
    f = m @ c
    big_f = np.bincount(group, f, minlength=len(n_group))
    if np.any(f <= 0) or np.any(big_f <= 0):
        return None
    grad_f = bin_sums(group, len(n_group), m[:, 1:])  # ∇F_m, (K, 3)
    g = m[:, 1:] / f[:, None]
    gbar = grad_f / big_f[:, None]
    value = -n @ np.log(f) + n_group @ np.log(big_f)
    grad = -n @ g + n_group @ gbar
    hess = (g.T * n) @ g - (gbar.T * n_group) @ gbar
    return value, grad, hess, f, g, gbar


def profile_fit(
    n: NDArray,
    w2: NDArray,
    m: NDArray,
    cov_m: NDArray,
    group: NDArray,
    start: ArrayLike = THETA0,
    weighted: bool = False,
) -> dict[str, Any]:
    """Maximise the profiled Poisson likelihood (module docstring) by Newton's method.

    Arguments:
        n: Data per bin Σw, shape (J,); w2: Σw² per bin, shape (J,).
        m: The rows M_j with f_j = M_j·c, shape (J, 4); cov_m: their covariance from the
            finite nominal sample, shape (J, 4, 4).
        group: The kinematic bin of each bin, shape (J,), in [0, K).
        weighted: Use the sumw2 sandwich for ``stat`` (weighted data).

    Returns:
        A dict with ``theta`` (3,), ``stat`` and ``nominal`` (3, 3), ``converged``,
        ``iterations``, ``deviance`` and ``ndf``.
    """
    n_group = np.bincount(group, n, minlength=int(group.max()) + 1)
    theta = np.asarray(start, dtype=np.float64).copy()
    state = _nll(theta, n, m, group, n_group)
    if state is None:
        theta, state = THETA0.copy(), _nll(THETA0, n, m, group, n_group)
    converged, it = False, 0
    for it in range(1, 101):  # noqa: B007 - the count is reported
        value, grad, hess = state[:3]
        tau = 0.0
        while True:  # Levenberg damping where the Hessian is not positive definite
            try:
                chol = np.linalg.cholesky(hess + tau * np.eye(3))
                break
            except np.linalg.LinAlgError:
                tau = max(2 * tau, 1e-6 * np.trace(np.abs(hess)) + 1e-12)
        step = -np.linalg.solve(chol.T, np.linalg.solve(chol, grad))
        decrement = -grad @ step  # the Newton decrement: NLL units, errordef 0.5
        if decrement < 1e-8:
            converged = True
            break
        t = 1.0
        while t > 1e-8:
            trial = _nll(theta + t * step, n, m, group, n_group)
            if trial is not None and trial[0] <= value - 1e-4 * t * decrement:
                break
            t *= 0.5
        else:
            # no decrease left to find: the NLL's rounding (~1e-16 N) is the floor
            converged = decrement < 1e-4
            break
        theta, state = theta + t * step, trial
    value, grad, hess, f, g, gbar = state
    h_inv = np.linalg.inv(hess)
    u = g - gbar[group]  # the score per unit count in bin j
    stat = h_inv @ ((u.T * w2) @ u) @ h_inv if weighted else h_inv
    c = basis_coefficients(theta)
    big_f = np.bincount(group, f, minlength=len(n_group))
    # D_j = −(n_j/f_j)(E − g_j cᵀ) + (N_m/F_m)(E − ḡ_m cᵀ), each (3, 4)
    d = -(n / f)[:, None, None] * (_E - g[:, :, None] * c) + (n_group / big_f)[group][
        :, None, None
    ] * (_E - gbar[group][:, :, None] * c)
    nominal = h_inv @ np.einsum("jak,jkl,jbl->ab", d, cov_m, d) @ h_inv
    mu = (n_group / big_f)[group] * f
    pos = n > 0
    deviance = 2 * (mu.sum() - n.sum() + n[pos] @ np.log(n[pos] / mu[pos]))
    return {
        "theta": theta,
        "stat": stat,
        "nominal": nominal,
        "converged": converged,
        "iterations": it,
        "deviance": float(deviance),
        "ndf": int(len(n) - len(n_group) - 3),
    }
