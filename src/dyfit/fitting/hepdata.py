r"""Differential results as a HEPData table, in YAML and JSON.

A HEPData submission (https://hepdata.net/submission, the ``hepdata-validator`` data
schema) holds one file per table with ``independent_variables`` (here the bins, as
``low``/``high``) and ``dependent_variables`` (λ, μ, ν and 1 − λ − 2ν), each value with
its ``errors`` as ``symerror`` and a ``label`` per source (``stat``, ``sys,nominal``, ...).
A bin that was not fitted has the value ``'-'``, HEPData's mark for a missing entry.

:data:`HEPDATA_TABLE_SCHEMA` is the subset of that schema dyfit writes, checked with
:func:`dyfit.fitting.result.schema_errors`. The YAML is emitted here (block style,
strings single-quoted, floats in a form every YAML 1.1 reader takes): no YAML dependency.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dyfit.atomic import finite_json, write_text_atomic
from dyfit.fitting.differential import DifferentialResult, lam_tung
from dyfit.fitting.result import schema_errors

__all__ = ["HEPDATA_TABLE_SCHEMA", "hepdata_table", "to_yaml", "write_hepdata", "validate_table"]

_STRING = {"type": "string"}
_NUMBER = {"type": "number"}
_HEADER = {
    "type": "object",
    "properties": {"name": _STRING, "units": _STRING},
    "required": ["name"],
    "additionalProperties": False,
}
_ERROR = {
    "type": "object",
    "properties": {"symerror": _NUMBER, "label": _STRING},
    "required": ["symerror", "label"],
    "additionalProperties": False,
}
_BIN = {
    "type": "object",
    "properties": {"low": _NUMBER, "high": _NUMBER},
    "required": ["low", "high"],
    "additionalProperties": False,
}
_VALUE = {
    "type": "object",
    "properties": {
        "value": {"type": ["number", "string"]},
        "errors": {"type": "array", "items": _ERROR},
    },
    "required": ["value"],
    "additionalProperties": False,
}
_QUALIFIER = {
    "type": "object",
    "properties": {"name": _STRING, "value": {"type": ["string", "number"]}, "units": _STRING},
    "required": ["name", "value"],
    "additionalProperties": False,
}
HEPDATA_TABLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "independent_variables": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {"header": _HEADER, "values": {"type": "array", "items": _BIN}},
                "required": ["header", "values"],
                "additionalProperties": False,
            },
        },
        "dependent_variables": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "header": _HEADER,
                    "qualifiers": {"type": "array", "items": _QUALIFIER},
                    "values": {"type": "array", "items": _VALUE},
                },
                "required": ["header", "values"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["independent_variables", "dependent_variables"],
    "additionalProperties": False,
}

# dyfit column -> HEPData's usual header name (upper case, as in INSPIRE-style tables)
_NAMES = {"pT": "PT", "mass": "M(MU+ MU-)", "xF": "XF", "x1": "X1", "x2": "X2"}
_DEPENDENT = {"lambda": "LAMBDA", "mu": "MU", "nu": "NU"}


def _header(variable: str) -> dict[str, str]:
    from dyfit.data.columns import UNITS

    base = variable.removeprefix("true_")
    name = _NAMES.get(base, base.upper()) + (" (generator level)" if base != variable else "")
    unit = UNITS.get(variable, "")
    return {"name": name, "units": unit.upper()} if unit else {"name": name}


def hepdata_table(
    result: DifferentialResult, qualifiers: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The HEPData table of a differential result: bins, then λ, μ, ν and 1 − λ − 2ν.

    Arguments:
        result: The differential fit.
        qualifiers: Extra qualifiers for every dependent variable, name -> value or
            (value, units), e.g. ``{"SQRT(S)": (15.06, "GEV")}``.
    """
    quals = [
        {"name": "FRAME", "value": "Collins-Soper"},
        {"name": "METHOD", "value": result.method},
    ]
    for name, value in (qualifiers or {}).items():
        value, units = value if isinstance(value, tuple) else (value, None)
        quals.append({"name": name, "value": value, **({"units": units} if units else {})})
    columns: dict[str, list[dict[str, Any]]] = {n: [] for n in (*_DEPENDENT, "lam_tung")}
    for b in result.bins:
        fit = b.result
        if fit is None:
            for rows in columns.values():
                rows.append({"value": "-"})
            continue
        parts = fit.error_breakdown()
        for i, name in enumerate(_DEPENDENT):
            errors = [
                {"symerror": float(e[i]), "label": "stat" if k == "stat" else f"sys,{k}"}
                for k, e in parts.items()
            ]
            columns[name].append({"value": float(fit.values[i]), "errors": errors})
        errors = []
        for k, cov in fit.covariance.items():
            error = lam_tung(fit.values, cov)[1]
            errors.append({"symerror": error, "label": "stat" if k == "stat" else f"sys,{k}"})
        columns["lam_tung"].append({"value": lam_tung(fit.values, None)[0], "errors": errors})
    names = {**_DEPENDENT, "lam_tung": "1-LAMBDA-2NU"}
    table = {
        "independent_variables": [
            {
                "header": _header(result.binning.variable),
                "values": [{"low": float(b.low), "high": float(b.high)} for b in result.bins],
            }
        ],
        "dependent_variables": [
            {"header": {"name": names[n]}, "qualifiers": quals, "values": rows}
            for n, rows in columns.items()
        ],
    }
    return finite_json(table)


def validate_table(table: Any) -> list[str]:
    """Where ``table`` breaks :data:`HEPDATA_TABLE_SCHEMA` or has ragged columns; empty if valid."""
    errors = schema_errors(table, HEPDATA_TABLE_SCHEMA)
    if errors:
        return errors
    lengths = {len(v["values"]) for v in table["independent_variables"]}
    lengths |= {len(v["values"]) for v in table["dependent_variables"]}
    return [] if len(lengths) == 1 else [f"$: columns differ in length: {sorted(lengths)}"]


def _scalar(value: Any) -> str:
    """One YAML scalar (or an empty flow collection)."""
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        text = repr(float(value))
        mantissa, e, exponent = text.partition("e")
        # YAML 1.1 (PyYAML) reads 1e-05 as a string: it needs a dot in the mantissa.
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text
    return "'" + str(value).replace("'", "''") + "'"


def to_yaml(obj: Any, indent: int = 0) -> str:
    """``obj`` (dicts, lists, strings, numbers, None) as block-style YAML."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, dict | list) and value:
                lines += [f"{pad}{key}:", to_yaml(value, indent + 2)]
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict | list) and item:
                # the item's first line follows the dash, the others align with it
                lines.append(f"{pad}- {to_yaml(item, indent + 2)[indent + 2 :]}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(obj))
    return "\n".join(lines)


def write_hepdata(
    result: DifferentialResult, directory: str | Path, qualifiers: dict[str, Any] | None = None
) -> list[Path]:
    """Write ``hepdata.yaml`` and ``hepdata.json`` (the same table) atomically; return the paths."""
    table = hepdata_table(result, qualifiers)
    problems = validate_table(table)
    if problems:  # a bug here, not the user's input
        raise RuntimeError(f"the HEPData table does not validate: {problems[0]}")
    out = Path(directory)
    paths = [out / "hepdata.yaml", out / "hepdata.json"]
    write_text_atomic(paths[0], to_yaml(table) + "\n")
    write_text_atomic(paths[1], json.dumps(table, indent=1, allow_nan=False) + "\n")
    return paths
