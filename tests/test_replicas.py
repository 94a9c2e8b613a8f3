"""Training replicas: the same weights serially and on Dask, seed + k per replica, Poisson
bootstraps of fixed events, resuming a set of replicas, and ``dyfit fit --ensemble-dir``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dyfit.cli.main import main
from dyfit.data.io import write_events
from dyfit.errors import InputError
from dyfit.physics.angular import THETA0
from dyfit.toy import ToyExperiment
from dyfit.training.checkpoint import MANIFEST, load_model, read_manifest
from dyfit.training.config import TrainingConfig
from dyfit.training.loop import train
from dyfit.training.replicas import BootstrapSource, replica_dir, replica_dirs, train_replicas
from dyfit.training.resume import STATE
from dyfit.training.samples import TOY_FEATURES, FixedTrainingSource, TrainingSource

torch.set_num_threads(1)

TINY = dict(features=TOY_FEATURES, width=8, depth=1, validation_events=2000, batch_size=1024,
            events_per_epoch=4000, shards=2, epochs=2, threads=1, device="cpu", seed=5)  # fmt: skip
CONFIG = "width = 8\ndepth = 1\nvalidation_events = 2000\nbatch_size = 1024\nshards = 2\n"
CONFIG += 'threads = 1\ndevice = "cpu"\n'


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_model(run_dir).state_dict()


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


def test_replicas_on_dask_equal_the_serial_ones_and_a_plain_run_at_seed_plus_k(tmp_path):
    pytest.importorskip("distributed")
    config = TrainingConfig(**TINY | {"epochs": 1})
    serial = train_replicas(config, ToyExperiment(), tmp_path / "serial", 2)
    fanned = train_replicas(
        config, ToyExperiment(), tmp_path / "dask", 2, scheduler="local", workers=2
    )
    assert [s["replica"] for s in fanned] == [0, 1, 2]
    assert all(s["status"] == "trained" for s in serial + fanned)
    serial_dirs, dask_dirs = (
        [replica_dir(tmp_path / name, k) for k in range(3)] for name in ("serial", "dask")
    )
    for a, b in zip(serial_dirs, dask_dirs, strict=True):
        assert same(weights(a), weights(b))
    # The oracle: replica 1 is the ordinary training at seed + 1, and differs from the main run.
    config_1 = config.model_copy(update={"seed": config.seed + 1})
    model_1, _ = train(config_1, TrainingSource(ToyExperiment(), TOY_FEATURES))
    assert same(model_1.state_dict(), weights(tmp_path / "serial" / "replica-1"))
    assert not same(weights(tmp_path / "serial"), weights(tmp_path / "serial" / "replica-1"))
    assert read_manifest(tmp_path / "dask" / "replica-2")["training_config"]["seed"] == 7


def test_poisson_bootstrap_of_a_fixed_source(tmp_path):
    n = 20_000
    events = ToyExperiment().simulate(n, THETA0, np.random.default_rng(1))
    fixed = FixedTrainingSource(events, TOY_FEATURES, validation_fraction=0.2, seed=0)
    pool = fixed.pools["train"]["true_costh"]
    replica = BootstrapSource(fixed, seed=5, k=1)
    assert replica.pools["validation"] is fixed.pools["validation"]
    resampled = replica.pools["train"]["true_costh"]
    # Each event enters Poisson(1) times: the size is Poisson(N), sd sqrt(N); an event is
    # missing with probability 1/e, sd sqrt(p(1 - p)/N) for the fraction. 5 sd bounds.
    m = len(pool)
    assert abs(len(resampled) - m) < 5 * math.sqrt(m)
    missing = 1.0 - np.isin(pool, resampled).mean()
    p = math.exp(-1.0)
    assert abs(missing - p) < 5 * math.sqrt(p * (1 - p) / m)
    assert set(np.unique(resampled)) <= set(pool)
    again, other = BootstrapSource(fixed, 5, 1), BootstrapSource(fixed, 5, 2)
    assert np.array_equal(again.pools["train"]["true_costh"], resampled)
    assert not np.array_equal(other.pools["train"]["true_costh"][:100], resampled[:100])

    config = TrainingConfig(**TINY | {"epochs": 1})
    summaries = train_replicas(config, fixed, tmp_path / "run", 1)
    assert [s["status"] for s in summaries] == ["trained", "trained"]
    provenance = read_manifest(tmp_path / "run" / "replica-1")["provenance"]
    assert provenance["bootstrap"] == {"seed": 5, "replica": 1}
    assert provenance["events"]["train"] == len(resampled)
    assert "bootstrap" not in read_manifest(tmp_path / "run")["provenance"]


def test_cli_replicas_resume_and_fit_with_the_ensemble(tmp_path, capsys):
    config = tmp_path / "train.toml"
    config.write_text(CONFIG)
    run = tmp_path / "run"
    base = ["train", "--toy", "--config", str(config), "--events", "4000", "--epochs", "2",
            "--seed", "3", "--no-progress"]  # fmt: skip
    assert cli(["train", "--toy", "--scheduler", "local", "-o", str(run)]) == 2
    assert cli([*base, "--replicas", "1", "-o", str(run)]) == 0
    assert cli([*base, "--replicas", "1", "-o", str(run)]) == 2  # no silent retraining
    with pytest.raises(InputError, match="no replica-k"):
        replica_dirs(tmp_path)
    (run / "replica-2" / STATE).parent.mkdir(parents=True)
    with pytest.raises(InputError, match="replica-2 did not finish"):
        replica_dirs(run)
    (run / "replica-2" / STATE.parent).rmdir()

    # Two more replicas: the finished ones are kept; other settings are refused.
    replica_1 = (run / "replica-1" / MANIFEST).stat().st_mtime_ns
    capsys.readouterr()
    assert cli(["train", "--resume", str(run), "--replicas", "3", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["done", "done", "trained", "trained"]
    assert (run / "replica-1" / MANIFEST).stat().st_mtime_ns == replica_1
    assert [p.name for p in replica_dirs(run)] == ["replica-1", "replica-2", "replica-3"]
    # A replica killed after its last epoch's state: continued from it, to the same weights.
    before = weights(run / "replica-3")
    (run / "replica-3" / MANIFEST).unlink()
    capsys.readouterr()
    assert cli(["train", "--resume", str(run), "--replicas", "3", "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("resumed")
    assert same(weights(run / "replica-3"), before)
    assert cli(["train", "--resume", str(run), "--replicas", "3", "--epochs", "3"]) == 2

    rng = np.random.default_rng(9)
    toy = ToyExperiment()
    data = write_events(toy.simulate(3000, [1.2, 0.1, 0.1], rng), tmp_path / "d.parquet")
    nominal = write_events(toy.simulate(9000, THETA0, rng), tmp_path / "n.parquet")

    def fit(*extra: str) -> dict:
        capsys.readouterr()
        argv = ["fit", "--data", str(data), "--nominal", str(nominal), "--json", "--no-guard"]
        assert cli([*argv, *extra]) == 0
        return json.loads(capsys.readouterr().out)

    result = fit("--model", str(run), "--ensemble-dir", str(run))
    values = np.array(result["ensemble_values"])
    assert values.shape == (4, 3)
    assert np.allclose(result["covariance"]["training"], np.cov(values, rowvar=False))
    # The ensemble's θ̂ are the fits of each replica alone.
    alone = fit("--model", str(run / "replica-2"))["parameters"]
    assert np.allclose(values[2], [alone[n]["value"] for n in ("lambda", "mu", "nu")])
