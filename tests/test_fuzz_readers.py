"""Fuzzing the event readers: damaged files, foreign column types, odd values, column maps.

Properties, each over hypothesis-generated cases (deterministic, see tests/fuzz_cases.py):

- a damaged Parquet/ROOT/CSV file (cut anywhere, bytes flipped, junk spliced in) gives
  InputError with a one-line message, or a well-formed table; never another exception;
- a foreign Parquet or CSV file with columns of any type reads its numeric columns with
  exactly the values an independent conversion (``to_pylist``/``float``) gives, and is
  refused only when nothing numeric is in it;
- every table dyfit can write reads back bit for bit, with any column names and any
  float64 values (NaN, ±inf, ±1e308, subnormals, -0.0): a valid file is never refused;
- column maps with missing, non-numeric or colliding names give InputError or the
  right columns under the right names.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dyfit.data.events import EventTable
from dyfit.data.io import check_finite, read_events, write_events
from dyfit.errors import DyfitWarning, InputError
from fuzz_cases import fuzz, report_cases, tried

_report = report_cases(
    "readers: damaged", "readers: foreign", "readers: round trip", "readers: map"
)
FORMATS = (".parquet", ".root", ".csv")


def well_formed(table: EventTable) -> None:
    assert len(table) > 0 and table.names
    for col in table.columns.values():
        assert col.ndim == 1 and len(col) == len(table)
        assert col.dtype in (np.float64, np.int64, np.bool_)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-equal values, where every NaN equals every NaN (text formats keep no NaN payload)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind != "f":
        return a.tobytes() == b.tobytes()
    nan = np.isnan(a)
    return np.array_equal(nan, np.isnan(b)) and a[~nan].tobytes() == b[~nan].tobytes()


def read_or_refuse(data: bytes, suffix: str, **kwargs) -> EventTable | None:
    """The table read from ``data``, or None after checking the refusal is one line."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"f{suffix}"
        path.write_bytes(data)
        try:
            return read_events(path, **kwargs)
        except InputError as err:
            assert "\n" not in str(err) and str(err)
            return None


# --- damaged files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_files(tmp_path_factory) -> tuple[EventTable, dict[str, bytes]]:
    rng = np.random.default_rng(3)
    n = 200
    table = EventTable(
        {
            "mass": rng.uniform(4.0, 9.0, n),
            "costh": rng.uniform(-1.0, 1.0, n),
            "run": rng.integers(0, 10**6, n),
            "ok": rng.uniform(size=n) < 0.5,
        },
        {"theta": [1.0, 0.0, 0.0]},
    )
    folder = tmp_path_factory.mktemp("good")
    return table, {s: write_events(table, folder / f"good{s}").read_bytes() for s in FORMATS}


damage = st.one_of(
    st.tuples(st.just("cut"), st.floats(0.0, 1.0)),
    st.tuples(
        st.just("flip"),
        st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 255)), min_size=1, max_size=8),
    ),
    st.tuples(st.just("splice"), st.tuples(st.floats(0.0, 1.0), st.binary(min_size=1))),
)


def damaged(data: bytes, how) -> bytes:
    kind, arg = how
    if kind == "cut":
        return data[: int(arg * (len(data) - 1))]
    if kind == "flip":
        out = bytearray(data)
        for where, xor in arg:
            out[int(where * (len(out) - 1))] ^= xor
        return bytes(out)
    where, junk = arg
    i = int(where * len(data))
    return data[:i] + junk + data[i + len(junk) :]


@fuzz(150)
@given(suffix=st.sampled_from(FORMATS), how=damage)
def test_damaged_files_are_refused_in_one_line_or_read_whole(good_files, suffix, how):
    tried("readers: damaged")
    original, files = good_files
    table = read_or_refuse(damaged(files[suffix], how), suffix)
    if table is None:
        return
    well_formed(table)  # the damage hit bytes no reader needs (metadata, padding, CSV digits)
    if suffix != ".csv":  # binary formats carry checksums (Parquet page CRCs, ROOT's zlib)
        assert table.names == original.names
        assert all(same_bits(table[n], original[n]) for n in original.names)


# --- foreign column types ---------------------------------------------------------------

INT_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32(), pa.uint64()]
FLOAT_TYPES = [pa.float16(), pa.float32(), pa.float64()]
OTHER_TYPES = ["string", "list", "struct", "timestamp", "null", "dictionary", "decimal"]


