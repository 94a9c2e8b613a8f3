"""Jobs fanned out over Dask: ordered results, and a study on a LocalCluster of two processes
with the serial study's records."""

import numpy as np
import pytest
import torch

from dyfit.errors import InputError
from dyfit.fitting import TruthRatio
from dyfit.parallel import dask_client, map_jobs
from dyfit.studies import run_study
from dyfit.studies.pseudo import _single_process
from dyfit.toy import ToyExperiment

pytest.importorskip("distributed")
torch.set_num_threads(1)


def _untimed(records):
    return [{k: v for k, v in r.items() if not k.endswith("time_s")} for r in records]


def test_serial_map_keeps_order_and_reports_each_result():
    seen = []
    out = map_jobs(pow, [2, 3, 4], shared={"exp": 3}, on_result=lambda i, r: seen.append((i, r)))
    assert out == [8, 27, 64] and seen == [(0, 8), (1, 27), (2, 64)]


def test_study_on_a_local_cluster_matches_the_serial_study():
    thetas = [[1.0, 0.0, 0.0], [1.2, 0.1, 0.2]]
    args = (TruthRatio(), ToyExperiment(), thetas, 4, 1000, 2000)
    serial = run_study(*args, methods=("likelihood", "bce"), seed=3)
    # Jobs end in any order on the cluster; the records come back in the serial order.
    fanned = run_study(*args, methods=("likelihood", "bce"), seed=3, scheduler="local", workers=2)
    assert len(fanned.records) == len(serial.records) == 2 * 4 * 3
    assert _untimed(fanned.records) == _untimed(serial.records)
    # Different seeds give different fits: the comparison above can fail.
    other = run_study(*args, methods=("likelihood",), seed=4)
    assert not np.array_equal(other.records[0]["values"], serial.records[0]["values"])


def test_dask_settings_are_checked():
    with pytest.raises(InputError, match="only with --scheduler local"):
        with dask_client("tcp://127.0.0.1:8786", workers=2):
            pass
    with pytest.raises(InputError, match="no Dask scheduler file"):
        with dask_client("missing-scheduler.json"):
            pass


def test_simulation_workers_are_not_nested():
    from dyfit.simulation import Simulation

    sim = Simulation(workers=4)
    single = _single_process(sim)
    assert single.workers == 1 and sim.workers == 4
    toy = ToyExperiment()
    assert _single_process(toy) is toy
