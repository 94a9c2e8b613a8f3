r"""The loss around the fitted θ: 1-D scans (the proposal's Figure 2) and 2-D contours.

A scan moves one parameter (or a pair) over a grid with the others held at θ̂, or
profiled (minimised again at each point). For the NLL, ΔNLL = 0.5 marks ±1σ in one
dimension, and ΔNLL = 1.15 and 3.09 the 68.3 % and 95.4 % regions of a pair (half the
χ² quantiles with two degrees of freedom). The BCE is shown as the balanced mean loss
per event, ``F / 2N``, as the proposal plots it; its Δ has no probability meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.data.events import EventTable
from dyfit.data.selection import event_weights
from dyfit.errors import InputError
from dyfit.fitting.bce import BCE
from dyfit.fitting.evaluate import ratio_sample
from dyfit.fitting.likelihood import INVALID, NLL
from dyfit.physics.angular import THETA_NAMES
from dyfit.physics.prior import ThetaPrior

__all__ = ["LOSSES", "LEVELS_2D", "Scan1D", "Scan2D", "loss_objective", "scan_1d", "scan_2d"]

LOSSES = ("nll", "bce")
LEVELS_2D = {"68.3%": 1.15, "95.4%": 3.09}


@dataclass
class Scan1D:
    """Δloss with shape (n,) over ``grid`` (n,) in ``parameter``, through θ̂ (3,)."""

    parameter: str
    grid: NDArray[np.float64]
    delta: NDArray[np.float64]
    theta_hat: NDArray[np.float64]
    loss: str
    profiled: bool
    minimum: float = 0.0  # the loss at θ̂, in the units of ``delta``


@dataclass
class Scan2D:
    """Δloss with shape (ny, nx) over ``x`` (nx,) and ``y`` (ny,) in ``parameters``."""

    parameters: tuple[str, str]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    delta: NDArray[np.float64]
    theta_hat: NDArray[np.float64]
    loss: str
    profiled: bool


def loss_objective(
    model: Any, data: EventTable, nominal: EventTable, loss: str = "nll", drop_invalid: bool = False
) -> NLL | BCE:
    """The NLL or BCE objective of ``model`` on the events (one network pass for moments)."""
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; use nll or bce")
    weights = event_weights(data, model.feature_names, drop_invalid)  # None: unweighted
    d, _ = ratio_sample(model, data, "data", drop_invalid)
    nom, _ = ratio_sample(model, nominal, "nominal sample", drop_invalid)
    return NLL(d, nom, weights) if loss == "nll" else BCE(d, nom, weights)


def _index(name: str) -> int:
    if name not in THETA_NAMES:
        raise InputError(f"unknown parameter {name!r}; use one of {', '.join(THETA_NAMES)}")
    return THETA_NAMES.index(name)


def _span(
    i: int, theta_hat: NDArray, errors: NDArray | None, prior: ThetaPrior, span: ArrayLike | None
) -> tuple[float, float]:
    """The scan range: ``span``, else θ̂ ± 3σ, else the prior box; clipped to the box."""
    lo, hi = prior.bounds[i]
    if span is not None:
        a, b = span
    elif errors is not None and np.isfinite(errors[i]) and errors[i] > 0:
        a, b = theta_hat[i] - 3 * errors[i], theta_hat[i] + 3 * errors[i]
    else:
        a, b = lo, hi
    return max(a, lo), min(b, hi)


def _value(objective: Any, theta: NDArray, fixed: list[int], prior: ThetaPrior, profile: bool):
    """The loss at θ, with the parameters not in ``fixed`` minimised again if ``profile``."""
    if not profile:
        value = objective(theta)
        return (np.nan if value >= INVALID else value), theta
    from iminuit import Minuit

    m = Minuit(objective, theta, grad=objective.grad, name=THETA_NAMES)
    m.limits = [tuple(b) for b in prior.bounds]
    for i in fixed:
        m.fixed[i] = True
    m.migrad()
    return (np.nan if m.fval >= INVALID else m.fval), np.array(m.values)


def _scale(objective: Any) -> float:
    # The BCE is shown per event and class, F / 2N; the NLL as it is.
    return 1.0 / (2 * objective.n) if isinstance(objective, BCE) else 1.0


def scan_1d(
    objective: NLL | BCE,
    theta_hat: ArrayLike,
    parameter: str,
    prior: ThetaPrior,
    errors: ArrayLike | None = None,
    span: tuple[float, float] | None = None,
    n_points: int = 41,
    profile: bool = False,
) -> Scan1D:
    """Δloss along ``parameter`` through θ̂ (others fixed at θ̂, or profiled)."""
    i = _index(parameter)
    theta_hat = np.asarray(theta_hat, dtype=np.float64)
    grid = np.linspace(*_span(i, theta_hat, errors, prior, span), n_points)
    values, start = [], theta_hat.copy()
    for v in grid:
        start[i] = v
        value, best = _value(objective, start, [i], prior, profile)
        values.append(value)
        start = best.copy()  # a warm start for the next profiled point
    scale, minimum = _scale(objective), objective(theta_hat)
    return Scan1D(
        parameter,
        grid,
        (np.array(values) - minimum) * scale,
        theta_hat,
        "bce" if isinstance(objective, BCE) else "nll",
        profile,
        minimum * scale,
    )


def scan_2d(
    objective: NLL | BCE,
    theta_hat: ArrayLike,
    parameters: tuple[str, str],
    prior: ThetaPrior,
    errors: ArrayLike | None = None,
    n_points: int = 31,
    profile: bool = False,
) -> Scan2D:
    """Δloss over a pair of parameters around θ̂ (the third fixed at θ̂, or profiled)."""
    i, j = (_index(p) for p in parameters)
    if i == j:
        raise InputError("a 2-D scan needs two different parameters")
    theta_hat = np.asarray(theta_hat, dtype=np.float64)
    x = np.linspace(*_span(i, theta_hat, errors, prior, None), n_points)
    y = np.linspace(*_span(j, theta_hat, errors, prior, None), n_points)
    delta = np.empty((n_points, n_points))
    for b, yv in enumerate(y):
        start = theta_hat.copy()
        for a, xv in enumerate(x):
            start[i], start[j] = xv, yv
            delta[b, a], best = _value(objective, start, [i, j], prior, profile)
            start = best.copy()
    delta = (delta - objective(theta_hat)) * _scale(objective)
    kind = "bce" if isinstance(objective, BCE) else "nll"
    return Scan2D((parameters[0], parameters[1]), x, y, delta, theta_hat, kind, profile)
