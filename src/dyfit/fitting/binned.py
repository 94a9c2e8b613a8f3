r"""Binned fits of θ = (λ, μ, ν): bin-by-bin acceptance correction, D'Agostini unfolding
(:mod:`dyfit.fitting.unfold`) and the forward-folding template fit.

Events are histogrammed in angular bins j = (cosθ, φ) of the detector-level angles,
optionally within kinematic bins m (mass, pT, xF; :func:`parse_bins`). Every method
predicts the content of bin j in kinematic bin m as s_m f_j(θ) with a free
normalisation s_m per kinematic bin (so only the angular shape within each m is used),
and f_j linear in c = (1, λ, μ, ν): f_j = M_j·c.

- ``template`` (forward folding): M_j = Σ_{nominal e in reco bin j} a(Ω_e^true), with
  a = :func:`~dyfit.physics.angular.angular_basis`; the nominal sample reweighted at
  truth level with the exact weights a·c. No approximation but the nominal's size.
- ``binned-acceptance``: M_j = A_j B_j with B_j = ∫_bin b dΩ (exact bin integrals of
  the density, :func:`bin_integrals`) and the acceptance A_j = Σ_{e∈j} a_e·c_ref / B_j·c_ref
  from the nominal sample (its generated truth angles follow 1 + cos²θ, so A_j is known
  up to one constant). The first pass takes c_ref at θ0; ``iterations`` > 1 re-derives
  A_j at the previous θ̂, which removes the dependence of the bin-averaged acceptance
  (migrations, slope within a bin) on the assumed θ.

The fit maximises the Poisson likelihood with s_m profiled, ŝ_m = N_m / F_m:

    NLL(θ) = −Σ_j n_j log f_j + Σ_m N_m log F_m,   F_m = Σ_{j∈m} f_j,

by Newton's method (its Hessian is analytic). ``stat``: H⁻¹, or H⁻¹(Σ w²-sandwich)H⁻¹
for weighted data (sumw2). ``nominal``: the nominal sample's fluctuation of M_j
(covariance C_j per bin) moves θ̂ by −H⁻¹ Σ_j D_j δM_j, D_j = ∂score/∂M_j, so
V_nominal = H⁻¹ (Σ_j D_j C_j D_jᵀ) H⁻¹ (the M-estimator argument of
:mod:`dyfit.fitting.likelihood`). Bins with fewer than ``min_nominal`` nominal events
are left out (listed in ``extra["bins"]``): the acceptance there is unknown.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.data.events import EventTable
from dyfit.data.io import check_finite
from dyfit.errors import InputError
from dyfit.fitting.binning import Binning, bin_integrals, parse_bins
from dyfit.fitting.result import FitResult
from dyfit.physics.angular import THETA0, angular_basis, as_theta, basis_coefficients, is_physical

__all__ = ["Binning", "parse_bins", "bin_integrals", "profile_fit", "fit_binned"]

_E = np.eye(4)[1:]  # ∂c/∂θ, (3, 4)


def _sums(index: NDArray, n_bins: int, values: NDArray) -> NDArray:
    """Σ of ``values`` (N, *S) per bin, shape (n_bins, *S); events with index -1 skipped."""
    ok = index >= 0
    flat = values[ok].reshape(int(ok.sum()), -1)
    out = np.stack(
        [np.bincount(index[ok], flat[:, k], minlength=n_bins) for k in range(flat.shape[1])], -1
    )
    return out.reshape((n_bins,) + values.shape[1:])


def _nll(theta: NDArray, n: NDArray, m: NDArray, group: NDArray, n_group: NDArray):
    """The profiled NLL, its gradient (3,) and Hessian (3, 3); None where some f_j ≤ 0."""
    c = basis_coefficients(theta)
    f = m @ c
    big_f = np.bincount(group, f, minlength=len(n_group))
    if np.any(f <= 0) or np.any(big_f <= 0):
        return None
    grad_f = _sums(group, len(n_group), m[:, 1:])  # ∇F_m, (K, 3)
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


def _columns(binning: Binning, truth: bool = False) -> list[str]:
    angles = ["true_costh", "true_phi"] if truth else []
    return ["costh", "phi", *angles, *binning.kinematic]


def fit_binned(
    data: EventTable,
    nominal: EventTable,
    method: str = "template",
    *,
    bins: Binning | str | None = None,
    min_nominal: int = 10,
    iterations: int | None = None,
    min_expected: float | None = None,
    start: ArrayLike | None = None,
    drop_invalid: bool = False,
) -> FitResult:
    """Fit θ with a binned method: "template", "binned-acceptance" or "unfold".

    Arguments:
        data: Detector-level events (``costh``, ``phi``, the kinematic bin columns, and an
            optional per-event ``weight``).
        nominal: Simulated accepted events at θ0 with ``true_costh`` and ``true_phi``
            (an optional ``weight`` column is honoured).
        bins: A :class:`Binning` or its text form (:func:`parse_bins`); default 20 × 12
            bins in (cosθ, φ).
        min_nominal: Bins with fewer nominal events are left out.
        iterations: binned-acceptance: acceptance passes (default 5; 1 is the classic
            correction at θ0); unfold: D'Agostini iterations
            (default :data:`~dyfit.fitting.unfold.DEFAULT_ITERATIONS`).
        min_expected: unfold: truth bins expecting fewer detected data events stay in the
            unfolding but out of the χ² (default :data:`~dyfit.fitting.unfold.MIN_EXPECTED`).
        start: The start θ (template and binned-acceptance).

    Example:
        >>> result = fit_binned(data, nominal, "template", bins="costh=10,phi=8")  # doctest: +SKIP
    """
    if method not in ("template", "binned-acceptance", "unfold"):
        raise InputError(f"unknown binned method {method!r}")
    t0 = time.perf_counter()
    binning = bins if isinstance(bins, Binning) else parse_bins(bins, nominal)
    data = check_finite(data, _columns(binning), drop_invalid=drop_invalid)
    nominal.require(["true_costh", "true_phi"], "the nominal sample (binned fits)")
    nominal = check_finite(nominal, _columns(binning, truth=True), drop_invalid=drop_invalid)
    weighted = "weight" in data
    if weighted:
        data = check_finite(data, ["weight"], drop_invalid=drop_invalid)
    n_ang = binning.n_angular
    n_bins = n_ang * binning.n_groups

    def reco_index(events: EventTable) -> NDArray:
        group = binning.group_index(events)
        ang = binning.angular_index(events["costh"], events["phi"])
        return np.where((group < 0) | (ang < 0), -1, group * n_ang + ang)

    w = np.asarray(data["weight"], dtype=np.float64) if weighted else np.ones(len(data))
    wn = np.asarray(nominal["weight"], dtype=np.float64) if "weight" in nominal else None
    idx, idx_nom = reco_index(data), reco_index(nominal)
    n, w2 = _sums(idx, n_bins, w), _sums(idx, n_bins, w * w)
    count_nom = np.bincount(idx_nom[idx_nom >= 0], minlength=n_bins)
    a = angular_basis(nominal["true_costh"], nominal["true_phi"])
    if wn is not None:
        a = a * wn[:, None]
    group = np.arange(n_bins) // n_ang
    extra: dict[str, Any] = {"binning": binning.describe()}
    warns: list[str] = []

    if method == "unfold":
        from dyfit.fitting.unfold import fit_unfold

        idx_true = binning.angular_index(nominal["true_costh"], nominal["true_phi"])
        out = fit_unfold(
            binning, idx, w, idx_nom, idx_true, wn, min_nominal, iterations, weighted, min_expected
        )
        used = out.pop("effect_bins")
    else:
        used = count_nom >= min_nominal
        if method == "template":
            m = _sums(idx_nom, n_bins, a)
            cov_m = _sums(idx_nom, n_bins, a[:, :, None] * a[:, None, :])
            out = _fit_used(n, w2, m, cov_m, group, used, start, weighted)
        else:
            out = _fit_acceptance(
                binning,
                n,
                w2,
                a,
                idx_nom,
                n_bins,
                group,
                used,
                start,
                weighted,
                iterations if iterations is not None else 5,
                warns,
            )
    lost = float(w[idx < 0].sum() + n[~used].sum())
    extra["bins"] = {
        "used": int(used.sum()),
        "left_out": int((~used & (count_nom > 0)).sum()),
        "data_left_out": lost,
        "min_nominal": min_nominal,
    }
    extra.update(out.pop("extra", {}))
    if abs(lost) > 0.01 * abs(w.sum()):
        warns.append(
            f"{lost:g} of {w.sum():g} data events lie outside the bins or in bins with fewer "
            f"than {min_nominal} nominal events and were left out"
        )
    if not out["converged"]:
        warns.append(f"the {method} fit did not converge")
    return FitResult(
        method=method,
        n_events=len(data),
        values=out["theta"],
        converged=bool(out["converged"]),
        covariance={"stat": out["stat"], "nominal": out["nominal"]},
        n_nominal=len(nominal),
        fit_time_s=time.perf_counter() - t0,
        warnings=warns,
        extra=extra | {"gof": {"deviance": out["deviance"], "ndf": out["ndf"]}},
    )


def _fit_used(n, w2, m, cov_m, group, used, start, weighted) -> dict[str, Any]:
    """:func:`profile_fit` on the bins ``used``, kinematic bins renumbered densely."""
    _, dense = np.unique(group[used], return_inverse=True)
    return profile_fit(
        n[used],
        w2[used],
        m[used],
        cov_m[used],
        dense,
        THETA0 if start is None else as_theta(start),
        weighted,
    )


def _fit_acceptance(
    binning, n, w2, a, idx_nom, n_bins, group, used, start, weighted, iterations, warns
) -> dict[str, Any]:
    """Bin-by-bin: M_j = A_j B_j with A_j measured at θ0, then at the last θ̂.

    The passes converge to θ* = F(θ*), F(θ_ref) being the fit with the acceptance at
    θ_ref. Since θ* moves with the data through A too, its covariance is K V_F Kᵀ with
    K = (I − ∂F/∂θ_ref)⁻¹ (∂F/∂θ_ref by central differences of 0.1σ).
    """
    if iterations < 1:
        raise InputError("binned-acceptance needs at least 1 acceptance pass (--iterations)")
    big_b = np.tile(bin_integrals(binning), (binning.n_groups, 1))  # (J, 4)

    def fit_at(theta_ref: NDArray) -> dict[str, Any]:
        c_ref = basis_coefficients(theta_ref)
        wa = a @ c_ref  # truth weights to θ_ref (unnormalised; the constant cancels)
        s1, s2 = _sums(idx_nom, n_bins, wa), _sums(idx_nom, n_bins, wa * wa)
        with np.errstate(divide="ignore", invalid="ignore"):
            acc = np.where(used, s1 / (big_b @ c_ref), 0.0)
            rel = np.where(used, s2 / s1**2, 0.0)
        m = acc[:, None] * big_b
        cov_m = m[:, :, None] * m[:, None, :] * rel[:, None, None]
        return _fit_used(n, w2, m, cov_m, group, used, start, weighted)

    out = fit_at(THETA0)
    history = [out["theta"].tolist()]
    for _ in range(iterations - 1):
        if not is_physical(out["theta"]):
            warns.append("theta is unphysical: the acceptance is not re-derived there")
            break
        theta_ref = out["theta"]
        out = fit_at(theta_ref)
        history.append(out["theta"].tolist())
    else:
        if iterations > 1:
            step = 0.1 * np.sqrt(np.diag(out["stat"]))
            jac = np.stack(
                [
                    (fit_at(theta_ref + e)["theta"] - fit_at(theta_ref - e)["theta"]) / (2 * e[k])
                    for k, e in enumerate(np.diag(step))
                ],
                axis=-1,
            )
            k_mat = np.linalg.inv(np.eye(3) - jac)
            for part in ("stat", "nominal"):
                out[part] = k_mat @ out[part] @ k_mat.T
    out["extra"] = {"acceptance_passes": history}
    return out
