"""The box of θ = (λ, μ, ν) over which ratio models are trained and θ is fitted."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import model_validator

from dyfit.config import StrictModel, validate
from dyfit.errors import InputError
from dyfit.physics.angular import THETA_NAMES, as_theta, is_physical

__all__ = ["ThetaPrior", "parse_theta", "parse_prior", "PRESETS"]


class ThetaPrior(StrictModel):
    """A uniform box prior on (λ, μ, ν), restricted to θ with a non-negative density."""

    lambda_: tuple[float, float] = (0.0, 2.0)
    mu: tuple[float, float] = (-0.5, 0.5)
    nu: tuple[float, float] = (-0.5, 0.5)

    model_config = StrictModel.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _ordered(self) -> ThetaPrior:
        for name, (lo, hi) in zip(THETA_NAMES, self.bounds, strict=True):
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise ValueError(f"prior range for {name} must be finite with low < high")
        return self

    @property
    def bounds(self) -> NDArray[np.float64]:
        """The box as an array with shape (3, 2): rows λ, μ, ν; columns low, high."""
        return np.array([self.lambda_, self.mu, self.nu], dtype=np.float64)

    def contains(self, theta: ArrayLike) -> NDArray[np.bool_]:
        t = as_theta(theta)
        b = self.bounds
        return np.all((t >= b[:, 0]) & (t <= b[:, 1]), axis=-1)

    def sample(self, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """n values of θ, uniform in the box, with shape (n, 3); unphysical θ are redrawn."""
        b = self.bounds
        out = np.empty((n, 3))
        todo = np.arange(n)
        while todo.size:
            t = rng.uniform(b[:, 0], b[:, 1], (todo.size, 3))
            ok = is_physical(t)
            out[todo[ok]] = t[ok]
            todo = todo[~ok]
        return out

    def describe(self) -> str:
        return ",".join(
            f"{n}={lo:g}:{hi:g}" for n, (lo, hi) in zip(THETA_NAMES, self.bounds, strict=True)
        )


# The proposal trained on λ ∈ [1.5, 2.5]; dyfit's default box covers θ0 and published values.
PRESETS = {
    "default": ThetaPrior(),
    "proposal": ThetaPrior(lambda_=(1.5, 2.5), mu=(-0.5, 0.5), nu=(-0.5, 0.5)),
}


def parse_theta(text: str) -> NDArray[np.float64]:
    """Parse "L,M,V" or "lambda=L,mu=M,nu=V" into θ with shape (3,)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if all("=" in p for p in parts):
            values = dict(p.split("=", 1) for p in parts)
            unknown = set(values) - set(THETA_NAMES)
            if unknown:
                raise InputError(
                    f"unknown theta key(s) {', '.join(sorted(unknown))}; use lambda, mu, nu"
                )
            theta = [
                float(values.get(n, d)) for n, d in zip(THETA_NAMES, (1.0, 0.0, 0.0), strict=True)
            ]
        elif len(parts) == 3:
            theta = [float(p) for p in parts]
        else:
            raise ValueError
    except ValueError:
        raise InputError(
            f"cannot parse theta {text!r}; write L,M,V or lambda=L,mu=M,nu=V"
        ) from None
    return as_theta(theta)


def parse_prior(text: str) -> ThetaPrior:
    """Parse "lambda=0:2,mu=-0.5:0.5,nu=-0.5:0.5" or a preset name; omitted keys keep defaults."""
    if text in PRESETS:
        return PRESETS[text]
    ranges = {}
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, rng = part.split("=", 1)
            if key not in THETA_NAMES:
                raise InputError(f"unknown prior key {key!r}; use lambda, mu, nu")
            lo, hi = (float(v) for v in rng.split(":"))
            ranges["lambda_" if key == "lambda" else key] = (lo, hi)
    except ValueError:
        raise InputError(
            f"cannot parse prior {text!r}; write lambda=LO:HI,mu=LO:HI,nu=LO:HI or a preset "
            f"({', '.join(PRESETS)})"
        ) from None
    return validate(ThetaPrior, ranges, source="prior")
