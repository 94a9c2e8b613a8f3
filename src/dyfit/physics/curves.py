r"""θ = (λ, μ, ν) as a function of one truth kinematic variable: injected curves for pseudo-data.

Measured coefficients vary with the kinematics; NA10 (Z. Phys. C 37 (1988) 545) and E615
(Phys. Rev. D 39 (1989) 92) saw ν rise from 0 to about 0.3 with pT in πN Drell-Yan. A
:class:`ThetaCurve` says how: each coefficient is a constant, a polynomial in the
variable v, or piecewise linear between knots (flat outside them), e.g.

.. code-block:: toml

    variable = "pT"                   # GeV; or "mass", "xF", "x1", "x2"
    nu = { knots = [[0.0, 0.0], [3.0, 0.3]] }
    lambda = { value = 1.0 }          # the default: θ0's component
    mu = { poly = [0.0, 0.01] }       # μ = 0 + 0.01 v

The generator evaluates θ(v) per event from the event's own truth kinematics before its
angles are drawn (:func:`dyfit.physics.generator.generate_truth`). Positivity: the
density matrix A(θ) is linear in θ, so its smallest eigenvalue is concave in θ and the
physical region is convex. A curve that is piecewise linear in every component (or
constant) is therefore physical for all v when it is at the union of its knots; that is
checked when the curve is built. Polynomials are unbounded and checked per event.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import Field, model_validator

from dyfit.config import StrictModel, load_toml
from dyfit.errors import InputError
from dyfit.physics.angular import THETA0, THETA_NAMES, is_physical

__all__ = ["CURVE_VARIABLES", "CoefficientCurve", "ThetaCurve", "load_curve"]

# Truth kinematics the generator knows before it draws the angles (GeV for mass and pT).
CURVE_VARIABLES = ("mass", "pT", "xF", "x1", "x2")


class CoefficientCurve(StrictModel):
    """One coefficient as a function of v: exactly one of ``value``, ``poly``, ``knots``.

    ``poly`` = (c0, c1, ...) gives c0 + c1 v + c2 v² + ...; ``knots`` = ((v0, y0), (v1, y1),
    ...) with increasing v is linear between knots and constant beyond the outer ones.
    """

    value: float | None = None
    poly: tuple[float, ...] | None = Field(None, min_length=1)
    knots: tuple[tuple[float, float], ...] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_form(self) -> CoefficientCurve:
        given = [k for k in ("value", "poly", "knots") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of value, poly, knots (got {given or 'none'})")
        numbers = np.array(
            [self.value] if self.value is not None else np.ravel(self.poly or self.knots)
        )
        if not np.all(np.isfinite(numbers)):
            raise ValueError("curve numbers must be finite")
        if self.knots is not None and np.any(np.diff([v for v, _ in self.knots]) <= 0):
            raise ValueError("knot positions must increase strictly")
        return self

    @property
    def bounded(self) -> bool:
        """True for a constant or knots: linear between :meth:`corners`, flat beyond them."""
        return self.poly is None

    def corners(self) -> list[float]:
        """The v where the curve may bend (knot positions); empty for a constant."""
        return [v for v, _ in self.knots] if self.knots is not None else []

    def __call__(self, v: ArrayLike) -> NDArray[np.float64]:
        """The coefficient at v, with the shape of v."""
        v = np.asarray(v, dtype=np.float64)
        if self.value is not None:
            return np.full(v.shape, self.value)
        if self.poly is not None:
            return np.polynomial.polynomial.polyval(v, self.poly)
        x, y = np.array(self.knots).T
        return np.interp(v, x, y)


def _default(i: int) -> CoefficientCurve:
    return CoefficientCurve(value=float(THETA0[i]))


class ThetaCurve(StrictModel):
    """θ(v) for the truth variable ``variable`` (one of :data:`CURVE_VARIABLES`).

    Omitted coefficients keep θ0's value (λ = 1, μ = ν = 0). Call it with v of shape (N,)
    for θ with shape (N, 3).
    """

    variable: str
    lambda_: CoefficientCurve = Field(default_factory=lambda: _default(0), alias="lambda")
    mu: CoefficientCurve = Field(default_factory=lambda: _default(1))
    nu: CoefficientCurve = Field(default_factory=lambda: _default(2))

    model_config = StrictModel.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _check(self) -> ThetaCurve:
        if self.variable not in CURVE_VARIABLES:
            raise ValueError(
                f"variable {self.variable!r} is not a generator truth variable; "
                f"use one of {', '.join(CURVE_VARIABLES)}"
            )
        parts = self.components
        if all(p.bounded for p in parts):
            # Convexity of the physical region (module docstring): the corners suffice.
            corners = np.array(sorted({v for p in parts for v in p.corners()}) or [0.0])
            theta = self(corners)
            bad = ~is_physical(theta)
            if np.any(bad):
                raise ValueError(
                    f"theta({self.variable}={corners[bad][0]:g}) = {theta[bad][0].tolist()} "
                    "gives a negative angular density"
                )
        return self

    @property
    def components(self) -> tuple[CoefficientCurve, CoefficientCurve, CoefficientCurve]:
        return self.lambda_, self.mu, self.nu

    def __call__(self, v: ArrayLike) -> NDArray[np.float64]:
        """θ(v) with shape (*v.shape, 3)."""
        return np.stack([c(v) for c in self.components], axis=-1)

    def theta_for(self, kinematics: dict[str, NDArray]) -> NDArray[np.float64]:
        """Per-event θ, (N, 3), from truth kinematics keyed by :data:`CURVE_VARIABLES` names.

        Raises InputError naming the first event where θ(v) gives a negative density.
        """
        v = np.asarray(kinematics[self.variable], dtype=np.float64)
        theta = self(v)
        bad = ~is_physical(theta)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise InputError(
                "the theta curve gives an unphysical theta = "
                f"({', '.join(map('{:.4g}'.format, theta[i]))}) at {self.variable} = "
                f"{v[i]:.4g}; keep the curve inside the physical region over the generated range"
            )
        return theta

    def describe(self) -> str:
        """One line, e.g. ``nu(pT): knots ((0, 0), (3, 0.3))``, omitting θ0's constants."""
        parts = []
        for name, c, ref in zip(THETA_NAMES, self.components, THETA0, strict=True):
            if c.value is not None and c.value == ref:
                continue
            form = "value" if c.value is not None else "poly" if c.poly is not None else "knots"
            parts.append(f"{name}({self.variable}): {form} {getattr(c, form)}")
        return "; ".join(parts) or "theta0 everywhere"


def load_curve(path: str | Path) -> ThetaCurve:
    """A :class:`ThetaCurve` from the top level of a TOML file (ConfigError if invalid)."""
    return load_toml(path, ThetaCurve)
