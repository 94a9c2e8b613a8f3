"""Selection cuts as text, the data recipe and the real-data options of ``dyfit fit``."""

import json

import numpy as np
import pytest
import torch
import uproot
from click.testing import CliRunner

from dyfit.cli.fit import command as fit_command
from dyfit.data.events import EventTable
from dyfit.data.io import write_events
from dyfit.data.recipe import DataSpec, load_spec, merge_spec, read_selected
from dyfit.data.selection import apply_cuts, parse_cut
from dyfit.errors import InputError
from dyfit.physics.angular import THETA0
from dyfit.toy import ToyExperiment

torch.set_num_threads(1)


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    n = 1000
    return EventTable(
        {"mass": rng.uniform(4, 9, n), "xF": rng.uniform(-0.2, 1, n), "pT": rng.exponential(1, n)}
    )


@pytest.mark.parametrize(
    "text, oracle",
    [
        ("mass > 4.5 and xF < 0.8", lambda m, x, p: (m > 4.5) & (x < 0.8)),
        ("0 < xF <= 0.8", lambda m, x, p: (0 < x) & (x <= 0.8)),
        ("4.5 < mass < 8 < 10", lambda m, x, p: (4.5 < m) & (m < 8)),
        ("not (mass < 5) or pT**2 > 2", lambda m, x, p: ~(m < 5) | (p**2 > 2)),
        ("abs(xF - 0.3) * 2 < 1 and -pT != -1", lambda m, x, p: np.abs(x - 0.3) * 2 < 1),
        ("mass / pT >= 10 and mass == mass", lambda m, x, p: m / p >= 10),
    ],
)
def test_cuts_agree_with_numpy(table, text, oracle):
    expected = oracle(table["mass"], table["xF"], table["pT"])
    np.testing.assert_array_equal(parse_cut(text).mask(table), expected)


@pytest.mark.parametrize(
    "text, why",
    [
        ("mass", "not a condition"),
        ("mass > 4.5 && xF < 1", "and'/'or' for &&"),
        ("mass > 4.5 & xF < 1", "BitAnd"),
        ("__import__('os').system('true')", r"abs\(\) is the only function"),
        ("mass.real > 1", "Attribute"),
        ("mass[0] > 1", "Subscript"),
        ("'a' < mass", "no number"),
        ("True", "no number"),
        ("(lambda: 1)() > 0", r"abs\(\) is the only function"),
        ("abs(mass, 2) > 1", r"abs\(\) takes one argument"),
        ("mass > 4.5 and pT", "join conditions"),
        ("(mass > 1) + 1 > 0", "arithmetic takes numbers"),
        ("mass in (1, 2)", "only < <= > >= == != compare"),
        ("", "empty"),
        ("(" * 3000 + "1" + ")" * 3000, "too long"),
        ("-" * 1900 + "1 > 0", "nested too deeply|not an expression"),
    ],
)
def test_anything_off_the_whitelist_is_refused_in_one_line(text, why):
    with pytest.raises(InputError, match=why) as err:
        parse_cut(text)
    assert "\n" not in str(err.value)


def test_nan_and_overflow_fail_the_cut_quietly(table):
    t = table.with_columns({"mass": np.r_[np.nan, np.inf, table["mass"][2:]]})
    mask = parse_cut("mass ** 1000 > 0 and mass / 0 > -1").mask(t)  # no warning escapes
    assert not mask[0] and mask[1]


def test_apply_cuts_reports_the_flow_and_refuses_unknown_columns(table):
    selected, flow = apply_cuts(table, ["mass > 5", "xF < 0.8"])
    n1 = int(np.sum(table["mass"] > 5))
    assert flow == [("mass > 5", n1), ("xF < 0.8", len(selected))]
    assert np.all(selected["mass"] > 5) and np.all(selected["xF"] < 0.8)
    with pytest.raises(InputError, match="x1.*--columns"):
        apply_cuts(table, ["x1 > 0"])
    with pytest.raises(InputError, match="no event passes"):
        apply_cuts(table, ["mass > 100"])


def test_example_config_validates():
    spec = load_spec("examples/seaquest_tree.toml")
    assert spec.weight == "w_lumi" and spec.columns["mass"] == "dimuon_mass"
    merged = merge_spec(spec, file="other.root:T", cuts=["pT < 3"])
    assert merged.file == "other.root:T" and merged.cuts[-1] == "pT < 3"
    with pytest.raises(InputError, match="not an expression|no number"):
        merge_spec(spec, cuts=["mass >"])


RENAME = {"mass": "dimuon_mass", "costh": "costh_cs", "phi": "phi_cs"}


@pytest.fixture
def tree(tmp_path):
    """A toy sample as a foreign ROOT tree (own branch names, a weight branch), a nominal."""
    rng = np.random.default_rng(4)
    toy = ToyExperiment(cos_max=0.8)
    data = toy.simulate(4000, [0.8, 0.1, 0.2], rng)
    branches = {new: data[old] for old, new in RENAME.items()}
    branches["w_lumi"] = rng.normal(1.0, 0.2, len(data))
    with uproot.recreate(tmp_path / "dimuons.root") as f:
        f["Tree"] = branches
    write_events(toy.simulate(8000, THETA0, rng), tmp_path / "nominal.parquet")
    return tmp_path, branches


def test_read_selected_maps_weights_and_cuts(tree):
    folder, branches = tree
    spec = DataSpec(
        file=f"{folder}/dimuons.root:Tree",
        columns={v: k for k, v in {"dimuon_mass": "mass", "costh_cs": "costh"}.items()},
        weight="w_lumi",
        cuts=["mass > 5", "abs(costh) < 0.7"],
    )
    data, summary = read_selected(spec)
    keep = (branches["dimuon_mass"] > 5) & (np.abs(branches["costh_cs"]) < 0.7)
    np.testing.assert_array_equal(data["weight"], branches["w_lumi"][keep])
    assert summary["events_read"] == 4000 and summary["events_selected"] == keep.sum()
    assert summary["weight_sum_selected"] == pytest.approx(branches["w_lumi"][keep].sum())
    assert "w_lumi" not in data and "phi_cs" in data  # unmapped branches keep their names


def _cli(args):
    return CliRunner().invoke(fit_command, args, catch_exceptions=False)


def test_fit_command_on_a_foreign_tree(tree):
    folder, branches = tree
    common = [
        "--data", f"{folder}/dimuons.root:Tree",
        "--columns", ",".join(f"{k}={v}" for k, v in RENAME.items()),
        "--weight", "w_lumi",
        "--cut", "mass > 4.6",
        "--nominal", str(folder / "nominal.parquet"),
    ]  # fmt: skip
    dry = _cli([*common, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "after cut 'mass > 4.6'" in dry.output and "weight <- w_lumi" in dry.output
    # the truth oracle reads the angles; the tree has none: detector columns renamed to them
    truth = ["--columns", "true_costh=costh_cs,true_phi=phi_cs,mass=dimuon_mass,costh=costh_cs"]
    out = _cli([*common[:2], *truth, *common[4:], "--model", "truth", "--json", "--guard"])
    assert out.exit_code == 0, out.output
    obj = json.loads(out.stdout)
    keep = branches["dimuon_mass"] > 4.6
    assert obj["n_events"] == keep.sum()
    assert obj["sum_weights"] == pytest.approx(branches["w_lumi"][keep].sum(), rel=1e-12)
    assert obj["guard"]["passed"], obj["guard"]["failures"]
    assert [v["name"] for v in obj["guard"]["variables"]][:2] == ["mass", "costh"]
