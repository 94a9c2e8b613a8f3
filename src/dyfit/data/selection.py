r"""Selection cuts as text, per-event weights, and the recipe that reads real data with both.

A cut is a boolean expression over event columns, as a physicist writes it,
``"mass > 4.5 and 0 < xF < 0.8"``. It is parsed with :mod:`ast` and checked against a
whitelist before any event is touched: column names, numbers, comparisons (chained
too), ``and``/``or``/``not``, ``+ - * / **``, unary minus and ``abs()``. Anything else
(attributes, subscripts, other calls, ``&``/``|``, strings) is refused with one line;
nothing is ever passed to ``eval``. Evaluation is vectorised NumPy over the columns;
an event whose cut columns hold NaN fails the comparison and is removed.

The column ``weight`` (:data:`WEIGHT`) holds per-event data weights; negative ones
are allowed (a background subtracted with a weighted control sample).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dyfit.data.events import EventTable
from dyfit.errors import InputError

__all__ = [
    "WEIGHT",
    "Cut",
    "parse_cut",
    "apply_cuts",
    "event_weights",
]

WEIGHT = "weight"
MAX_LENGTH = 2000  # longer text is no cut anybody types; it also bounds the parser's recursion

_COMPARE = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITHMETIC = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_HINT = "write e.g. 'mass > 4.5 and 0 < xF < 0.8'"


def _refuse(text: str, why: str) -> InputError:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return InputError(f"cut {shown!r}: {why}; {_HINT}")


def _check(node: ast.AST, text: str, names: set[str]) -> str:
    """The type of ``node``, "bool" or "num"; raises on anything off the whitelist."""
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            if _check(value, text, names) != "bool":
                raise _refuse(text, "'and'/'or' join conditions, not numbers")
        return "bool"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        if _check(node.operand, text, names) != "bool":
            raise _refuse(text, "'not' applies to a condition")
        return "bool"
    if isinstance(node, ast.Compare):
        if not all(type(op) in _COMPARE for op in node.ops):
            raise _refuse(text, "only < <= > >= == != compare")
        for part in (node.left, *node.comparators):
            if _check(part, text, names) != "num":
                raise _refuse(text, "comparisons take numbers or columns")
        return "bool"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return _number(node.operand, text, names)
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _ARITHMETIC:
            joins = isinstance(node.op, ast.BitAnd | ast.BitOr)
            hint = " (use 'and'/'or' to join conditions)" if joins else ""
            raise _refuse(text, f"operator {type(node.op).__name__} is not allowed{hint}")
        _number(node.left, text, names)
        return _number(node.right, text, names)
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id == "abs"):
            raise _refuse(text, "abs() is the only function")
        if len(node.args) != 1 or node.keywords:
            raise _refuse(text, "abs() takes one argument")
        return _number(node.args[0], text, names)
    if isinstance(node, ast.Name):
        names.add(node.id)
        return "num"
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return "num"
    if isinstance(node, ast.Constant):
        raise _refuse(text, f"{node.value!r} is no number; only numbers and column names")
    raise _refuse(text, f"{type(node).__name__} is not allowed in a cut")


def _number(node: ast.AST, text: str, names: set[str]) -> str:
    if _check(node, text, names) != "num":
        raise _refuse(text, "arithmetic takes numbers or columns, not conditions")
    return "num"


def _evaluate(node: ast.AST, columns: Mapping[str, NDArray]) -> Any:
    """The node's value on the columns (arrays with shape (N,), or scalars)."""
    if isinstance(node, ast.BoolOp):
        join = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        values = [_evaluate(v, columns) for v in node.values]
        out = values[0]
        for value in values[1:]:
            out = join(out, value)
        return out
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, columns)
        return {ast.Not: np.logical_not, ast.USub: np.negative, ast.UAdd: np.positive}[
            type(node.op)
        ](value)
    if isinstance(node, ast.Compare):  # a < b < c means a < b and b < c
        left, out = _evaluate(node.left, columns), True
        for op, right in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(right, columns)
            out = np.logical_and(out, _COMPARE[type(op)](left, right))
            left = right
        return out
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, columns), _evaluate(node.right, columns)
        return _ARITHMETIC[type(node.op)](left, right)
    if isinstance(node, ast.Call):
        return np.abs(_evaluate(node.args[0], columns))
    if isinstance(node, ast.Name):
        return columns[node.id]
    # numpy scalars: 10.0 ** 400 is inf (as on arrays), not Python's OverflowError
    return np.float64(node.value)


