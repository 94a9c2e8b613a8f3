"""Fuzzing the command line: bad files, bad θ strings, bad configs, edited checkpoints.

Every bad input must end in exit code 2 and exactly one stderr line starting
"dyfit: error:", with no traceback and no file left in the output folder (no partial
result, no *.tmp); a damaged data file that still reads whole must fit normally.
Most cases run ``dyfit`` in this process; a few run it as a subprocess, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dyfit.data.io import write_events
from dyfit.networks import ParametrizedClassifier
from dyfit.physics.angular import THETA0
from dyfit.physics.prior import ThetaPrior
from dyfit.toy import ToyExperiment
from dyfit.training.checkpoint import MANIFEST, save_model
from fuzz_cases import assert_refused, files_under, fuzz, report_cases, run_cli, tried
from test_fuzz_readers import damage, damaged

torch.set_num_threads(1)
_report = report_cases("cli")
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A toy model (untrained: the fit's quality is not the point), data and nominal files."""
    folder = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    model = ParametrizedClassifier(("mass", "phi", "costh"), ThetaPrior(), 4, 1, "cossin", False)
    save_model(model, folder / "model", provenance={"source": "toy", "cos_max": 0.5})
    rng = np.random.default_rng(5)
    paths = {"model": folder / "model"}
    for name, n in [("data", 200), ("nominal", 600)]:
        paths[name] = write_events(
            ToyExperiment().simulate(n, THETA0, rng), folder / f"{name}.parquet"
        )
    return paths


def fit_argv(inputs, data: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", "--model", str(inputs["model"]), "--data", str(data),
            "--nominal", str(inputs["nominal"]), "-o", str(out), *extra]  # fmt: skip


@pytest.mark.slow  # each readable case fits and draws the scans: ~8 s on one loaded core
@fuzz(8)
@given(suffix=st.sampled_from([".parquet", ".root", ".csv"]), how=damage)
def test_fit_on_damaged_data_refuses_or_fits(inputs, suffix, how):
    tried("cli")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        good = write_events(ToyExperiment().simulate(200, THETA0, np.random.default_rng(1)),
                            folder / f"good{suffix}")  # fmt: skip
        bad = folder / f"data{suffix}"
        bad.write_bytes(damaged(good.read_bytes(), how))
        before = files_under(folder)
        code, out, err = run_cli(*fit_argv(inputs, bad, folder / "out", "--json"))
        if code == 0:  # the damage spared what the fit reads
            assert json.loads(out)["method"] == "likelihood"
            assert (folder / "out" / "result.json").is_file()
        else:
            assert_refused(code, err, folder, before)


theta_text = st.text(max_size=20) | st.lists(
    st.sampled_from(["1", "0", "-0.5", "2", "1e308", "nan", "inf", ",", "=", "lambda", "mu", "nu"]),
    max_size=8,
).map("".join)


@fuzz(60)
@given(text=theta_text, where=st.sampled_from(["generate", "check-ratio", "fit-start"]))
def test_any_theta_string_is_refused_in_one_line(inputs, text, where):
    tried("cli")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if where == "generate":  # a valid θ then meets the unusable output name: nothing runs
            argv = ["generate", "--events", "10", "--theta", text, "-o", str(folder / "e.txt")]
        elif where == "check-ratio":  # a valid θ then meets a missing checkpoint
            argv = ["check-ratio", str(folder / "absent"), "--theta", text]
        else:  # a valid start then meets a data file without the model's features
            (folder / "d.csv").write_text("x\n1\n2\n")
            argv = fit_argv(inputs, folder / "d.csv", folder / "out", "--start", text)
        before = files_under(folder)
        code, _, err = run_cli(*argv)
        assert_refused(code, err, folder, before)


BAD_CONFIGS = ["width = -1", "epochs = 'x'", "[a]\nb=1", "nope = 1", "prior = {mu = [1, 0]}"]


@fuzz(40)
@given(doc=st.text(max_size=80) | st.sampled_from(BAD_CONFIGS))
def test_train_with_any_config_is_refused_before_training(doc):
    tried("cli")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "c.toml").write_text(doc)
        before = files_under(folder)
        # --events 1 is below the minimum, so even a valid config stops before training
        code, _, err = run_cli("train", "-o", str(folder / "run"), "--config",
                               str(folder / "c.toml"), "--events", "1", "--toy")  # fmt: skip
        assert_refused(code, err, folder, before)


@fuzz(40)
@given(
    key=st.sampled_from(["kind", "format_version", "weights", "architecture", "provenance"]),
    value=st.none() | st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=2),
    command=st.sampled_from(["fit", "check-ratio"]),
)
def test_edited_checkpoints_are_refused_in_one_line(inputs, key, value, command):
    # check-ratio falls back to the default simulation without a provenance: not an error
    if command == "check-ratio" and key == "provenance":
        return
    tried("cli")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        run = folder / "model"
        run.mkdir()
        for f in inputs["model"].iterdir():
            (run / f.name).write_bytes(f.read_bytes())
        manifest = json.loads((run / MANIFEST).read_text())
        manifest[key] = value
        (run / MANIFEST).write_text(json.dumps(manifest))
        before = files_under(folder)
        if command == "fit":  # no --nominal: the edited provenance must be read too
            argv = ["fit", "--model", str(run), "--data", str(inputs["data"]),
                    "-o", str(folder / "out")]  # fmt: skip
        else:
            argv = ["check-ratio", str(run), "--events", "10", "-o", str(folder / "out")]
        code, _, err = run_cli(*argv)
        assert_refused(code, err, folder, before)


@pytest.mark.parametrize("case", ["folder-as-config", "file-as-model", "cut-parquet"])
def test_refusals_in_a_subprocess_are_one_clean_line(inputs, tmp_path, case):
    tried("cli")
    data = tmp_path / "cut.parquet"
    data.write_bytes(inputs["data"].read_bytes()[:300])
    argv = {
        "folder-as-config": ["train", "-o", str(tmp_path / "run"), "--config", str(tmp_path)],
        "file-as-model": ["fit", "--model", str(data), "--data", str(inputs["data"])],
        "cut-parquet": fit_argv(inputs, data, tmp_path / "out"),
    }[case]
    before = files_under(tmp_path)
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "dyfit", *argv], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert proc.stdout == ""
    assert_refused(proc.returncode, proc.stderr, tmp_path, before)
