r"""The unbinned likelihood fit of θ with a frozen ratio model, and errors that are right.

With p(x|θ) = p(x|θ0) r(x|θ) / E_0[r(·|θ)] and the expectation taken over a nominal
sample {y_j} of size M, the negative log-likelihood of N data events is

    NLL(θ) = −Σ_i log r(x_i|θ) + N log m0(θ),   m0 = (1/M) Σ_j r(y_j|θ),

minimised with MIGRAD (analytic gradient) inside the model's prior box. For a
moments model NLL = −Σ log(ĥ_i·c) + N log(Ḡ·c): the model's own ā cancels.

Errors. ``stat`` is the inverse Hessian (analytic for moments models, HESSE for
networks). ``nominal`` propagates the finite nominal sample, which the Hessian does not
see (an M-estimator argument; Huber 1967): θ̂ solves the score equation

    S(θ; m) = −Σ_i ∇log r(x_i|θ) + N m1/m0 = 0,   m1 = (1/M) Σ_j ∇r(y_j|θ),

so a fluctuation δm of the nominal means u_j = (r_j, ∇r_j), with covariance
Cov(u)/M, moves θ̂ by dθ̂ = −H⁻¹ B δm with B = ∂S/∂m = (N/m0) [−m1/m0 | 1₃]:

    V_nominal = H⁻¹ B (Cov(u)/M) Bᵀ H⁻¹,

independent of the data and added to V_stat. ``training``: the covariance of θ̂ over an
ensemble of models fitted to the same events.

Weighted events (a ``weight`` column, negative weights allowed): the NLL becomes
−Σ_i w_i log r(x_i|θ) + W log m0(θ) with W = Σ_i w_i, and the Hessian alone no longer
gives the errors; ``stat`` is the sandwich (Huber 1967; for weighted likelihoods e.g.
arXiv:1911.01303)

    V_stat = H⁻¹ (Σ_i w_i² g_i g_iᵀ) H⁻¹,   g_i = −∇log r(x_i|θ̂) + m1/m0,

which is H⁻¹ again for w ≡ 1 as N grows (Σ g gᵀ → H); ``nominal`` as above with N → W.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.data.events import EventTable
from dyfit.data.selection import event_weights
from dyfit.errors import DyfitWarning, InputError
from dyfit.fitting.evaluate import CHUNK, MomentsSample, ratio_sample
from dyfit.fitting.oracle import check_physical_limit
from dyfit.fitting.result import FitResult
from dyfit.physics.angular import THETA0, THETA_NAMES, as_theta, basis_coefficients, is_physical
from dyfit.physics.prior import ThetaPrior

__all__ = [
    "Objective",
    "NLL",
    "fit_likelihood",
    "minimise",
    "diagnose",
    "start_point",
    "valid_start",
    "nominal_covariance",
    "hessian_inverse",
    "weighted_covariance",
    "weight_summary",
]

# Returned where the model's ratio is ≤ 0 for some event: MIGRAD backs off from it.
INVALID = 1e15


class Objective:
    """A loss of θ (3,) on a data and a nominal sample; value and gradient from one pass."""

    errordef = 0.5  # both losses are negative log-likelihoods up to constants

    def __init__(self, data: Any, nominal: Any, weights: NDArray | None = None) -> None:
        self.data, self.nominal = data, nominal
        self.n = len(data)
        # Unweighted: the scalar 1.0 and W = N leave every sum exactly as it was.
        self.weights = 1.0 if weights is None else np.asarray(weights, dtype=np.float64)
        self.sumw = self.n if weights is None else float(self.weights.sum())
        self.n_invalid = 0
        self._cache: dict[str, Any] = {}

    def compute(self, theta: NDArray, grad: bool) -> tuple[float | None, NDArray | None]:
        """The loss (None where the model's ratio is undefined) and, if ``grad``, ∇loss."""
        raise NotImplementedError

    def value_and_grad(self, theta: NDArray, grad: bool = True) -> tuple[float, NDArray | None]:
        # MIGRAD asks for the value and the gradient at the same θ: one network pass for both.
        key = np.asarray(theta, dtype=np.float64).tobytes()
        if self._cache.get("key") == key and (self._cache["grad"] is not None or not grad):
            return self._cache["value"], self._cache["grad"]
        value, gradient = self.compute(theta, grad)
        if value is None:
            self.n_invalid += 1
            value, gradient = INVALID, (np.zeros(3) if grad else None)
        self._cache = {"key": key, "value": value, "grad": gradient}
        return value, gradient

    def __call__(self, theta: NDArray) -> float:
        return self.value_and_grad(theta, grad=False)[0]

    def grad(self, theta: NDArray) -> NDArray:
        return self.value_and_grad(theta)[1]


class NLL(Objective):
    """−Σ_i log r(x_i|θ) + N log m0(θ) (module docstring), its gradient and errors."""

    def compute(self, theta: NDArray, grad: bool) -> tuple[float | None, NDArray | None]:
        if grad:
            lr, g = self.data.log_ratio(theta, grad=True)
            r, dr = self.nominal.ratio(theta, grad=True)
        else:
            lr, r = self.data.log_ratio(theta), self.nominal.ratio(theta)
        m0 = r.mean()
        if not (np.all(np.isfinite(lr)) and m0 > 0):
            return None, None
        value = float(-(self.weights * lr).sum() + self.sumw * np.log(m0))
        if not grad:
            return value, None
        return value, -(np.reshape(self.weights, (-1, 1)) * g).sum(0) + self.sumw * dr.mean(0) / m0

    def analytic_hessian(self, theta: NDArray) -> NDArray | None:
        """The analytic Hessian, (3, 3), for moments samples; None for networks."""
        if not isinstance(self.data, MomentsSample):
            return None
        c = basis_coefficients(theta)
        hp = self.data.h[:, 1:] / (self.data.h @ c)[:, None]
        gbar = self.nominal.h.mean(0)
        # hp.T @ hp itself when unweighted: NumPy's symmetric product, bit for bit as before
        hpw = hp if np.isscalar(self.weights) else self.weights[:, None] * hp
        return hpw.T @ hp - self.sumw * np.outer(gbar[1:], gbar[1:]) / (gbar @ c) ** 2

    def nominal_covariance(self, theta: NDArray, h_inv: NDArray) -> NDArray:
        """V_nominal, (3, 3), at θ̂ given H⁻¹ (see the module docstring)."""
        r, dr = self.nominal.ratio(theta, grad=True)
        return nominal_covariance(np.column_stack([r, dr]), self.sumw, h_inv)

    def sandwich(self, theta: NDArray, h_inv: NDArray) -> NDArray:
        """V_stat of a weighted fit, H⁻¹ (Σ w² g gᵀ) H⁻¹, (3, 3) (see the module docstring)."""
        _, g = self.data.log_ratio(theta, grad=True)
        r, dr = self.nominal.ratio(theta, grad=True)
        return weighted_covariance(dr.mean(0) / r.mean() - g, self.weights, h_inv)


def weighted_covariance(scores: NDArray, weights: NDArray, h_inv: NDArray) -> NDArray:
    """H⁻¹ (Σ_i w_i² s_i s_iᵀ) H⁻¹ for per-event scores s (N, 3) and weights w (N,)."""
    meat = (scores * (weights**2)[:, None]).T @ scores
    return h_inv @ meat @ h_inv


def nominal_covariance(u: NDArray, n: float, h_inv: NDArray) -> NDArray:
    """H⁻¹ B (Cov(u)/M) Bᵀ H⁻¹ for nominal means u_j = (r_j, ∇r_j) with shape (M, 4); n = W."""
    m0, m1 = u[:, 0].mean(), u[:, 1:].mean(0)
    b = (n / m0) * np.hstack([-m1[:, None] / m0, np.eye(3)])
    j = h_inv @ b
    return j @ (np.cov(u, rowvar=False) / u.shape[0]) @ j.T


def weight_summary(weights: NDArray | None) -> dict[str, float]:
    """Σw, Σw² and the effective events (Σw)²/Σw² of a weighted fit, for ``result.extra``."""
    if weights is None:
        return {}
    sumw, sumw2 = float(weights.sum()), float(np.sum(weights**2))
    return {"sum_weights": sumw, "sum_weights2": sumw2, "n_effective": sumw**2 / sumw2}


def start_point(prior: ThetaPrior, start: ArrayLike | None) -> NDArray[np.float64]:
    """The start θ: ``start`` if inside the prior, else θ0 or the box centre."""
    if start is not None:
        t = as_theta(start)
        if t.shape != (3,) or not prior.contains(t):
            raise InputError(
                f"start theta {np.round(t, 6).tolist()} is outside the model's prior "
                f"({prior.describe()}); choose a start inside it"
            )
        return t
    return THETA0.copy() if prior.contains(THETA0) else prior.bounds.mean(1)


def valid_start(objective: Any, prior: ThetaPrior, start: NDArray) -> tuple[NDArray, list[str]]:
    """``start``, or the box centre where the model's ratio is ≤ 0 at ``start``; and a note."""
    if objective(start) < INVALID:
        return start, []
    centre = prior.bounds.mean(1)
    if objective(centre) >= INVALID:
        raise InputError(
            "the model's ratio is <= 0 for some events at the start theta and at the prior "
            "centre; the model cannot describe these events (check features and prior)"
        )
    return centre, ["the ratio was <= 0 for some events at the start; started at the box centre"]


def minimise(objective: Any, prior: ThetaPrior, start: NDArray, minos: bool = False):
    """MIGRAD on ``objective`` inside the prior box; returns (Minuit, warnings list)."""
    from iminuit import Minuit

    start, notes = valid_start(objective, prior, start)
    width = np.diff(prior.bounds, axis=1)[:, 0]
    m = Minuit(objective, start, grad=objective.grad, name=THETA_NAMES)
    m.limits = [tuple(b) for b in prior.bounds]
    m.errors = np.minimum(0.05 * width, 3.0 / np.sqrt(max(objective.n, 1)))
    m.migrad()
    if minos and m.valid:
        m.minos()
    return m, notes + diagnose(np.array(m.values), prior, objective)


def diagnose(theta: NDArray, prior: ThetaPrior, objective: Any) -> list[str]:
    """Warnings on a fitted θ: on the prior boundary, unphysical, invalid trial points."""
    notes = []
    width = np.diff(prior.bounds, axis=1)[:, 0]
    near = np.min(np.abs(theta[:, None] - prior.bounds), axis=1) < 1e-3 * width
    if np.any(near):
        names = ", ".join(n for n, b in zip(THETA_NAMES, near, strict=True) if b)
        notes.append(f"minimum on the prior boundary in {names}; the box may be too small")
    if not is_physical(theta):
        notes.append("the angular density at the fitted theta is negative somewhere")
    if objective.n_invalid:
        notes.append(
            f"the model's ratio was <= 0 for some events at {objective.n_invalid} trial theta; "
            "treated as excluded (large loss)"
        )
    return notes


def hessian_inverse(m: Any, hessian: NDArray | None) -> NDArray | None:
    """Inverse Hessian: analytic where given, else HESSE; None if not positive definite."""
    if hessian is None:
        m.hesse()
        return np.array(m.covariance) if m.accurate else None
    try:
        np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return None
    return np.linalg.inv(hessian)


def _fit_once(model, data, nominal, start, minos, drop_invalid, chunk) -> FitResult:
    t0 = time.perf_counter()
    weights = event_weights(data, model.feature_names, drop_invalid)
    if weights is not None and minos:
        raise InputError("MINOS intervals assume unit weights; drop --minos for weighted events")
    d, n_bad = ratio_sample(model, data, "data", drop_invalid, chunk)
    nom, _ = ratio_sample(model, nominal, "nominal sample", drop_invalid, chunk)
    t1 = time.perf_counter()
    nll = NLL(d, nom, weights)
    m, notes = minimise(nll, model.prior, start_point(model.prior, start), minos)
    theta = np.array(m.values)
    v_stat = hessian_inverse(m, nll.analytic_hessian(theta))
    covariance = {}
    if v_stat is None:
        notes.append("the Hessian is not positive definite at the minimum; no errors")
    else:
        covariance = {"stat": v_stat, "nominal": nll.nominal_covariance(theta, v_stat)}
        if weights is not None:
            covariance["stat"] = nll.sandwich(theta, v_stat)
    if n_bad:
        notes.append(f"dropped {n_bad} data event(s) with NaN or inf")
    return FitResult(
        method="likelihood",
        n_events=len(d),
        values=theta,
        converged=bool(m.valid and v_stat is not None),
        covariance=covariance,
        n_nominal=len(nom),
        fit_time_s=time.perf_counter() - t1,
        minos=(
            {n: (m.merrors[n].lower, m.merrors[n].upper) for n in THETA_NAMES}
            if minos and m.merrors
            else None
        ),
        warnings=notes,
        extra={"nll": float(m.fval), "edm": float(m.fmin.edm), "prepare_time_s": t1 - t0}
        | weight_summary(weights),
    )


def fit_likelihood(
    model: Any,
    data: EventTable,
    nominal: EventTable,
    *,
    start: ArrayLike | None = None,
    minos: bool = False,
    ensemble: Sequence[Any] = (),
    drop_invalid: bool = False,
    chunk: int = CHUNK,
) -> FitResult:
    """Fit θ by minimising the NLL; errors: stat (Hessian) + nominal (+ training).

    Arguments:
        model: A ratio model (``feature_names``, ``prior``, ``kind``, ``log_ratio``).
        data: The measured events, with the model's feature columns; a ``weight`` column
            makes the fit weighted (sandwich ``stat`` errors, Σw etc. in ``result.extra``).
        nominal: Events simulated at θ0 = (1, 0, 0) that normalise the ratio.
        start: The start θ with shape (3,); default θ0 (the box centre if θ0 is outside).
        minos: Also run MINOS (asymmetric statistical errors, in ``result.minos``);
            unweighted events only.
        ensemble: Further models trained alike; their θ̂ spread gives the ``training`` part.
        drop_invalid: Drop events with NaN/inf features instead of raising InputError.

    Example:
        >>> result = fit_likelihood(TruthRatio(), data, nominal)  # doctest: +SKIP
    """
    result = _fit_once(model, data, nominal, start, minos, drop_invalid, chunk)
    if ensemble:
        others = [_fit_once(m, data, nominal, start, False, drop_invalid, chunk) for m in ensemble]
        values = np.array([result.values] + [r.values for r in others])
        result.covariance["training"] = np.cov(values, rowvar=False)
        result.extra["ensemble_values"] = values.tolist()
    check_physical_limit(result, nominal)
    for note in result.warnings:
        warnings.warn(note, DyfitWarning, stacklevel=2)
    return result
