r"""The proposal's fit: θ minimises the BCE of the frozen classifier, nominal vs data.

With s(x|θ) = log r(x|θ) the model's *normalised* log-ratio (for a moments model
log ĥ·c − log ā·c) and the classes balanced, the loss is

    F(θ) = Σ_i softplus(−s(x_i|θ)) + (N/M) Σ_j softplus(s(y_j|θ)),

data x_i labelled 1, nominal y_j labelled 0. Its population minimum is the true θ
only when r is normalised, E_0[r] = 1 (arXiv:1907.08209; arXiv:2305.10500).
``bce`` minimises F with MIGRAD; ``bce-adam`` with Adam over epochs
(arXiv:1412.6980), as the proposal did, recording θ per epoch (its Figure 3).

Errors: θ̂ is an M-estimator, Σ_i ψ1(x_i) + Σ_j ψ0(y_j) = 0 with ψ1 = −σ(−s)∇s and
ψ0 = (N/M) σ(s)∇s, so (sandwich; Huber 1967)

    V = H⁻¹ [N Cov(ψ1) + M Cov(ψ0)] H⁻¹,   H = ∇²F,

whose data and nominal terms are reported as ``stat`` and ``nominal``.

Weighted events (a ``weight`` column; negative weights allowed): the data sum becomes
Σ_i w_i softplus(−s(x_i|θ)) and the nominal factor W/M with W = Σ_i w_i. A data event
then enters the score as w_i (ψ1_i + ψ̄0) with ψ̄0 = (1/M) Σ_j σ(s_j)∇s_j (W carries the
event into the nominal term), so ``stat`` uses N Cov(w (ψ1 + ψ̄0)) — N Cov(ψ1) for w ≡ 1
(arXiv:1911.01303 for the weighted sandwich).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

from dyfit.data.events import EventTable
from dyfit.data.selection import event_weights
from dyfit.errors import DyfitWarning, InputError
from dyfit.fitting.evaluate import CHUNK, MomentsSample, ratio_sample
from dyfit.fitting.likelihood import (
    Objective,
    diagnose,
    hessian_inverse,
    minimise,
    start_point,
    valid_start,
    weight_summary,
)
from dyfit.fitting.oracle import check_physical_limit
from dyfit.fitting.result import FitResult
from dyfit.physics.angular import THETA_NAMES, basis_coefficients

__all__ = ["BCE", "fit_bce"]


class BCE(Objective):
    """F(θ), its gradient and (moments models) its Hessian; θ with shape (3,)."""

    def __init__(self, data: Any, nominal: Any, weights: NDArray | None = None) -> None:
        super().__init__(data, nominal, weights)
        self.w = self.sumw / len(nominal)

    def terms(self, theta: NDArray, grad: bool = True):
        """(s, ∇s) on data and on nominal (s alone without ``grad``); None if s is undefined."""
        d, n = self.data.log_ratio(theta, grad), self.nominal.log_ratio(theta, grad)
        s = (d[0], n[0]) if grad else (d, n)
        return (d, n) if all(np.all(np.isfinite(x)) for x in s) else None

    def compute(self, theta: NDArray, grad: bool) -> tuple[float | None, NDArray | None]:
        t = self.terms(theta, grad)
        if t is None:
            return None, None
        (sd, gd), (sn, gn) = t if grad else ((t[0], None), (t[1], None))
        wd = self.weights  # 1.0 unweighted: the sums below are then bit for bit unchanged
        value = float((wd * np.logaddexp(0, -sd)).sum() + self.w * np.logaddexp(0, sn).sum())
        if not grad:
            return value, None
        return value, -((wd * expit(-sd)) @ gd) + self.w * (expit(sn) @ gn)

    def analytic_hessian(self, theta: NDArray) -> NDArray | None:
        r"""∇²F for moments models, (3, 3), from ∇²s = −k kᵀ + A Aᵀ with k = ĥ'/ĥ·c, A = ā'/ā·c."""
        if not isinstance(self.data, MomentsSample):
            return None
        c = basis_coefficients(theta)
        abar = self.data.abar
        big_a = abar[1:] / (abar @ c)
        out = np.zeros((3, 3))
        samples = ((self.data, -1.0, 1.0, self.weights), (self.nominal, 1.0, self.w, 1.0))
        for sample, sign, weight, per_event in samples:
            s, g = sample.log_ratio(theta, grad=True)
            k = sample.h[:, 1:] / (sample.h @ c)[:, None]
            q = per_event * (expit(s) * expit(-s))
            # coefficient of ∇²s: −σ(−s) for data, σ(s) nominal
            alpha = per_event * (sign * expit(sign * s))
            out += weight * ((g * q[:, None]).T @ g - (k * alpha[:, None]).T @ k)
            out += weight * alpha.sum() * np.outer(big_a, big_a)
        return out

    def sandwich(self, theta: NDArray, h_inv: NDArray) -> dict[str, NDArray]:
        """The data and nominal parts of the sandwich covariance, each (3, 3)."""
        (sd, gd), (sn, gn) = self.terms(theta)
        psi1 = -expit(-sd)[:, None] * gd
        psi0 = self.w * expit(sn)[:, None] * gn
        if not np.isscalar(self.weights):  # weighted: the event's share of W too (docstring)
            psi1 = self.weights[:, None] * (psi1 + psi0.mean(0) / self.w)
        return {
            "stat": h_inv @ (len(sd) * np.cov(psi1, rowvar=False)) @ h_inv,
            "nominal": h_inv @ (len(sn) * np.cov(psi0, rowvar=False)) @ h_inv,
        }


def _adam(bce, prior, start, lr, epochs, lr_decay, tol, batch_size, rng):
    """Adam on θ alone (the model is frozen); returns θ, θ per epoch, loss per epoch, converged."""
    import torch

    theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=lr_decay)
    lo, hi = (torch.as_tensor(b) for b in prior.bounds.T)
    n_d, n_n = len(bce.data), len(bce.nominal)
    n_batches = 1 if batch_size is None else max(1, round(n_d / batch_size))
    history, losses, quiet = [], [], 0
    for _ in range(epochs):
        splits_d = np.array_split(rng.permutation(n_d), n_batches)
        splits_n = np.array_split(rng.permutation(n_n), n_batches)
        loss = 0.0
        for idx_d, idx_n in zip(splits_d, splits_n, strict=True):
            part = bce
            if n_batches > 1:
                w = None if np.isscalar(bce.weights) else bce.weights[idx_d]
                part = BCE(bce.data.subset(idx_d), bce.nominal.subset(idx_n), w)
            value, grad = part.value_and_grad(theta.detach().numpy())
            # The balanced mean BCE: log 2 where data and nominal cannot be told apart.
            loss += value / (2 * part.n * n_batches)
            theta.grad = torch.as_tensor(grad / (2 * part.n))
            opt.step()
            with torch.no_grad():
                theta.copy_(torch.clamp(theta, lo, hi))
        sched.step()
        history.append(theta.detach().numpy().copy())
        losses.append(loss)
        quiet = (
            quiet + 1 if len(history) > 1 and np.max(np.abs(history[-1] - history[-2])) < tol else 0
        )
        if quiet >= 5:
            break
    return history[-1], np.array(history), np.array(losses), quiet >= 5


def fit_bce(
    model: Any,
    data: EventTable,
    nominal: EventTable,
    *,
    method: str = "bce",
    start: ArrayLike | None = None,
    lr: float = 0.02,
    epochs: int = 1000,
    lr_decay: float = 0.99,
    tol: float = 1e-5,
    batch_size: int | None = None,
    seed: int = 0,
    drop_invalid: bool = False,
    chunk: int = CHUNK,
) -> FitResult:
    """Fit θ by minimising the balanced BCE of nominal (0) vs data (1).

    Arguments:
        method: "bce" (MIGRAD, deterministic) or "bce-adam" (Adam over epochs).
        lr, epochs, lr_decay, tol: Adam's step size, its epoch limit, the factor lr is
            multiplied by after each epoch, and the largest |Δθ| per epoch that counts as
            no change (five such epochs in a row end the fit).
        batch_size: Data events per Adam step (the nominal split alike); None: full batch.
        seed: Seeds the minibatch shuffling.

    Other arguments as in :func:`~dyfit.fitting.likelihood.fit_likelihood`.
    """
    if method not in ("bce", "bce-adam"):
        raise InputError(f"unknown BCE fit method {method!r}; use bce or bce-adam")
    t0 = time.perf_counter()
    weights = event_weights(data, model.feature_names, drop_invalid)
    d, n_bad = ratio_sample(model, data, "data", drop_invalid, chunk)
    nom, _ = ratio_sample(model, nominal, "nominal sample", drop_invalid, chunk)
    t1 = time.perf_counter()
    bce = BCE(d, nom, weights)
    prior = model.prior
    history = losses = None
    if method == "bce":
        m, notes = minimise(bce, prior, start_point(prior, start))
        theta, converged = np.array(m.values), m.valid
        h_inv = hessian_inverse(m, bce.analytic_hessian(theta))
    else:
        first, notes = valid_start(bce, prior, start_point(prior, start))
        theta, history, losses, converged = _adam(
            bce,
            prior,
            first,
            lr,
            epochs,
            lr_decay,
            tol,
            batch_size,
            np.random.default_rng(seed),
        )
        notes += diagnose(theta, prior, bce)
        if not converged:
            notes.append(f"Adam did not settle to |dtheta| < {tol:g} within {len(history)} epochs")
        from iminuit import Minuit

        # HESSE at Adam's end point where there is no analytic Hessian (networks).
        m = Minuit(bce, theta, grad=bce.grad, name=THETA_NAMES)
        m.limits = [tuple(b) for b in prior.bounds]
        h_inv = hessian_inverse(m, bce.analytic_hessian(theta))
    covariance = {} if h_inv is None else bce.sandwich(theta, h_inv)
    if h_inv is None:
        notes.append("the BCE Hessian is not positive definite at the minimum; no errors")
    if n_bad:
        notes.append(f"dropped {n_bad} data event(s) with NaN or inf")
    result = FitResult(
        method=method,
        n_events=len(d),
        values=theta,
        converged=bool(converged and h_inv is not None),
        covariance=covariance,
        n_nominal=len(nom),
        fit_time_s=time.perf_counter() - t1,
        warnings=notes,
        history=history,
        loss_history=losses,
        extra={"loss": bce(theta) / (2 * len(d)), "prepare_time_s": t1 - t0}
        | weight_summary(weights),
    )
    check_physical_limit(result, nominal)
    for note in result.warnings:
        warnings.warn(note, DyfitWarning, stacklevel=2)
    return result
