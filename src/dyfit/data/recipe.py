"""How to read a measured dataset: the file, its column names, its weight and the cuts.

A :class:`DataSpec` is data (a strict pydantic model, from the ``[data]`` table of a TOML
file or from ``dyfit fit`` options); :func:`read_selected` turns it into the selected
:class:`~dyfit.data.events.EventTable` and a JSON-ready summary (what ``--dry-run``
prints). The same cuts apply to the nominal simulation, so that data and simulation
share the selection (a cut on x leaves the ratio r(x|θ) unchanged; only its
normalisation over the nominal sample moves, and the fit takes it from the cut sample).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dyfit.config import StrictModel, load_toml
from dyfit.data.events import EventTable
from dyfit.data.selection import WEIGHT, apply_cuts, parse_cut
from dyfit.errors import ConfigError, InputError

__all__ = ["PATH_FIELDS", "DataSpec", "load_spec", "merge_spec", "read_selected", "describe"]


class DataSpec(StrictModel):
    """One event file to fit (the ``[data]`` table of ``dyfit fit --config``).

    ``file`` is ``FILE`` or ``FILE.root:TREE``; ``columns`` maps dyfit names to the
    file's (``mass = "dimuon_mass"``); ``weight`` names the per-event weight column;
    ``cuts`` are selection expressions (:func:`~dyfit.data.selection.parse_cut`);
    ``nominal``/``nominal_columns`` the simulation at θ0 and its mapping.
    """

    file: str | None = None
    columns: dict[str, str] = {}
    weight: str | None = None
    cuts: list[str] = []
    nominal: str | None = None
    nominal_columns: dict[str, str] = {}


# the DataSpec fields that name files; a config file may only point inside its own folder
PATH_FIELDS = ("file", "nominal")


def _confined(value: str, folder: Path, source: str, key: str) -> str:
    """``value`` (``FILE`` or ``FILE.root:TREE``) resolved against ``folder``, which it may
    not leave (by ``..``, a link or an absolute path): a shared config cannot read elsewhere."""
    head, sep, tree = value.rpartition(":")
    name, suffix = (head, sep + tree) if sep and head.lower().endswith(".root") else (value, "")
    resolved = (folder / name).resolve()
    if not resolved.is_relative_to(folder):
        raise ConfigError(
            f"{source}: [data] {key} = {value!r} points outside the config's folder {folder}; "
            "move the file there or give it on the command line (--data/--nominal)"
        )
    return str(resolved) + suffix


def load_spec(path: str) -> DataSpec:
    """The ``[data]`` table of a TOML file; its file paths are taken relative to the file's
    folder and must stay inside it (paths from the command line are not limited)."""
    spec = load_toml(path, DataSpec, table="data")
    folder = Path(path).resolve().parent
    update = {k: _confined(v, folder, path, k) for k in PATH_FIELDS if (v := getattr(spec, k))}
    return spec.model_copy(update=update)


def merge_spec(
    base: DataSpec | None,
    *,
    file: str | None = None,
    columns: Mapping[str, str] | None = None,
    weight: str | None = None,
    cuts: Sequence[str] = (),
    nominal: str | None = None,
    nominal_columns: Mapping[str, str] | None = None,
) -> DataSpec:
    """``base`` (a config file's) with command-line values on top; cuts add up."""
    base = base or DataSpec()
    spec = DataSpec(
        file=file or base.file,
        columns={**base.columns, **(columns or {})},
        weight=weight or base.weight,
        cuts=[*base.cuts, *cuts],
        nominal=nominal or base.nominal,
        nominal_columns={**base.nominal_columns, **(nominal_columns or {})},
    )
    if spec.file is None:
        raise InputError("no data to fit: give --data FILE or a [data] file = ... in --config")
    for cut in spec.cuts:  # refuse a bad cut before reading a large file
        parse_cut(cut)
    return spec


def _mapping(spec: DataSpec) -> dict[str, str]:
    mapping = dict(spec.columns)
    if spec.weight is not None:
        if mapping.get(WEIGHT, spec.weight) != spec.weight:
            raise InputError("the weight column is given twice (weight and columns); give it once")
        if spec.weight != WEIGHT:
            mapping[WEIGHT] = spec.weight
    return mapping


def _weight_sum(table: EventTable) -> float:
    return float(np.sum(table[WEIGHT])) if WEIGHT in table else float(len(table))


def read_selected(spec: DataSpec) -> tuple[EventTable, dict[str, Any]]:
    """Read ``spec.file`` with its column mapping and weight, apply the cuts; and a summary.

    The summary records the file, the mapping, the cuts with the events left after each,
    and the events and the weight sum before and after the cuts.
    """
    from dyfit.data.io import read_events

    mapping = _mapping(spec)
    table = read_events(spec.file, columns=mapping)
    if spec.weight == WEIGHT and WEIGHT not in table:
        raise InputError(f"{spec.file} has no column {WEIGHT}; it has {', '.join(table.names)}")
    selected, flow = apply_cuts(table, spec.cuts)
    summary = {
        "file": spec.file,
        "columns": mapping,
        "weight": WEIGHT if WEIGHT in table else None,
        "cuts": [{"cut": text, "events": n} for text, n in flow],
        "events_read": len(table),
        "events_selected": len(selected),
        "weight_sum_read": _weight_sum(table),
        "weight_sum_selected": _weight_sum(selected),
        "truth_columns": any(n.startswith("true_") for n in table.names),
    }
    return selected, summary


def describe(summary: dict[str, Any]) -> str:
    """The summary of :func:`read_selected` as the lines ``--dry-run`` prints."""
    mapping = ", ".join(f"{k} <- {v}" for k, v in summary["columns"].items()) or "none"
    lines = [
        f"file: {summary['file']}",
        f"columns renamed: {mapping}",
        f"weight: {summary['weight'] or 'none (each event counts 1)'}",
        f"events read: {summary['events_read']} (weight sum {summary['weight_sum_read']:.6g})",
    ]
    lines += [f"  after cut {c['cut']!r}: {c['events']}" for c in summary["cuts"]]
    lines.append(
        f"events selected: {summary['events_selected']} "
        f"(weight sum {summary['weight_sum_selected']:.6g})"
    )
    return "\n".join(lines)
