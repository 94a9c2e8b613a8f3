"""A study killed mid-run resumes from its journal and ends with the uninterrupted study.json;
a damaged last line is run again; another study's folder is refused."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dyfit.cli.main import main
from dyfit.errors import InputError
from dyfit.fitting import TruthRatio
from dyfit.studies import run_study
from dyfit.studies.journal import JOURNAL, ToyJournal, fingerprint
from dyfit.toy import ToyExperiment

torch.set_num_threads(1)

THETAS = [[1.0, 0.0, 0.0], [1.2, 0.1, 0.2]]
TOYS, EVENTS = 20, 2000
ARGS = ["study", "--model", "truth", "--source", "toy", "--toys", str(TOYS)]
ARGS += ["--events", str(EVENTS), "--theta", "1,0,0", "--theta", "1.2,0.1,0.2"]
SRC = Path(__file__).resolve().parents[1] / "src"


def _untimed(obj):
    """study.json without the wall-clock fields, which no two runs share."""
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if not k.endswith("time_s")}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def _journal_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_killed_study_resumes_to_the_same_result(tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dyfit", *ARGS, "-o", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _journal_lines(out / JOURNAL) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    still_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_kept = _journal_lines(out / JOURNAL) - 1  # the header line
    # The kill must have come mid-study, with some toys kept and some left to do.
    assert still_running and 5 <= n_kept < 2 * TOYS
    assert not (out / "study.json").exists()
    # A kill inside a write leaves a cut line: simulate one, it must be run again.
    with open(out / JOURNAL, "ab") as fh:
        fh.write(b'{"theta_index": 1, "toy": 19, "records": [{"meth')

    with pytest.raises(SystemExit) as stop:
        main([*ARGS, "-o", str(out)])
    assert stop.value.code == 0
    lines = (out / JOURNAL).read_text().splitlines()
    assert len(lines) == 1 + 2 * TOYS and all(json.loads(line) for line in lines)

    reference = run_study(TruthRatio(), ToyExperiment(), THETAS, TOYS, EVENTS, 3 * EVENTS)
    reference.save(tmp_path / "reference", plots=False)
    resumed = json.loads((out / "study.json").read_text())
    expected = json.loads((tmp_path / "reference" / "study.json").read_text())
    assert _untimed(resumed) == _untimed(expected)


def test_another_study_in_the_folder_is_refused(tmp_path, capsys):
    ToyJournal(tmp_path, {"toys": 3})
    with pytest.raises(SystemExit) as stop:
        main([*ARGS, "-o", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "another study (differs in" in err[-1] and "toys" in err[-1]


@pytest.mark.parametrize(
    "change",
    [
        {"source": ToyExperiment(0.6)},
        {"model": TruthRatio(abar=(1.0, 0.1, 0.0, 0.0))},
        {"n_nominal": 700},
    ],
)
def test_journal_knows_its_study(tmp_path, change):
    setup = {"model": TruthRatio(), "source": ToyExperiment(), "n_nominal": 600}
    first = run_study(
        setup["model"], setup["source"], THETAS, 2, 200, setup["n_nominal"], journal=tmp_path
    )
    # The same study again is read back from the journal, not recomputed.
    again = run_study(
        setup["model"], setup["source"], THETAS, 2, 200, setup["n_nominal"], journal=tmp_path
    )
    assert again.records == json.loads(json.dumps(first.records))
    setup |= change
    with pytest.raises(InputError, match="another study"):
        run_study(
            setup["model"], setup["source"], THETAS, 2, 200, setup["n_nominal"], journal=tmp_path
        )


def test_fingerprint_follows_the_weights():
    a, b = TruthRatio(), TruthRatio()
    assert fingerprint(a) == fingerprint(b) and fingerprint(None) is None
    b.abar[1] = np.nextafter(b.abar[1].item(), 1.0)  # one ulp
    assert fingerprint(a) != fingerprint(b)
