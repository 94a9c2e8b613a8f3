r"""θ as a low-order polynomial in a kinematic variable v, fitted unbinned with per-event θ.

θ_p(v) = Σ_k β_pk t^k with t = (v − v_c)/v_s centred and scaled on the data (a
well-conditioned fit); results are given in powers of v itself.

Each event enters the likelihood at its own θ(v_i); that likelihood, its analytic
derivatives and the stat and nominal error parts are in :mod:`dyfit.fitting.parametrised_nll`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.data.events import EventTable
from dyfit.errors import DyfitWarning, InputError
from dyfit.fitting.likelihood import hessian_inverse
from dyfit.fitting.parametrised_nll import PerEventNLL, to_powers_of_v
from dyfit.physics.angular import THETA0, THETA_NAMES, is_physical

__all__ = [
    "Parametrisation",
    "parse_parametrisation",
    "ParametrisedFit",
    "fit_parametrised",
    "curve_coefficients",
]


@dataclass(frozen=True)
class Parametrisation:
    """Polynomial degrees (λ, μ, ν) in ``variable``; degree 0 is a constant."""

    variable: str
    degrees: tuple[int, int, int]

    @property
    def names(self) -> list[str]:
        """Coefficient names, e.g. ``nu_1`` for the coefficient of v¹ in ν."""
        return [
            f"{n}_{k}" for n, d in zip(THETA_NAMES, self.degrees, strict=True) for k in range(d + 1)
        ]

    def blocks(self) -> list[slice]:
        ends = np.cumsum([d + 1 for d in self.degrees])
        return [slice(e - d - 1, e) for e, d in zip(ends, self.degrees, strict=True)]


def parse_parametrisation(text: str) -> Parametrisation:
    """``"pT:poly2"`` (all three of degree 2) or ``"pT:nu=poly2,lambda=poly1"`` (others 0)."""
    variable, sep, spec = (s.strip() for s in text.partition(":"))
    degrees = [0, 0, 0]
    try:
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        if not (sep and variable and parts):
            raise ValueError
        for part in parts:
            name, eq, form = part.rpartition("=")
            if not form.startswith("poly") or (eq and name not in THETA_NAMES):
                raise ValueError
            degree = int(form[4:])
            if not 0 <= degree <= 4:
                raise ValueError
            for i, n in enumerate(THETA_NAMES):
                if not eq or n == name:
                    degrees[i] = degree
    except ValueError:
        raise InputError(
            f"cannot parse parametrisation {text!r}; write VAR:polyK (K = 0..4 for all three) "
            "or VAR:nu=polyK,lambda=polyK"
        ) from None
    return Parametrisation(variable, tuple(degrees))


@dataclass
class ParametrisedFit:
    """The fitted coefficients of v⁰, v¹, ... per parameter, shape (K,), and covariances (K, K)."""

    parametrisation: Parametrisation
    values: NDArray[np.float64]
    covariance: dict[str, NDArray[np.float64]]
    n_events: int
    n_nominal: int
    converged: bool
    nll: float
    fit_time_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def covariance_total(self) -> NDArray[np.float64]:
        """The sum of the parts, (K, K); NaN if the fit gave no errors."""
        k = self.values.size
        return (
            sum(self.covariance.values(), np.zeros((k, k)))
            if self.covariance
            else np.full((k, k), np.nan)
        )

    @property
    def errors(self) -> NDArray[np.float64]:
        return np.sqrt(np.clip(np.diag(self.covariance_total), 0.0, None))

    def coefficients(self) -> list[NDArray[np.float64]]:
        """Per parameter (λ, μ, ν), the coefficients of v⁰, v¹, ..."""
        return [self.values[b] for b in self.parametrisation.blocks()]

    def _powers(self, v: ArrayLike) -> list[NDArray[np.float64]]:
        v = np.asarray(v, dtype=np.float64)
        return [np.vander(v, d + 1, increasing=True) for d in self.parametrisation.degrees]

    def theta(self, v: ArrayLike) -> NDArray[np.float64]:
        """θ(v), shape (N, 3)."""
        return np.stack(
            [p @ c for p, c in zip(self._powers(v), self.coefficients(), strict=True)], -1
        )

    def theta_error(self, v: ArrayLike) -> NDArray[np.float64]:
        """The error of θ(v) from the total covariance, shape (N, 3)."""
        cov = self.covariance_total
        out = [
            np.sqrt(np.einsum("nk,kl,nl->n", p, cov[b, b], p))
            for p, b in zip(self._powers(v), self.parametrisation.blocks(), strict=True)
        ]
        return np.stack(out, -1)

    def chi2(self, truth: ArrayLike) -> tuple[float, int, float]:
        """χ², ndf = K and p-value of the coefficients against ``truth`` with shape (K,)."""
        from scipy.stats import chi2

        d = self.values - np.asarray(truth, dtype=np.float64)
        value = float(d @ np.linalg.solve(self.covariance_total, d))
        return value, d.size, float(chi2.sf(value, d.size))

    def to_json(self) -> dict[str, Any]:
        from dyfit.atomic import finite_json

        names = self.parametrisation.names
        return finite_json(
            {
                "variable": self.parametrisation.variable,
                "degrees": list(self.parametrisation.degrees),
                "coefficients": {
                    n: {"value": float(v), "error": float(e)}
                    for n, v, e in zip(names, self.values, self.errors, strict=True)
                },
                "covariance": {k: c.tolist() for k, c in self.covariance.items()},
                "n_events": self.n_events,
                "n_nominal": self.n_nominal,
                "converged": self.converged,
                "nll": self.nll,
                "fit_time_s": self.fit_time_s,
                "warnings": self.warnings,
            }
        )


def fit_parametrised(
    model: Any,
    data: EventTable,
    nominal: EventTable,
    parametrisation: Parametrisation,
    *,
    drop_invalid: bool = False,
) -> ParametrisedFit:
    """Fit θ(v) = polynomials in v to all events at once (module docstring).

    Needs a moments model (``kind == "moments"``: the moment regressor or the oracle);
    data and nominal need the variable's column. Data weights are not supported.

    Example:
        >>> par = parse_parametrisation("true_pT:nu=poly1")
        >>> res = fit_parametrised(TruthRatio(), data, nominal, par)  # doctest: +SKIP
    """
    from iminuit import Minuit

    from dyfit.data.io import check_finite
    from dyfit.fitting.evaluate import ratio_sample

    if getattr(model, "kind", None) != "moments":
        raise InputError(
            "the parametrised fit needs a moments model (the moment regressor or 'truth'); "
            "use binned differential fits (--bin) with this model"
        )
    if "weight" in data:
        raise InputError("the parametrised fit does not support a weight column; drop it")
    var = parametrisation.variable
    columns = [*model.feature_names, var]
    data = check_finite(data, columns, drop_invalid=drop_invalid)
    nominal = check_finite(nominal, columns, drop_invalid=drop_invalid)
    v, v_nom = (np.asarray(t[var], dtype=np.float64) for t in (data, nominal))
    centre, scale = 0.5 * (v.max() + v.min()), max(0.5 * (v.max() - v.min()), 1e-12)
    t0 = time.perf_counter()
    h = ratio_sample(model, data, "data")[0].h
    h_nom = ratio_sample(model, nominal, "nominal sample")[0].h
    nll = PerEventNLL(h, (v - centre) / scale, h_nom, (v_nom - centre) / scale, parametrisation)
    start = np.zeros(len(parametrisation.names))
    for b, ref in zip(parametrisation.blocks(), THETA0, strict=True):
        start[b.start] = ref
    m = Minuit(nll, start, grad=nll.grad, name=parametrisation.names)
    m.errors = np.full(start.size, min(0.05, 3.0 / np.sqrt(nll.n)))
    m.migrad()
    beta = np.array(m.values)
    to_v = to_powers_of_v(parametrisation, centre, scale)
    notes = []
    covariance = {}
    v_stat = hessian_inverse(m, nll.hessian(beta)) if m.valid else None
    if v_stat is not None:
        v_nominal = nll.nominal_covariance(beta, v_stat)
        covariance = {k: to_v @ c @ to_v.T for k, c in (("stat", v_stat), ("nominal", v_nominal))}
    else:
        notes.append("no valid minimum with a positive-definite Hessian; no errors")
    result = ParametrisedFit(
        parametrisation,
        to_v @ beta,
        covariance,
        nll.n,
        h_nom.shape[0],
        bool(m.valid and v_stat is not None),
        float(m.fval),
        time.perf_counter() - t0,
        notes,
    )
    # the bulk of the data: θ(v) in the last few events of a tail is barely constrained
    grid = np.linspace(*np.quantile(v, [0.005, 0.995]), 64)
    theta = result.theta(grid)
    if not np.all(model.prior.contains(theta)):
        notes.append(f"theta({var}) leaves the model's trained box within the data's bulk")
    if not np.all(is_physical(theta)):
        notes.append(f"theta({var}) gives a negative angular density within the data's bulk")
    for note in notes:
        warnings.warn(note, DyfitWarning, stacklevel=2)
    return result


def curve_coefficients(curve: Any, parametrisation: Parametrisation) -> NDArray | None:
    """A :class:`~dyfit.physics.curves.ThetaCurve` as coefficients (K,) of the parametrisation.

    None unless the curve is in the same variable (``pT`` matches ``true_pT``) and each of
    its coefficients is a constant or a polynomial within the fitted degree.
    """
    if curve.variable != parametrisation.variable.removeprefix("true_"):
        return None
    out = []
    for part, degree in zip(curve.components, parametrisation.degrees, strict=True):
        poly = [part.value] if part.value is not None else part.poly
        if poly is None or len(poly) > degree + 1:
            return None
        out += [*poly, *[0.0] * (degree + 1 - len(poly))]
    return np.array(out)
