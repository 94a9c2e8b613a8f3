r"""Fitting θ through a frozen conditional VAE: θ is the only trainable input.

The loss is the mean negative bound on log p(x|θ) of the data,

    L(θ) = −(1/W) Σ_i w_i b(x_i, θ),   W = Σ_i w_i   (w_i = 1 without a ``weight`` column),

with b the ELBO (K = 1) or the importance-weighted bound with K samples
(:meth:`~dyfit.networks.cvae.CVAE.log_bound`; arXiv:1312.6114, arXiv:1509.00519). The
encoder noise is drawn once per fit, so L is a deterministic, smooth function of θ:
MIGRAD minimises it with the autograd gradient, or Adam steps θ over epochs as the
proposal did (its Figure 5, with ``history``). The model runs in float64 here: a sum
over 10⁴ events in float32 jitters by more than MIGRAD's tolerance.

Errors. θ̂ solves Σ_i w_i s_i(θ̂) = 0 with s_i = ∇_θ b(x_i, θ), an M-estimator, so

    V = H⁻¹ (Σ_i w_i² s_i s_iᵀ) H⁻¹,   H = ∇²[W L](θ̂)   (sandwich; Huber 1967),

reported as ``stat``. The curvature alone, H⁻¹, is right only where b is the true
log-likelihood (the information equality); the ELBO is not, and the fixed encoder noise
adds variance the curvature does not see but the spread of s_i does. Both are returned
(``extra["errors_hessian"]``); the Gaussian example measures which one covers.

An optional ``correction`` (a DCTR reweighter, :mod:`dyfit.training.dctr`) adds its
log-ratio log p_sim/p_gen(x|θ) to b: the fit then uses the reweighted generator.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from dyfit.data.events import EventTable
from dyfit.data.io import check_finite
from dyfit.errors import DyfitWarning, InputError
from dyfit.fitting.result import FitResult
from dyfit.physics.angular import THETA0, THETA_NAMES

__all__ = ["CVAEObjective", "ConditionFit", "fit_conditions", "fit_cvae"]

CHUNK = 8192  # events per network pass: bounds memory of the double backward


class CVAEObjective:
    r"""W·L(θ) (module docstring) on fixed events and fixed encoder noise.

    Arguments:
        model: A trained :class:`~dyfit.networks.cvae.CVAE` (copied to float64, eval mode).
        x: Raw events, (N, F).
        weights: Per-event weights (N,), or None.
        k: Importance samples per event (1: the ELBO).
        seed: Seeds the encoder noise (N, K, L).
        correction: A module with ``log_ratio(x (N, F), c (N, D)) -> (N,)``, or None.
    """

    errordef = 0.5

    def __init__(
        self,
        model,
        x: NDArray,
        weights: NDArray | None = None,
        k: int = 1,
        seed: int = 0,
        correction: Any = None,
    ) -> None:
        self.model = copy.deepcopy(model).double().eval().requires_grad_(False)
        self.correction = None
        if correction is not None:
            self.correction = copy.deepcopy(correction).double().eval().requires_grad_(False)
        self.x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        self.n = len(self.x)
        self.w = (
            torch.ones(self.n, dtype=torch.float64)
            if weights is None
            else torch.as_tensor(np.asarray(weights, dtype=np.float64))
        )
        gen = torch.Generator().manual_seed(seed)
        self.noise = torch.randn(self.n, k, model.latent_dim, generator=gen, dtype=torch.float64)
        self.k = k
        self._cache: dict[str, Any] = {}

    def _bound(self, sl: slice, c: torch.Tensor) -> torch.Tensor:
        b = self.model.log_bound(self.x[sl], c, self.noise[sl])
        if self.correction is not None:
            b = b + self.correction.log_ratio(self.x[sl], c)
        return b

    def _leaf(self, theta: NDArray, n: int) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(theta, dtype=np.float64))
        return t.expand(n, -1).clone().requires_grad_(True)  # one θ copy per event: per-event ∇

    def bounds(self, theta: NDArray, scores: bool = False) -> tuple[NDArray, NDArray | None]:
        """b(x_i, θ) (N,) and, with ``scores``, s_i = ∇_θ b(x_i, θ) (N, D)."""
        values, grads = [], []
        for s in range(0, self.n, CHUNK):
            sl = slice(s, s + CHUNK)
            c = self._leaf(theta, len(self.x[sl]))
            with torch.set_grad_enabled(scores):
                b = self._bound(sl, c)
                if scores:
                    (g,) = torch.autograd.grad(b.sum(), c)
                    grads.append(g.numpy())
            values.append(b.detach().numpy())
        return np.concatenate(values), (np.concatenate(grads) if scores else None)

    def value_and_grad(self, theta: NDArray) -> tuple[float, NDArray]:
        key = np.asarray(theta, dtype=np.float64).tobytes()
        if self._cache.get("key") != key:
            b, s = self.bounds(theta, scores=True)
            w = self.w.numpy()
            if not np.all(np.isfinite(b)):
                raise InputError(
                    f"{int(np.sum(~np.isfinite(b)))} events give a non-finite cVAE bound "
                    "(e.g. mass or pT <= 0, |costh| >= 1); select events inside the model's range"
                )
            self._cache = {"key": key, "value": float(-(w @ b)), "grad": -(w @ s)}
        return self._cache["value"], self._cache["grad"]

    def __call__(self, theta: NDArray) -> float:
        return self.value_and_grad(theta)[0]

    def grad(self, theta: NDArray) -> NDArray:
        return self.value_and_grad(theta)[1]

    def curvature(self, theta: NDArray) -> NDArray:
        """∇²(W·L) at θ, (D, D), by double autograd (not named ``hessian``: iminuit would
        take a ``hessian`` attribute of the cost function as its own Hessian protocol)."""
        d = len(np.atleast_1d(theta))
        h = np.zeros((d, d))
        for s in range(0, self.n, CHUNK):
            sl = slice(s, s + CHUNK)
            c = self._leaf(theta, len(self.x[sl]))
            b = self._bound(sl, c)
            (g,) = torch.autograd.grad(-(self.w[sl] * b).sum(), c, create_graph=True)
            for j in range(d):
                (row,) = torch.autograd.grad(g[:, j].sum(), c, retain_graph=j < d - 1)
                h[j] += row.sum(0).numpy()
        return 0.5 * (h + h.T)

    def covariances(self, theta: NDArray) -> tuple[NDArray | None, NDArray | None]:
        """(sandwich V, H⁻¹) at θ, each (D, D); None where H is not positive definite."""
        h = self.curvature(theta)
        try:
            np.linalg.cholesky(h)
        except np.linalg.LinAlgError:
            return None, None
        h_inv = np.linalg.inv(h)
        _, s = self.bounds(theta, scores=True)
        ws = s * self.w.numpy()[:, None]
        return h_inv @ (ws.T @ ws) @ h_inv, h_inv


@dataclass
class ConditionFit:
    """θ̂ (D,), its sandwich and curvature covariances (D, D), convergence and Adam history."""

    values: NDArray[np.float64]
    covariance: NDArray[np.float64] | None
    covariance_hessian: NDArray[np.float64] | None
    converged: bool
    loss: float
    fit_time_s: float
    history: NDArray[np.float64] | None = None
    loss_history: NDArray[np.float64] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> NDArray[np.float64] | None:
        return None if self.covariance is None else np.sqrt(np.diag(self.covariance))


def _adam(objective, bounds, start, lr, epochs, lr_decay, tol):
    """Full-batch Adam on θ (arXiv:1412.6980), clamped to the box; θ and loss per epoch."""
    theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=lr_decay)
    lo, hi = torch.as_tensor(bounds[:, 0]), torch.as_tensor(bounds[:, 1])
    wsum = float(objective.w.sum())
    history, losses, quiet = [], [], 0
    for _ in range(epochs):
        value, grad = objective.value_and_grad(theta.detach().numpy())
        theta.grad = torch.as_tensor(grad / wsum)
        opt.step()
        sched.step()
        with torch.no_grad():
            theta.copy_(torch.clamp(theta, lo, hi))
        history.append(theta.detach().numpy().copy())
        losses.append(value / wsum)
        moved = len(history) > 1 and np.max(np.abs(history[-1] - history[-2])) >= tol
        quiet = 0 if moved or len(history) == 1 else quiet + 1
        if quiet >= 5:
            break
    return history[-1], np.array(history), np.array(losses), quiet >= 5


def fit_conditions(
    model,
    x: NDArray,
    *,
    weights: NDArray | None = None,
    optimiser: str = "migrad",
    start: ArrayLike | None = None,
    k: int = 1,
    seed: int = 0,
    lr: float = 0.02,
    epochs: int = 1000,
    lr_decay: float = 0.995,
    tol: float = 1e-5,
    correction: Any = None,
) -> ConditionFit:
    """Fit the conditions (D,) of a cVAE to raw events x (N, F); see the module docstring."""
    if optimiser not in ("migrad", "adam"):
        raise InputError(f"unknown cVAE optimiser {optimiser!r}; use migrad or adam")
    objective = CVAEObjective(model, x, weights, k, seed, correction)
    bounds = model.bounds
    if start is None:
        inside = model.condition_names == THETA_NAMES and np.all(
            (THETA0 >= bounds[:, 0]) & (THETA0 <= bounds[:, 1])
        )
        start = THETA0 if inside else bounds.mean(1)
    start = np.asarray(start, dtype=np.float64)
    if start.shape != (len(bounds),) or np.any((start < bounds[:, 0]) | (start > bounds[:, 1])):
        raise InputError(f"start {start.tolist()} is outside the cVAE's box {bounds.tolist()}")
    t0 = time.perf_counter()
    notes: list[str] = []
    history = losses = None
    if optimiser == "migrad":
        from iminuit import Minuit

        m = Minuit(objective, start, grad=objective.grad, name=list(model.condition_names))
        m.limits = [tuple(b) for b in bounds]
        m.errors = np.minimum(0.05 * np.diff(bounds, axis=1)[:, 0], 3 / np.sqrt(objective.n))
        m.migrad()
        theta, converged = np.array(m.values), bool(m.valid)
    else:
        theta, history, losses, converged = _adam(
            objective, bounds, start, lr, epochs, lr_decay, tol
        )
        if not converged:
            notes.append(f"Adam did not settle to |dtheta| < {tol:g} within {len(history)} epochs")
    near = np.min(np.abs(theta[:, None] - bounds), axis=1) < 1e-3 * np.diff(bounds, axis=1)[:, 0]
    if np.any(near):
        notes.append("minimum on the cVAE's training box boundary; the box may be too small")
    v, v_hess = objective.covariances(theta)
    if v is None:
        notes.append("the cVAE loss is not convex at the minimum; no errors")
    return ConditionFit(
        theta,
        v,
        v_hess,
        bool(converged and v is not None),
        objective(theta) / float(objective.w.sum()),
        time.perf_counter() - t0,
        history,
        losses,
        notes,
    )


def fit_cvae(
    model,
    data: EventTable,
    *,
    optimiser: str = "migrad",
    drop_invalid: bool = False,
    start: ArrayLike | None = None,
    k: int = 1,
    seed: int = 0,
    lr: float = 0.02,
    epochs: int = 1000,
    correction: Any = None,
) -> FitResult:
    """Fit θ = (λ, μ, ν) with a frozen cVAE (method "cvae"); errors: the sandwich ``stat``.

    Arguments:
        model: A :class:`~dyfit.networks.cvae.CVAE` conditioned on (λ, μ, ν).
        data: The events, with the model's feature columns (and optionally ``weight``).
        optimiser: "migrad" (deterministic, fast) or "adam" (θ per epoch in ``history``).
        k: Importance samples per event; 1 is the ELBO.
        seed: Seeds the encoder noise, fixed for the whole fit.
        lr, epochs: Adam's step size and epoch limit.
        correction: A DCTR reweighter (:func:`dyfit.training.dctr.train_dctr`), or None.

    Example:
        >>> result = fit_cvae(load_model("run-cvae"), data)  # doctest: +SKIP
    """
    from dyfit.networks.cvae import CVAE

    if not isinstance(model, CVAE) or model.condition_names != THETA_NAMES:
        raise InputError("method cvae needs a cVAE conditioned on (lambda, mu, nu) as --model")
    n_in = len(data)
    data = check_finite(
        data,
        model.feature_names + (("weight",) if "weight" in data else ()),
        drop_invalid=drop_invalid,
    )
    weights = data["weight"] if "weight" in data else None
    fit = fit_conditions(
        model,
        data.matrix(model.feature_names),
        weights=weights,
        optimiser=optimiser,
        start=start,
        k=k,
        seed=seed,
        lr=lr,
        epochs=epochs,
        correction=correction,
    )
    notes = list(fit.notes)
    if n_in > len(data):
        notes.append(f"dropped {n_in - len(data)} data event(s) with NaN or inf")
    hess_err = None if fit.covariance_hessian is None else np.sqrt(np.diag(fit.covariance_hessian))
    result = FitResult(
        method="cvae",
        n_events=len(data),
        values=fit.values,
        converged=fit.converged,
        covariance={} if fit.covariance is None else {"stat": fit.covariance},
        fit_time_s=fit.fit_time_s,
        warnings=notes,
        history=fit.history,
        loss_history=fit.loss_history,
        extra={
            "loss": fit.loss,
            "optimiser": optimiser,
            "k": k,
            "dctr": correction is not None,
            "errors_hessian": None if hess_err is None else hess_err.tolist(),
        },
    )
    for note in notes:
        warnings.warn(note, DyfitWarning, stacklevel=2)
    return result
