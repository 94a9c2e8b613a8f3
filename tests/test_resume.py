"""Resuming a killed training run: the same final model as an uninterrupted run, bit for bit.

Every draw and batch order is seeded per epoch and the state after each epoch (weights,
Adam's moments, scheduler, early stopping, history) is written atomically, so on CPU
with a fixed thread count a resumed run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dyfit.cli.main import main
from dyfit.errors import CheckpointError
from dyfit.toy import ToyExperiment
from dyfit.training.checkpoint import MANIFEST, load_model
from dyfit.training.config import TrainingConfig
from dyfit.training.loop import train
from dyfit.training.resume import STATE, read_state
from dyfit.training.samples import TOY_FEATURES, TrainingSource

torch.set_num_threads(1)

SRC = Path(__file__).resolve().parents[1] / "src"
CONFIG = "width = 16\ndepth = 2\nvalidation_events = 10000\nbatch_size = 2048\nthreads = 1\n"
CONFIG += 'device = "cpu"\nlearning_rate = 3e-3\n'
EPOCHS = 6


def args(tmp_path: Path, *extra: str) -> list[str]:
    config = tmp_path / "train.toml"
    config.write_text(CONFIG)
    return ["train", "--toy", "--config", str(config), "--events", "20000", "--seed", "3",
            "--epochs", str(EPOCHS), "--no-progress", *extra]  # fmt: skip


def cli(argv: list[str]) -> int:
    """``dyfit argv`` in this process; the exit code."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


def subprocess_cli(argv: list[str]) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "dyfit", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run."""
    tmp = tmp_path_factory.mktemp("reference")
    assert cli([*args(tmp, "-o", str(tmp / "run"))]) == 0
    return tmp / "run"


@pytest.fixture
def interrupted(tmp_path) -> Path:
    """A run stopped after its epoch-1 state was written (the callback fires before epoch 2's)."""

    class Stop(Exception):
        pass

    def stop(record, model):
        if record["epoch"] == 2:
            raise Stop

    config = TrainingConfig(features=TOY_FEATURES, width=16, depth=2, validation_events=10_000,
                            batch_size=2048, threads=1, device="cpu", learning_rate=3e-3,
                            events_per_epoch=20_000, seed=3, epochs=EPOCHS)  # fmt: skip
    with pytest.raises(Stop):
        train(config, TrainingSource(ToyExperiment(), TOY_FEATURES), callback=stop,
              checkpoint=tmp_path / "run")  # fmt: skip
    args(tmp_path)  # writes train.toml
    return tmp_path / "run"


def test_sigkill_then_resume_gives_the_uninterrupted_model(reference, tmp_path):
    run = tmp_path / "run"
    process = subprocess_cli(args(tmp_path, "-o", str(run)))
    deadline = time.monotonic() + 120
    epoch = -1
    while epoch < 1 and process.poll() is None and time.monotonic() < deadline:
        try:
            epoch = read_state(run)["epoch"]
        except CheckpointError:  # not written yet
            time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = read_state(run)["epoch"]
    assert 1 <= killed_at < EPOCHS - 1 and not (run / MANIFEST).exists()

    process = subprocess_cli(["train", "--resume", str(run), "--no-progress"])
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "wrote" in out
    resumed, uninterrupted = load_model(run), load_model(reference)
    for (name, a), b in zip(resumed.state_dict().items(), uninterrupted.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(a, b), name
    history = read_state(run)["history"]
    assert history["resumed_at"] == [killed_at + 1]
    assert [r["val_loss"] for r in history["records"]] == [
        r["val_loss"] for r in read_state(reference)["history"]["records"]
    ]


def test_resuming_a_finished_run_does_not_train(reference, capsys):
    before = (reference / "model.safetensors").read_bytes()
    assert cli(["train", "--resume", str(reference)]) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert (reference / "model.safetensors").read_bytes() == before


def test_resume_with_another_config_is_refused(interrupted, capsys):
    assert cli(["train", "--resume", str(interrupted), "--epochs", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "epochs = 6, not 9" in err


def test_training_into_a_killed_run_points_to_resume(interrupted, capsys):
    assert cli(args(interrupted.parent, "-o", str(interrupted))) == 2
    assert f"--resume {interrupted}" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_state_is_refused(interrupted, capsys, damage):
    path = interrupted / STATE
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-10] ^= 0xFF  # a byte of tensor data: only the recorded sha256 can notice
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    assert cli(["train", "--resume", str(interrupted)]) == 2
    assert "corrupted" in capsys.readouterr().err


def test_resume_continues_an_interrupted_run_in_process(interrupted, reference, capsys):
    """The resume after a clean interruption also ends with the uninterrupted model."""
    assert cli(["train", "--resume", str(interrupted)]) == 0
    for a, b in zip(load_model(interrupted).state_dict().values(),
                    load_model(reference).state_dict().values(), strict=True):  # fmt: skip
        assert torch.equal(a, b)
