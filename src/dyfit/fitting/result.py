r"""The result of one fit of θ = (λ, μ, ν), its error breakdown and its JSON form.

The total covariance is the sum of independent parts, each a (3, 3) matrix:
``stat`` (the data, from the Hessian or the M-estimator sandwich), ``nominal``
(the finite nominal sample that normalises the ratio) and, when an ensemble of
models was given, ``training`` (the spread of θ̂ over the ensemble).

:data:`FIT_RESULT_SCHEMA` is the JSON schema of :meth:`FitResult.to_json`;
:func:`schema_errors` checks an object against the subset of JSON Schema it uses.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dyfit.physics.angular import THETA_NAMES

__all__ = ["FitResult", "FIT_RESULT_SCHEMA", "schema_errors"]

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_PARAMETER = {
    "type": "object",
    "properties": {"value": {"type": "number"}, "error": _NUMBER_OR_NULL},
    "required": ["value", "error"],
    "additionalProperties": False,
}
_ROW = {"type": "array", "items": _NUMBER_OR_NULL, "minItems": 3, "maxItems": 3}
_MATRIX = {"type": "array", "items": _ROW, "minItems": 3, "maxItems": 3}
_PER_PARAMETER = {
    "type": "object",
    "properties": {n: _NUMBER_OR_NULL for n in THETA_NAMES},
    "required": list(THETA_NAMES),
    "additionalProperties": False,
}

FIT_RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "dyfit fit result",
    "type": "object",
    "properties": {
        "method": {"type": "string"},
        "n_events": {"type": "integer"},
        "parameters": {
            "type": "object",
            "properties": {n: _PARAMETER for n in THETA_NAMES},
            "required": list(THETA_NAMES),
            "additionalProperties": False,
        },
        "correlation": {"anyOf": [_MATRIX, {"type": "null"}]},
        "converged": {"type": "boolean"},
        "n_nominal": {"type": "integer"},
        "errors": {"type": "object", "additionalProperties": _PER_PARAMETER},
        "covariance": {"type": "object", "additionalProperties": _MATRIX},
        "minos": {"type": ["object", "null"]},
        "fit_time_s": {"type": "number"},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "history": {"type": ["array", "null"], "items": _ROW},
        "loss_history": {"type": ["array", "null"], "items": {"type": "number"}},
    },
    "required": ["method", "n_events", "parameters", "correlation", "converged"],
    "additionalProperties": True,
}


def _float(x: Any) -> float | None:
    """A JSON number, or None for NaN/inf (JSON has neither)."""
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _matrix(m: NDArray) -> list[list[float | None]]:
    return [[_float(v) for v in row] for row in np.asarray(m)]


@dataclass
class FitResult:
    """One fit: θ̂ with shape (3,), its covariance parts (each (3, 3)) and diagnostics.

    ``covariance`` maps a source ("stat", "nominal", "training") to its matrix; the
    total is their sum. ``fit_time_s`` is the minimisation and the errors, after the
    model's first pass over the events (``extra["prepare_time_s"]``). ``history``
    (epochs, 3) and ``loss_history`` (epochs,) are kept by the Adam fit (Figure 3).
    """

    method: str
    n_events: int
    values: NDArray[np.float64]
    converged: bool
    covariance: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    n_nominal: int = 0
    fit_time_s: float = 0.0
    minos: dict[str, tuple[float, float]] | None = None
    warnings: list[str] = field(default_factory=list)
    history: NDArray[np.float64] | None = None
    loss_history: NDArray[np.float64] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def covariance_total(self) -> NDArray[np.float64] | None:
        """The sum of the covariance parts, (3, 3); None if no part is known."""
        if not self.covariance:
            return None
        return sum(np.asarray(c, dtype=np.float64) for c in self.covariance.values())

    @property
    def errors(self) -> NDArray[np.float64] | None:
        """Total errors, shape (3,)."""
        cov = self.covariance_total
        return None if cov is None else np.sqrt(np.clip(np.diag(cov), 0.0, None))

    @property
    def correlation(self) -> NDArray[np.float64] | None:
        cov, err = self.covariance_total, self.errors
        if cov is None or not np.all(err > 0):
            return None
        return cov / np.outer(err, err)

    def error_breakdown(self) -> dict[str, NDArray[np.float64]]:
        """Each part's errors, shape (3,), keyed by source."""
        return {k: np.sqrt(np.clip(np.diag(c), 0.0, None)) for k, c in self.covariance.items()}

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON-ready dict that validates against FIT_RESULT_SCHEMA."""
        errors = self.errors
        out: dict[str, Any] = {
            "method": self.method,
            "n_events": int(self.n_events),
            "parameters": {
                n: {
                    "value": float(self.values[i]),
                    "error": None if errors is None else _float(errors[i]),
                }
                for i, n in enumerate(THETA_NAMES)
            },
            "correlation": None if self.correlation is None else _matrix(self.correlation),
            "converged": bool(self.converged),
            "n_nominal": int(self.n_nominal),
            "errors": {
                k: dict(zip(THETA_NAMES, map(_float, e), strict=True))
                for k, e in self.error_breakdown().items()
            },
            "covariance": {k: _matrix(c) for k, c in self.covariance.items()},
            "minos": None if self.minos is None else {k: list(v) for k, v in self.minos.items()},
            "fit_time_s": float(self.fit_time_s),
            "warnings": list(self.warnings),
        }
        if self.history is not None:
            out["history"] = _matrix(self.history)
            out["loss_history"] = [_float(v) for v in self.loss_history]
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> FitResult:
        """Rebuild a result from :meth:`to_json` output (the covariance parts included)."""
        known = set(FIT_RESULT_SCHEMA["properties"]) | {"loss_history"}
        history = obj.get("history")
        return cls(
            method=obj["method"],
            n_events=obj["n_events"],
            values=np.array([obj["parameters"][n]["value"] for n in THETA_NAMES]),
            converged=obj["converged"],
            covariance={
                k: np.array(c, dtype=np.float64) for k, c in obj.get("covariance", {}).items()
            },
            n_nominal=obj.get("n_nominal", 0),
            fit_time_s=obj.get("fit_time_s", 0.0),
            minos=obj.get("minos"),
            warnings=list(obj.get("warnings", [])),
            history=None if history is None else np.array(history, dtype=np.float64),
            loss_history=None if history is None else np.array(obj["loss_history"], dtype=float),
            extra={k: v for k, v in obj.items() if k not in known},
        )

    def table(self) -> str:
        """A readable table: value ± total error and the breakdown, one row per parameter."""
        parts = self.error_breakdown()
        errors = self.errors
        head = f"{'':8s}{'value':>10s}{'error':>10s}" + "".join(f"{k:>10s}" for k in parts)
        rows = [f"method {self.method}: {self.n_events} events, {self.n_nominal} nominal", head]
        for i, n in enumerate(THETA_NAMES):
            err = "-" if errors is None else f"{errors[i]:.4f}"
            rows.append(
                f"{n:8s}{self.values[i]:10.4f}{err:>10s}"
                + "".join(f"{parts[k][i]:10.4f}" for k in parts)
            )
        rows.append(f"converged: {self.converged}; fit time {self.fit_time_s * 1e3:.1f} ms")
        rows.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(rows)


_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
    "integer": int,
    "number": (int, float),
}


def _is(value: Any, kind: str) -> bool:
    # bool is an int in Python but not a number in JSON
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def schema_errors(obj: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Where ``obj`` breaks ``schema`` (type, anyOf, properties, required, additionalProperties,
    items, minItems, maxItems: the subset FIT_RESULT_SCHEMA uses); empty when it validates."""
    if "anyOf" in schema:
        if all(schema_errors(obj, s, where) for s in schema["anyOf"]):
            return [f"{where}: matches none of anyOf"]
        return []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(obj, k) for k in kinds):
            return [f"{where}: {type(obj).__name__} is not {' or '.join(kinds)}"]
    errs: list[str] = []
    if isinstance(obj, dict):
        props = schema.get("properties", {})
        errs += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in obj]
        extra = schema.get("additionalProperties", True)
        for k, v in obj.items():
            if k in props:
                errs += schema_errors(v, props[k], f"{where}.{k}")
            elif extra is False:
                errs.append(f"{where}: unexpected key {k!r}")
            elif isinstance(extra, dict):
                errs += schema_errors(v, extra, f"{where}.{k}")
    if isinstance(obj, list):
        if len(obj) < schema.get("minItems", 0) or len(obj) > schema.get("maxItems", len(obj)):
            errs.append(f"{where}: {len(obj)} items")
        if "items" in schema:
            for i, v in enumerate(obj):
                errs += schema_errors(v, schema["items"], f"{where}[{i}]")
    return errs
