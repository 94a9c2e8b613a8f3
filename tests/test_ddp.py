"""Data-parallel training: ``torchrun --nproc-per-node 2 -m dyfit train`` on two CPU processes.

Both runs see the same events: each sample is drawn in seeded shards and the two ranks
draw disjoint shards whose union is the one-process sample (so the validation sets, and
the Bayes bounds on them, agree to rounding). What differs is the batch composition
(each rank shuffles its own events; each step averages a 512-event batch per rank) and,
on CPU, batch norm over 512 instead of 1024 events: the DDP run is one more draw of
the run-to-run scatter under reshuffling. That scatter, measured with this config
(seed 1, six batch orders via ``loop.ORDER``), is σ = 1.8·10⁻⁴ nats in the final
validation BCE; the difference of two draws has σ√2, and we allow 4σ√2 = 1.0·10⁻³,
well below the 1.6·10⁻³ that separates a trained model from an untrained one here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import multiprocessing

from dyfit.toy import ToyExperiment
from dyfit.training import distributed
from dyfit.training.config import TrainingConfig
from dyfit.training.loop import train
from dyfit.training.samples import TOY_FEATURES, TrainingSource

torch.set_num_threads(1)

SRC = Path(__file__).resolve().parents[1] / "src"
TORCHRUN = Path(sys.executable).with_name("torchrun")
ENV = os.environ | {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
SETTINGS = dict(phi_encoding="cossin", width=32, depth=2, validation_events=50_000, threads=1,
                batch_size=1024, learning_rate=3e-3, schedule="none", device="cpu")  # fmt: skip
SIGMA_ORDER = 1.8e-4  # nats; see the module docstring


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside python")
def test_torchrun_matches_one_process(tmp_path):
    config = tmp_path / "train.toml"
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in SETTINGS.items()))
    run = tmp_path / "run"
    argv = [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "dyfit", "train",
            "-o", str(run), "--toy", "--config", str(config), "--events", "100000",
            "--epochs", "4", "--seed", "1", "--no-progress"]  # fmt: skip
    done = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("wrote") == 1  # rank 0 alone reports and writes
    ddp = json.loads((run / "manifest.json").read_text())["history"]
    assert ddp["world_size"] == 2

    one = TrainingConfig(features=TOY_FEATURES, events_per_epoch=100_000, epochs=4, seed=1,
                         **SETTINGS)  # fmt: skip
    _, history = train(one, TrainingSource(ToyExperiment(), TOY_FEATURES))
    assert ddp["bayes_loss"] == pytest.approx(history.bayes_loss, rel=1e-12)  # same events
    difference = ddp["records"][-1]["val_loss"] - history.records[-1]["val_loss"]
    assert abs(difference) < 4 * 2**0.5 * SIGMA_ORDER, difference


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _replica(rank: int, port: int, perturb: bool, out: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    try:
        world = distributed.current()
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        if perturb and rank == 1:
            with torch.no_grad():
                model[1].running_mean[2] += 1e-7
        try:
            distributed.check_in_sync(world, model)
            result = "in sync"
        except RuntimeError as err:
            result = str(err)
        Path(out, f"rank{rank}").write_text(result)
    finally:
        distributed.shutdown()


@pytest.mark.parametrize("perturb", [False, True])
def test_check_in_sync_sees_one_differing_buffer(tmp_path, perturb):
    multiprocessing.spawn(_replica, (_free_port(), perturb, str(tmp_path)), nprocs=2)
    results = {(tmp_path / f"rank{r}").read_text() for r in range(2)}
    assert results == (
        {"data-parallel replicas disagree in 1.running_mean"} if perturb else {"in sync"}
    )


def test_python_m_dyfit_runs():
    done = subprocess.run([sys.executable, "-m", "dyfit", "--version"], env=ENV,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("dyfit")