@st.composite
def arrow_column(draw, n: int) -> pa.Array:
    kind = draw(st.sampled_from(["int", "float", "bool", *OTHER_TYPES]))
    nulls = draw(st.booleans())
    mask = draw(st.lists(st.booleans(), min_size=n, max_size=n)) if nulls else [False] * n
    if kind == "int":
        typ = draw(st.sampled_from(INT_TYPES))
        lo = 0 if pa.types.is_unsigned_integer(typ) else -(2 ** (typ.bit_width - 1))
        hi = 2**typ.bit_width - 1 if lo == 0 else 2 ** (typ.bit_width - 1) - 1
        values = draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    elif kind == "float":
        typ = draw(st.sampled_from(FLOAT_TYPES))
        width = 16 if typ == pa.float16() else 32 if typ == pa.float32() else 64
        values = draw(st.lists(st.floats(width=width), min_size=n, max_size=n))
        if typ == pa.float16():
            values = np.array(values, dtype=np.float16)
            return pa.array(values, mask=np.array(mask))
    elif kind == "bool":
        typ, values = pa.bool_(), draw(st.lists(st.booleans(), min_size=n, max_size=n))
    else:
        return {
            "string": lambda: pa.array([f"s{i}" for i in range(n)]),
            "list": lambda: pa.array([[float(i)] * (i % 3) for i in range(n)]),
            "struct": lambda: pa.array([{"a": i} for i in range(n)]),
            "timestamp": lambda: pa.array(np.arange(n).astype("datetime64[s]")),
            "null": lambda: pa.nulls(n),
            "dictionary": lambda: pa.array([f"d{i % 2}" for i in range(n)]).dictionary_encode(),
            "decimal": lambda: pa.array([i for i in range(n)], pa.decimal128(5, 1)),
        }[kind]()
    return pa.array([None if m else v for v, m in zip(values, mask, strict=True)], typ)


def expected_column(col: pa.Array) -> np.ndarray | None:
    """The column as dyfit should read it, computed independently through Python objects."""
    t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        return None
    values = col.to_pylist()
    if col.null_count:
        return np.array([math.nan if v is None else float(v) for v in values])
    if pa.types.is_boolean(t):
        return np.array(values, dtype=bool)
    if pa.types.is_integer(t) and max(values) <= 2**63 - 1:
        return np.array(values, dtype=np.int64)
    return np.array([float(v) for v in values])


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)


@fuzz(60)
@given(data=st.data(), n=st.integers(1, 12), k=st.integers(1, 5))
def test_foreign_parquet_reads_exactly_its_numeric_columns(data, n, k):
    tried("readers: foreign")
    cols = data.draw(st.lists(names, min_size=k, max_size=k, unique=True))
    arrays = {name: data.draw(arrow_column(n)) for name in cols}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "foreign.parquet"
        pq.write_table(pa.table(arrays), path)
        want = {c: expected_column(a) for c, a in arrays.items()}
        want = {c: v for c, v in want.items() if v is not None}
        if not want:
            with pytest.raises(InputError, match="has no numeric columns"):
                read_events(path)
            return
        table = read_events(path)  # a valid file: never refused
    assert table.names == list(want)
    for name, values in want.items():
        assert same_bits(table[name], values), name


cell_text = st.text("xyz_", min_size=1, max_size=4).map(lambda s: "x" + s)
cell_float = st.one_of(st.floats(), st.sampled_from([1e308, -1e308, 5e-324, -0.0]))


@fuzz(40)
@given(data=st.data(), n=st.integers(1, 10), k=st.integers(1, 5))
def test_plain_csv_reads_numbers_exactly_and_skips_text(data, n, k):
    tried("readers: foreign")
    cols = data.draw(st.lists(st.text("abcmpT_0", min_size=1, max_size=5), min_size=k,
                              max_size=k, unique=True))  # fmt: skip
    numeric = data.draw(st.lists(st.booleans(), min_size=k, max_size=k))
    cells = {
        c: data.draw(st.lists(cell_float if num else cell_text, min_size=n, max_size=n))
        for c, num in zip(cols, numeric, strict=True)
    }
    rows = [",".join(cols)]
    rows += [",".join(repr(cells[c][i]) if num else cells[c][i]
                      for c, num in zip(cols, numeric, strict=True)) for i in range(n)]  # fmt: skip
    table = read_or_refuse(("\n".join(rows) + "\n").encode(), ".csv")
    if not any(numeric):
        assert table is None
        return
    assert table is not None
    assert table.names == [c for c, num in zip(cols, numeric, strict=True) if num]
    for c in table.names:
        assert same_bits(table[c], np.array(cells[c], dtype=np.float64)), c


