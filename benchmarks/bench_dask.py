"""A pseudo-experiment study run serially and fanned out over a Dask LocalCluster.

The same study (default: 200 toys of the analytic toy at one θ, 20 000 events and a fresh
60 000-event nominal sample each, likelihood fit + truth-level oracle) is run in this
process and on a LocalCluster of ``--workers`` processes (one thread each), started once
and joined by address, so its start-up (timed apart) is not in the study's time. The two
alternate in ``--rounds`` slices of the toys, so that a change in the machine's load hits
both alike. The records must agree (the fan-out only moves work); the speed-up is printed
against the serial run of the same invocation. Run:
``OMP_NUM_THREADS=1 python benchmarks/bench_dask.py [--toys 200] [--workers 2] [--rounds 4]``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from dyfit.fitting import TruthRatio
from dyfit.parallel import dask_client
from dyfit.studies import run_study
from dyfit.toy import ToyExperiment


def _untimed(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.endswith("time_s")} for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--toys", type=int, default=200)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, source = TruthRatio(), ToyExperiment()
    per_round = args.toys // args.rounds
    print(
        f"{args.rounds} x {per_round} toys of {args.events} events; "
        f"load average before: {os.getloadavg()[0]:.1f}"
    )

    start = time.perf_counter()
    with dask_client("local", args.workers) as client:
        t_start = time.perf_counter() - start
        address = client.scheduler.address
        t_serial = t_dask = 0.0
        same = True
        for r in range(args.rounds):
            # Each round is its own study (seed r): the same toys both ways.
            study = (model, source, [[1.2, 0.1, 0.2]], per_round, args.events, 3 * args.events)
            start = time.perf_counter()
            serial = run_study(*study, seed=r)
            t_serial += time.perf_counter() - start
            start = time.perf_counter()
            fanned = run_study(*study, seed=r, scheduler=address)
            t_dask += time.perf_counter() - start
            same &= _untimed(fanned.records) == _untimed(serial.records)
            print(f"  round {r}: serial {t_serial:8.1f} s, dask {t_dask:8.1f} s (cumulative)")
    print(f"LocalCluster({args.workers} workers) start-up: {t_start:.1f} s (not counted)")
    print(
        f"serial {t_serial:.1f} s, dask {t_dask:.1f} s: serial / dask = {t_serial / t_dask:.2f}x"
        f"  (ideal {args.workers}x on {args.workers} free cores)"
    )
    print(f"records identical to serial: {same}; load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
