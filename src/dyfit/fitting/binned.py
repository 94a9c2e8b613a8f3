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

Each method maximises the Poisson likelihood with s_m profiled, by Newton's method
(:func:`~dyfit.fitting.poisson.profile_fit`, which also gives the ``stat`` and
``nominal`` covariances). Bins with fewer than ``min_nominal`` nominal events
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
from dyfit.fitting.binning import Binning, bin_integrals, bin_sums, parse_bins
from dyfit.fitting.poisson import profile_fit
from dyfit.fitting.result import FitResult
from dyfit.physics.angular import THETA0, angular_basis, as_theta, basis_coefficients, is_physical

__all__ = ["Binning", "parse_bins", "bin_integrals", "fit_binned"]


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
    n, w2 = bin_sums(idx, n_bins, w), bin_sums(idx, n_bins, w * w)
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
            m = bin_sums(idx_nom, n_bins, a)
            cov_m = bin_sums(idx_nom, n_bins, a[:, :, None] * a[:, None, :])
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
    if dense.size < 4 + dense.max(initial=0):  # θ and one normalisation per kinematic bin
        raise InputError(
            f"only {dense.size} bins hold enough nominal events for a binned fit; "
            "give a larger nominal sample or coarser --bins"
        )
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
        s1, s2 = bin_sums(idx_nom, n_bins, wa), bin_sums(idx_nom, n_bins, wa * wa)
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