# --- what dyfit writes, it reads --------------------------------------------------------

any_float64 = st.one_of(st.floats(), st.sampled_from([1e308, -1e308, 5e-324, -0.0, math.nan]))
DTYPES = {
    "f8": any_float64,
    "i8": st.integers(-(2**63), 2**63 - 1),
    "bool": st.booleans(),
    "f4": st.floats(width=32),
}


@fuzz(60)
@given(
    data=st.data(),
    suffix=st.sampled_from(FORMATS),
    n=st.integers(1, 20),
    cols=st.lists(names, min_size=1, max_size=4, unique=True),
)
def test_every_writable_table_reads_back_bit_for_bit(data, suffix, n, cols):
    tried("readers: round trip")
    columns = {}
    for c in cols:
        dtype = data.draw(st.sampled_from(sorted(DTYPES)))
        columns[c] = np.array(data.draw(st.lists(DTYPES[dtype], min_size=n, max_size=n)), dtype)
    table = EventTable(columns, {"note": data.draw(names)})
    with tempfile.TemporaryDirectory() as folder:
        path = write_events(table, Path(folder) / f"t{suffix}")
        back = read_events(path)
    assert back.names == cols and back.meta["note"] == table.meta["note"]
    for c, col in columns.items():
        want = col.astype(np.float64) if col.dtype == np.float32 else col
        assert same_bits(back[c], want), c


@fuzz(40)
@given(
    values=st.lists(any_float64, min_size=1, max_size=30),
    other=st.lists(st.sampled_from([0.0, math.inf, -math.inf, math.nan]), min_size=30),
)
def test_check_finite_refuses_or_drops_exactly_the_bad_events(values, other):
    tried("readers: round trip")
    n = len(values)
    table = EventTable({"costh": np.array(values), "phi": np.array(other[:n]), "run": np.arange(n)})
    good = np.isfinite(table["costh"]) & np.isfinite(table["phi"])
    if good.all():
        assert check_finite(table, ["costh", "phi"]) is table
        return
    with pytest.raises(InputError, match=f"{n - good.sum()} of {n} events with NaN or inf"):
        check_finite(table, ["costh", "phi"])
    if not good.any():
        with pytest.raises(InputError, match="no valid event is left"):
            check_finite(table, ["costh", "phi"], drop_invalid=True)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = check_finite(table, ["costh", "phi"], drop_invalid=True)
    assert [w.category for w in caught] == [DyfitWarning]
    assert np.array_equal(kept["run"], np.flatnonzero(good))


# --- column maps ------------------------------------------------------------------------

FILE_COLUMNS = ("mass", "pT", "costh", "label")


@pytest.fixture(scope="module")
def mapped_source(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("map")
    table = pa.table({
        "mass": [4.5, 5.0, 6.0], "pT": [0.1, 0.2, 0.3], "costh": [0.0, 0.5, -0.5],
        "label": ["a", "b", "c"],
    })  # fmt: skip
    pq.write_table(table, folder / "m.parquet")
    return {".parquet": (folder / "m.parquet").read_bytes()}


@fuzz(40)
@given(
    mapping=st.dictionaries(
        st.sampled_from(["mass", "pT", "costh", "x1", "weight"]),
        st.sampled_from([*FILE_COLUMNS, "absent", ""]),
        max_size=4,
    )
)
def test_column_maps_rename_or_refuse(mapped_source, mapping):
    tried("readers: map")
    table = read_or_refuse(mapped_source[".parquet"], ".parquet", columns=mapping)
    bad = [f for f in mapping.values() if f not in FILE_COLUMNS or f == "label"]
    assert (table is None) == bool(bad)
    if table is None:
        return
    source = {"mass": [4.5, 5.0, 6.0], "pT": [0.1, 0.2, 0.3], "costh": [0.0, 0.5, -0.5]}
    renamed = set(mapping) | set(mapping.values())
    want = {n: v for n, v in source.items() if n not in renamed}
    want |= {d: source[f] for d, f in mapping.items()}
    assert set(table.names) == set(want)
    for name, values in want.items():
        assert np.array_equal(table[name], values), name
