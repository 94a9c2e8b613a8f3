"""Event files: exact round trips, column mapping, foreign files, one-line errors on bad input."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dyfit.data.events import EventTable
from dyfit.data.io import check_finite, read_events, write_events
from dyfit.errors import DyfitWarning, InputError

SUFFIXES = [".parquet", ".pq", ".root", ".csv"]


def make_table(n: int = 257) -> EventTable:
    rng = np.random.default_rng(11)
    mass = 4.5 + rng.exponential(1.0, n)
    # values whose shortest decimal form is long, tiny, signed zero, huge and non-finite
    mass[:8] = [0.1, 1.0 / 3.0, 5e-324, -0.0, 1e300, np.nan, np.inf, -np.inf]
    columns = {
        "mass": mass,
        "costh": rng.uniform(-1.0, 1.0, n),
        "theta_lambda": np.ones(n),  # a float column whose values all look like integers
        "run": rng.integers(-(2**40), 2**40, n),
        "triggered": rng.uniform(size=n) < 0.5,
        "weight": rng.normal(size=n).astype(np.float32),
    }
    meta = {"theta": np.array([1.0, 0.0, 0.1]), "n_generated": 40_000, "generator": {"k": [1, 2]}}
    return EventTable(columns, meta)


EXPECTED_META = {
    "theta": [1.0, 0.0, 0.1],
    "n_generated": 40_000,
    "generator": {"k": [1, 2]},
    "units": {"mass": "GeV", "costh": "", "theta_lambda": ""},
}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_is_exact(tmp_path: Path, suffix: str) -> None:
    table = make_table()
    path = write_events(table, tmp_path / f"events{suffix}")
    back = read_events(path)
    assert back.names == table.names
    for name in table.names:
        # the file holds float64/int64/bool: float32 widens exactly, the rest is untouched
        want = np.asarray(table[name])
        want = want.astype(np.float64) if want.dtype == np.float32 else want
        assert same_bits(back[name], want), name
    assert back.meta == EXPECTED_META
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"events{suffix}"]  # no temp left


def test_format_argument_overrides_the_suffix(tmp_path: Path) -> None:
    path = write_events(make_table(), tmp_path / "events.parquet", format="csv")
    assert path.read_bytes().startswith(b"# dyfit: {")


@pytest.mark.parametrize("suffix", [".parquet", ".root", ".csv"])
def test_column_mapping_renames(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(2)
    table = EventTable({"dimuon_mass": rng.normal(6, 1, 50), "dpt": rng.gamma(2, 0.5, 50)})
    table.meta["units"] = {"dimuon_mass": "GeV", "dpt": "GeV"}
    path = write_events(table, tmp_path / f"foreign{suffix}")
    back = read_events(path, columns={"mass": "dimuon_mass", "pT": "dpt"})
    assert sorted(back.names) == ["mass", "pT"]
    assert same_bits(back["mass"], table["dimuon_mass"])
    assert same_bits(back["pT"], table["dpt"])
    assert back.meta["units"] == {"mass": "GeV", "pT": "GeV"}


def test_plain_csv_from_another_tool(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("# exported by some tool\nevt,mass,label\n1,5.25,a\n2,,b\n3,7.5e0,c\n")
    back = read_events(path)
    assert back.names == ["evt", "mass"]  # the text column is skipped when not asked for
    assert back["evt"].dtype == np.int64 and list(back["evt"]) == [1, 2, 3]
    assert back["mass"][0] == 5.25 and np.isnan(back["mass"][1]) and back["mass"][2] == 7.5
    assert back.meta == {}


def test_root_tree_choice_and_jagged_branches(tmp_path: Path) -> None:
    path = tmp_path / "foreign.root"
    with uproot.recreate(path) as file:
        file.mktree("dimuons", {"m": np.float32, "hits": "var * float64"}).extend(
            {"m": np.array([5.0, 6.5], np.float32), "hits": [[1.0], [2.0, 3.0]]}
        )
        file.mktree("runs", {"run": np.int32}).extend({"run": np.array([7], np.int32)})
    back = read_events(f"{path}:dimuons")
    # the jagged branch is skipped; uproot's counter branch nhits is a plain column
    assert back.names == ["m", "nhits"] and same_bits(back["m"], np.array([5.0, 6.5]))
    assert list(back["nhits"]) == [1, 2]
    assert list(read_events(path, tree="runs")["run"]) == [7]
    with pytest.raises(InputError, match=r"no tree 'events'; trees there: dimuons, runs"):
        read_events(path)
    with pytest.raises(InputError, match=r"hits are not numeric"):
        read_events(f"{path}:dimuons", columns={"hit": "hits"})


def _good(suffix: str):
    return lambda tmp_path: write_events(make_table(), tmp_path / f"good{suffix}")


def _write(name: str, data: bytes | str):
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    return make


def _truncated(suffix: str, keep: float):
    def make(tmp_path: Path) -> Path:
        data = write_events(make_table(), tmp_path / f"good{suffix}").read_bytes()
        return _write(f"cut{suffix}", data[: int(keep * len(data))])(tmp_path)

    return make


def _zero_rows_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "zero.parquet"
    pq.write_table(pa.table({"mass": np.zeros(0)}), path)
    return path


BAD_FILES = {
    "missing": (lambda p: p / "absent.parquet", {}, "no such file"),
    "empty": (_write("empty.parquet", b""), {}, "is empty"),
    "suffix": (_write("events.txt", "a\n1\n"), {}, "cannot tell the event file format"),
    "parquet-cut": (_truncated(".parquet", 0.6), {}, "truncated or corrupted"),
    "root-cut": (_truncated(".root", 0.3), {}, "truncated or corrupted"),
    "csv-cut-mid-line": (_truncated(".csv", 0.5), {}, "ends in the middle of a line"),
    "random-root": (_write("junk.root", bytes(range(256)) * 8), {}, "cannot be read as root"),
    "no-tree": (_good(".root"), {"tree": "nope"}, "no tree 'nope'; trees there: events"),
    "mapped-missing": (
        _good(".parquet"),
        {"columns": {"mass": "zz"}},
        "no column zz (for mass); it has",
    ),
    "not-numeric": (_write("t.csv", "a,b\n1,x\n"), {"columns": {"q": "b"}}, "b are not numeric"),
    "no-numeric": (_write("t.csv", "a,b\nx,y\n"), {}, "has no numeric columns; it has a, b"),
    "zero-rows-parquet": (_zero_rows_parquet, {}, "holds no events"),
    "zero-rows-csv": (_write("t.csv", "mass,pT\n"), {}, "holds no events"),
    "bad-header": (_write("t.csv", '# dyfit: {"meta": \nmass\n1\n'), {}, "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_one_line(tmp_path: Path, case: str) -> None:
    make, kwargs, message = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(InputError) as err:
        read_events(path, **kwargs)
    text = str(err.value)
    assert message in text and path.name in text and "\n" not in text


def test_csv_cut_at_a_line_end_is_caught(tmp_path: Path) -> None:
    data = write_events(make_table(), tmp_path / "good.csv").read_bytes()
    cut = data[: data.rindex(b"\n", 0, len(data) - 1) + 1]  # drop the last row exactly
    (tmp_path / "cut.csv").write_bytes(cut)
    with pytest.raises(InputError, match="has 256 events but its header says 257"):
        read_events(tmp_path / "cut.csv")


def test_missing_uproot_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "uproot", None)  # makes `import uproot` fail
    with pytest.raises(InputError, match=r"pip install 'dyfit\[root\]'"):
        write_events(make_table(), tmp_path / "events.root")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "table, message",
    [
        (EventTable({"mass": np.zeros(0)}), "no events to write"),
        (EventTable({"tag": np.array(["a", "b"])}), "tag is not a flat numeric column"),
        (EventTable({"mass": np.ones(2)}, {"when": object()}), "metadata cannot be stored"),
    ],
)
def test_unwritable_tables(tmp_path: Path, table: EventTable, message: str) -> None:
    with pytest.raises(InputError, match=message):
        write_events(table, tmp_path / "out.parquet")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


# Damaged files must give InputError (or, where the damage spared every byte read, the
# original table): never another exception and never silently different data.
@pytest.fixture(scope="module")
def good_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("good")
    table = EventTable({"mass": np.linspace(4.5, 9.0, 300), "n": np.arange(300)}, {"a": 1})
    return {
        s: write_events(table, folder / f"good{s}").read_bytes()
        for s in (".parquet", ".root", ".csv")
    }


def _read_damaged(data: bytes, suffix: str, original: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"damaged{suffix}"
        path.write_bytes(data)
        try:
            back = read_events(path)
        except InputError as err:
            assert "\n" not in str(err)
            return
        ref = Path(folder) / f"ref{suffix}"
        ref.write_bytes(original)
        want = read_events(ref)
        assert back.names == want.names
        assert all(same_bits(back[n], want[n]) for n in want.names)


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(suffix=st.sampled_from([".parquet", ".root", ".csv"]), cut=st.floats(0.0, 1.0))
def test_truncated_files(good_files, suffix: str, cut: float) -> None:
    data = good_files[suffix]
    _read_damaged(data[: int(cut * (len(data) - 1))], suffix, data)


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    suffix=st.sampled_from([".parquet", ".root"]),
    junk=st.binary(min_size=1, max_size=4096),
    keep_magic=st.booleans(),
)
def test_random_bytes(good_files, suffix: str, junk: bytes, keep_magic: bool) -> None:
    data = good_files[suffix]
    if keep_magic:  # get past the first check of the format: a valid head, garbage after
        junk = data[:64] + junk + (data[-8:] if suffix == ".parquet" else b"")
    _read_damaged(junk, suffix, data)


def test_check_finite_refuses_or_drops() -> None:
    table = EventTable(
        {"a": np.array([1.0, np.nan, 3.0, 4.0]), "b": np.array([0.0, 1.0, np.inf, 2.0])}
    )
    with pytest.raises(InputError, match=r"2 of 4 events with NaN or inf \(a: 1, b: 1\)"):
        check_finite(table, ["a", "b"])
    with pytest.raises(InputError, match=r"1 of 4 events with NaN or inf \(a: 1\)"):
        check_finite(table, ["a"])
    with pytest.warns(DyfitWarning, match="dropped 2 of 4 events"):
        kept = check_finite(table, ["a", "b"], drop_invalid=True)
    assert list(kept["a"]) == [1.0, 4.0] and list(kept["b"]) == [0.0, 2.0]
    clean = table.select(np.array([0, 3]))
    assert check_finite(clean, ["a", "b"]) is clean
    with pytest.raises(InputError, match="no valid event is left"):
        check_finite(table.select(np.array([1])), ["a"], drop_invalid=True)
    with pytest.raises(InputError, match="lacks column"):
        check_finite(table, ["zz"])


def test_metadata_json_in_every_format(tmp_path: Path) -> None:
    table = make_table(10)
    pq_meta = pq.read_schema(write_events(table, tmp_path / "e.parquet")).metadata[b"dyfit"]
    assert json.loads(pq_meta) == EXPECTED_META
    with uproot.open(write_events(table, tmp_path / "e.root")) as file:
        assert json.loads(str(file["dyfit_meta"])) == EXPECTED_META
        assert file["events"].num_entries == 10
    first = write_events(table, tmp_path / "e.csv").read_text().splitlines()[0]
    header = json.loads(first.removeprefix("# dyfit: "))
    assert header["meta"] == EXPECTED_META and header["events"] == 10