@dataclass(frozen=True)
class Cut:
    """One parsed selection cut: its text, the columns it reads and its checked syntax tree."""

    text: str
    names: tuple[str, ...]
    tree: ast.Expression

    def mask(self, table: EventTable) -> NDArray[np.bool_]:
        """Which events pass, shape (N,); raises InputError naming a missing column."""
        missing = [n for n in self.names if n not in table]
        if missing:
            raise InputError(
                f"cut {self.text!r} reads column(s) {', '.join(missing)} that the events lack; "
                f"they have {', '.join(table.names)} (rename with --columns)"
            )
        columns = {n: np.asarray(table[n], dtype=np.float64) for n in self.names}
        with np.errstate(all="ignore"):  # inf/NaN from x/0 or overflow simply fail the cut
            out = _evaluate(self.tree.body, columns)
        return np.broadcast_to(np.asarray(out, dtype=bool), (len(table),))


def parse_cut(text: str) -> Cut:
    """Parse and check one cut, e.g. ``"mass > 4.5 and abs(xF) < 0.8"``.

    Raises:
        InputError: On a syntax error or anything outside the whitelist (module docstring).
    """
    text = str(text).strip()
    if not text:
        raise InputError(f"an empty cut selects nothing; {_HINT}")
    if len(text) > MAX_LENGTH:
        raise InputError(f"a cut of {len(text)} characters is too long (at most {MAX_LENGTH})")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        joins = "&&" in text or "||" in text
        why = "write 'and'/'or' for &&/||" if joins else "this is not an expression dyfit can read"
        raise _refuse(text, why) from None
    names: set[str] = set()
    try:
        kind = _check(tree.body, text, names)
    except RecursionError:
        raise _refuse(text, "it is nested too deeply") from None
    if kind != "bool":
        raise _refuse(text, "it is a number, not a condition")
    return Cut(text, tuple(sorted(names)), tree)


def apply_cuts(
    table: EventTable, cuts: Sequence[str | Cut]
) -> tuple[EventTable, list[tuple[str, int]]]:
    """The events passing every cut, and the events left after each cut in turn."""
    parsed = [c if isinstance(c, Cut) else parse_cut(c) for c in cuts]
    keep = np.ones(len(table), dtype=bool)
    flow = []
    for cut in parsed:
        keep &= cut.mask(table)
        flow.append((cut.text, int(keep.sum())))
    if parsed and not keep.any():
        raise InputError(f"no event passes the cuts ({'; '.join(c.text for c in parsed)})")
    return (table.select(keep) if parsed else table), flow


def event_weights(
    table: EventTable, features: Sequence[str] = (), drop_invalid: bool = False
) -> NDArray[np.float64] | None:
    """The ``weight`` column, shape (N',), for the events a fit keeps; None without it.

    With ``drop_invalid`` the events with NaN/inf in ``features`` are dropped first, as
    :func:`~dyfit.fitting.evaluate.feature_matrix` drops them, so the weights stay aligned.
    """
    if WEIGHT not in table:
        return None
    w = np.asarray(table[WEIGHT], dtype=np.float64)
    if drop_invalid and features:
        w = w[np.all(np.isfinite(table.matrix(list(features))), axis=1)]
    if not np.all(np.isfinite(w)):
        raise InputError("the weight column holds NaN or inf; fix or drop those events")
    if not w.sum() > 0:
        raise InputError(f"the event weights sum to {w.sum():g}; a fit needs a positive sum")
    return w
