"""Event files: Parquet (the default), ROOT (through uproot, optional) and CSV.

Every file carries the table's metadata as JSON, with the units of the known
columns (:data:`dyfit.data.columns.UNITS`) under ``"units"``:

- Parquet: the schema metadata key ``dyfit``;
- ROOT: a TTree ``events`` and a TObjString ``dyfit_meta`` (uproot writes both);
- CSV: a first line ``# dyfit: {"meta": ..., "dtypes": ..., "events": N}``; the
  column types and the event count let the reader restore integer/float columns
  exactly and detect a truncated file. Plain CSV from other tools reads too.

Floats are written at round-trip precision (Arrow writes the shortest repr), so
every format reproduces float64 columns bit for bit. Columns read are float64,
int64 or bool; non-numeric columns of a foreign file are skipped unless asked for.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dyfit.atomic import atomic_path
from dyfit.data.columns import UNITS
from dyfit.data.events import EventTable
from dyfit.errors import DyfitWarning, InputError

__all__ = ["FORMATS", "event_format", "write_events", "read_events", "check_finite"]

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".root": "root", ".csv": "csv"}
META_KEY = "dyfit"
ROOT_TREE = "events"
ROOT_META = "dyfit_meta"
CSV_TAG = b"# dyfit: "


def event_format(path: str | Path, format: str | None = None) -> str:
    """The file format, ``"parquet"``, ``"root"`` or ``"csv"``, from ``format`` or the suffix."""
    fmt = format or FORMATS.get(Path(path).suffix.lower())
    if fmt not in FORMATS.values():
        raise InputError(
            f"cannot tell the event file format of {path}; name it .parquet, .pq, .root or .csv"
        )
    return fmt


def _uproot():
    try:
        import uproot
    except ImportError:
        raise InputError("ROOT files need uproot; pip install 'dyfit[root]'") from None
    return uproot


def _numeric(arr: Any) -> NDArray | None:
    """The column as float64, int64 or bool; None when it is not a flat numeric column."""
    arr = np.asarray(arr)
    if arr.ndim != 1 or arr.dtype.kind not in "biuf":
        return None
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        return arr.astype("f8")  # as int64 these would turn negative
    return arr if arr.dtype.kind == "b" else arr.astype("i8" if arr.dtype.kind in "iu" else "f8")


def _from_arrow(col) -> NDArray | None:
    import pyarrow as pa

    kind = col.type
    if not (pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
        return None
    if col.null_count:  # missing values become NaN, so the column turns float
        col = col.cast(pa.float64())
    return _numeric(col.to_numpy())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _load_json(text: str | bytes, path: Path) -> dict:
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        obj = None
    if not isinstance(obj, dict):  # the metadata is always a JSON object
        raise InputError(
            f"{path}: its dyfit metadata is not valid JSON or not an object; write the file again"
        )
    return obj


def write_events(table: EventTable, path: str | Path, *, format: str | None = None) -> Path:
    """Write ``table`` atomically to ``path`` (format from the suffix unless given).

    Example:
        >>> write_events(table, "events.parquet")  # doctest: +SKIP
    """
    path = Path(path)
    fmt = event_format(path, format)
    if len(table) == 0:
        raise InputError(f"no events to write to {path}")
    columns = {}
    for name, col in table.columns.items():
        columns[name] = _numeric(col)
        if columns[name] is None:
            raise InputError(f"column {name} is not a flat numeric column; cannot write {path}")
    units = {n: UNITS[n] for n in columns if n in UNITS} | dict(table.meta.get("units", {}))
    units = {n: u for n, u in units.items() if n in columns}
    try:
        meta = json.dumps({**table.meta, "units": units}, default=_json_default)
    except (TypeError, ValueError) as err:
        raise InputError(f"event metadata cannot be stored in {path}: {err}") from None
    with atomic_path(path) as tmp:
        _WRITERS[fmt](tmp, columns, meta)
    return path


def _write_parquet(tmp: Path, columns: dict[str, NDArray], meta: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(columns)
    # page CRCs: a flipped bit in the data is refused on reading, not read as another value
    pq.write_table(table.replace_schema_metadata({META_KEY: meta}), tmp, write_page_checksum=True)


def _write_root(tmp: Path, columns: dict[str, NDArray], meta: str) -> None:
    with _uproot().recreate(tmp) as file:
        tree = file.mktree(ROOT_TREE, {n: c.dtype for n, c in columns.items()})
        tree.extend(columns)
        file[ROOT_META] = meta


def _write_csv(tmp: Path, columns: dict[str, NDArray], meta: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    dtypes = {n: str(c.dtype) for n, c in columns.items()}
    n = len(next(iter(columns.values())))
    header = f'{{"meta": {meta}, "dtypes": {json.dumps(dtypes)}, "events": {n}}}'
    with open(tmp, "wb") as fh:
        fh.write(CSV_TAG + header.encode() + b"\n")
        pcsv.write_csv(pa.table(columns), fh)


def _split_spec(spec: str | Path, tree: str | None) -> tuple[Path, str | None]:
    """``FILE.root:TREE`` -> (FILE.root, TREE); a path that exists is never split."""
    text = str(spec)
    head, sep, tail = text.rpartition(":")
    if sep and head.lower().endswith(".root") and not Path(text).exists():
        if tree is not None and tree != tail:
            raise InputError(f"{spec} names tree {tail!r} but tree={tree!r} was asked; give one")
        return Path(head), tail
    return Path(text), tree


def read_events(
    spec: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    tree: str | None = None,
    only: Iterable[str] | None = None,
) -> EventTable:
    """Read an event file (``FILE.parquet``, ``FILE.csv``, ``FILE.root`` or ``FILE.root:TREE``).

    Arguments:
        spec: The file, with an optional ``:TREE`` after a ROOT file.
        columns: dyfit name -> column name in the file, e.g. ``{"mass": "dimuon_mass"}``;
            those columns are read under the dyfit names, the others under their own.
        tree: The ROOT tree (default ``events``, or the file's only tree).
        only: Read just these (dyfit) columns, those the file holds; the others are not
            read at all (Parquet and ROOT read column by column), so a fit of a large file
            holds its features only. None reads every column.

    Returns:
        The numeric columns (float64, int64 or bool), each with shape (N,), and the metadata.
    """
    path, tree = _split_spec(spec, tree)
    fmt = event_format(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes); write or copy it again")
    mapping, wanted = dict(columns or {}), None
    if only is not None:
        only = set(only)
        mapping = {d: f for d, f in mapping.items() if d in only}
        wanted = {mapping.get(n, n) for n in only}  # as the file names them
    try:
        found, meta = _READERS[fmt](path, tree, wanted)
    except InputError:
        raise
    except Exception as err:  # any parser failure on a damaged file, in whatever form it comes
        # the parser's own words, first line, printable, short: the message must stay one line
        lines = str(err).strip().splitlines() or [""]
        why = f"{type(err).__name__}: {lines[0]}"[:140]
        why = "".join(ch if ch.isascii() and ch.isprintable() else "?" for ch in why)
        raise InputError(
            f"{path} cannot be read as {fmt} ({why}); it is truncated or corrupted, "
            "write or copy it again"
        ) from None
    return _assemble(path, found, meta, mapping)


def _assemble(
    path: Path, found: dict[str, NDArray | None], meta: dict, mapping: dict[str, str]
) -> EventTable:
    missing = [f"{f} (for {d})" for d, f in mapping.items() if f not in found]
    if missing:
        raise InputError(f"{path} has no column {', '.join(missing)}; it has {', '.join(found)}")
    text = [f for f in mapping.values() if found[f] is None]
    if text:
        raise InputError(
            f"{path}: column(s) {', '.join(text)} are not numeric; map numeric columns"
        )
    renamed = set(mapping) | set(mapping.values())
    out = {n: c for n, c in found.items() if c is not None and n not in renamed}
    out |= {d: found[f] for d, f in mapping.items()}
    if not out:
        raise InputError(f"{path} has no numeric columns; it has {', '.join(found) or 'none'}")
    if len(next(iter(out.values()))) == 0:
        raise InputError(f"{path} holds no events")
    units = meta.get("units")
    if isinstance(units, dict) and mapping:  # the units follow their columns to the new names
        source = {n: n for n in out} | mapping
        meta["units"] = {n: units[f] for n, f in source.items() if f in units}
    return EventTable(out, meta)


def _read_parquet(
    path: Path, tree: str | None, wanted: set[str] | None = None
) -> tuple[dict, dict]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path, page_checksum_verification=True) as pf:
        names = pf.schema_arrow.names
        table = pf.read(columns=None if wanted is None else [n for n in names if n in wanted])
    raw = (table.schema.metadata or {}).get(META_KEY.encode())
    meta = _load_json(raw, path) if raw is not None else {}
    read = set(table.column_names)
    return {n: _from_arrow(table[n]) if n in read else None for n in names}, meta


def _read_root(path: Path, tree: str | None, wanted: set[str] | None = None) -> tuple[dict, dict]:
    uproot = _uproot()
    with uproot.open(path) as file:
        kinds = {k.rsplit(";", 1)[0]: c for k, c in file.classnames().items()}
        trees = [k for k, c in kinds.items() if c in ("TTree", "ROOT::RNTuple")]
        if tree is None:
            tree = ROOT_TREE if ROOT_TREE in trees or len(trees) != 1 else trees[0]
        if tree not in trees:
            raise InputError(
                f"{path} has no tree {tree!r}; trees there: {', '.join(trees) or 'none'} "
                "(pick one with FILE.root:TREE)"
            )
        obj = file[tree]
        names = list(obj.keys())
        if kinds[tree] == "TTree":
            # Only fixed-size scalar branches are columns; jagged ones stay unread.
            flat = [n for n in names if isinstance(obj[n].interpretation, uproot.AsDtype)]
            flat = [n for n in flat if obj[n].interpretation.inner_shape == ()]
        else:
            flat = names
        flat = [n for n in flat if wanted is None or n in wanted]
        arrays = obj.arrays(flat, library="np") if flat else {}
        meta = _load_json(str(file[ROOT_META]), path) if ROOT_META in kinds else {}
    return {n: _numeric(arrays[n]) if n in arrays else None for n in names}, meta


def _read_csv(path: Path, tree: str | None, wanted: set[str] | None = None) -> tuple[dict, dict]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    data = path.read_bytes()
    header = None
    while data.startswith(b"#"):  # comment lines; ours carries the metadata
        line, _, data = data.partition(b"\n")
        if line.startswith(CSV_TAG):
            header = _load_json(line[len(CSV_TAG) :], path)
    if not data.strip():
        raise InputError(f"{path} holds no events")
    types = {}
    if header is not None:
        if not ({"meta", "dtypes", "events"} <= set(header) and isinstance(header["meta"], dict)):
            raise InputError(f"{path}: its '# dyfit:' line is incomplete; write the file again")
        if not data.endswith(b"\n"):
            raise InputError(f"{path} ends in the middle of a line; it is truncated")
        types = {n: pa.type_for_alias(t) for n, t in header["dtypes"].items()}
    options = pcsv.ConvertOptions(column_types=types)
    table = pcsv.read_csv(pa.BufferReader(data), convert_options=options)
    if table.num_rows == 0:  # a header line only: no column types can be told either
        raise InputError(f"{path} holds no events")
    if header is not None and table.num_rows != header["events"]:
        raise InputError(
            f"{path} has {table.num_rows} events but its header says {header['events']}; "
            "it is truncated"
        )
    # CSV is parsed whole (it is not the format for large files); unwanted columns are dropped
    keep = set(table.column_names) if wanted is None else wanted
    found = {n: _from_arrow(table[n]) if n in keep else None for n in table.column_names}
    return found, header["meta"] if header is not None else {}


_WRITERS = {"parquet": _write_parquet, "root": _write_root, "csv": _write_csv}
_READERS = {"parquet": _read_parquet, "root": _read_root, "csv": _read_csv}


def check_finite(
    table: EventTable, names: Iterable[str], *, drop_invalid: bool = False
) -> EventTable:
    """Refuse events with NaN or inf in ``names``, or drop them with a DyfitWarning."""
    names = list(names)
    table.require(names)
    bad_by = {n: ~np.isfinite(np.asarray(table[n], dtype=np.float64)) for n in names}
    bad = np.zeros(len(table), dtype=bool)
    for flags in bad_by.values():
        bad |= flags
    count = int(bad.sum())
    if count == 0:
        return table
    detail = ", ".join(f"{n}: {int(b.sum())}" for n, b in bad_by.items() if b.any())
    what = f"{count} of {len(table)} events with NaN or inf ({detail})"
    if not drop_invalid:
        raise InputError(f"{what}; clean the input or drop them (drop_invalid, --drop-invalid)")
    if count == len(table):
        raise InputError(f"{what}; no valid event is left")
    warnings.warn(f"dropped {what}", DyfitWarning, stacklevel=2)
    return table.select(~bad)
