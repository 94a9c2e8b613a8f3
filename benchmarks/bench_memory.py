"""Peak memory of ``dyfit fit`` on a 10^7-event data file and a 10^7-event nominal file.

The files are made fast: toy events (``dyfit.toy``, 2·10^5 per file) resampled with
replacement to ``--events`` each, padded with ``--extra-columns`` float64 columns so
that they are as wide as a simulated file (muon momenta, truth kinematics, …). Each step
runs in its own process and its peak RSS is read with ``os.wait4`` (``ru_maxrss``):

1. the imports alone (python, numpy, torch, dyfit): the floor;
2. ``dyfit fit --model truth --method likelihood``: it reads only the columns the fit
   needs (``fit_columns``) and evaluates the model in chunks;
3. the reference, in the same run: the same fit on the files read whole.

The goal is ≤ 4 GiB for step 2. Run:
``OMP_NUM_THREADS=1 python benchmarks/bench_memory.py [--events 10000000] [--keep DIR]``
(``--keep DIR``: write the files there and reuse them on the next run).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dyfit.data.events import EventTable
from dyfit.data.io import write_events
from dyfit.physics.angular import THETA0
from dyfit.toy import ToyExperiment

THETA = np.array([1.2, 0.1, 0.2])
WHOLE = """
import sys
from dyfit.data.io import read_events
from dyfit.fitting import TruthRatio, fit
r = fit(TruthRatio(), read_events(sys.argv[1]), read_events(sys.argv[2]), "likelihood")
print(r.values)
"""


def make_file(path: Path, theta: np.ndarray, n: int, extra: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = ToyExperiment().simulate(200_000, theta, rng)
    pick = rng.integers(len(base), size=n)  # resampling: 10^7 events in seconds
    columns = {k: v[pick] for k, v in base.columns.items()}
    columns |= {f"pad{j}": rng.standard_normal(n) for j in range(extra)}
    write_events(EventTable(columns, base.meta), path)


def peak_rss(args: list[str]) -> tuple[float, float, str]:
    """(peak RSS in GiB, wall seconds, last stdout line) of one child process."""
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args[:4])} ... failed")
    # ru_maxrss is in KiB on Linux
    return usage.ru_maxrss / 2**20, time.perf_counter() - start, out.strip().splitlines()[-1]


def peak_self() -> float:
    """This process's own peak RSS in GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--extra-columns", type=int, default=20)
    parser.add_argument("--keep", help="folder for the files, kept (and reused if there)")
    parser.add_argument("--make", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:  # the child that writes the files
        make_file(Path(args.keep) / "data.parquet", THETA, args.events, args.extra_columns, 1)
        make_file(Path(args.keep) / "nominal.parquet", THETA0, args.events, args.extra_columns, 2)
        print("made")
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        data, nominal = folder / "data.parquet", folder / "nominal.parquet"
        py = [sys.executable]
        # Made in a child: Linux passes a parent's peak RSS on to the children it starts
        # (ru_maxrss is kept across fork and exec), so this process must stay small.
        if not (data.is_file() and nominal.is_file()):
            sizes = ["--events", str(args.events), "--extra-columns", str(args.extra_columns)]
            made = peak_rss([*py, __file__, "--make", "--keep", str(folder), *sizes])
            print(f"files made in {made[1]:.0f} s (peak RSS {made[0]:.2f} GiB)")
        size = (data.stat().st_size + nominal.stat().st_size) / 1e9
        print(
            f"{args.events} + {args.events} events, {8 + args.extra_columns} columns, "
            f"{size:.2f} GB of Parquet"
        )
        floor = peak_rss([*py, "-c", "import torch, dyfit.fitting, dyfit.cli.fit; print('ok')"])
        fit = ["-m", "dyfit", "fit", "--model", "truth", "--data", str(data)]
        lean = peak_rss([*py, *fit, "--nominal", str(nominal), "--json"])
        whole = peak_rss([*py, "-c", WHOLE, str(data), str(nominal)])
    print(f"this process:                peak RSS {peak_self():6.2f} GiB (passed on to children)")
    print(f"imports only:                peak RSS {floor[0]:6.2f} GiB")
    print(f"dyfit fit (lean, chunked):   peak RSS {lean[0]:6.2f} GiB  in {lean[1]:6.1f} s")
    print(f"fit of the files read whole: peak RSS {whole[0]:6.2f} GiB  in {whole[1]:6.1f} s")
    print(
        f"whole / lean peak RSS: {whole[0] / lean[0]:.2f}x   goal for dyfit fit <= 4 GiB: "
        f"{'met' if lean[0] <= 4 else 'NOT met'}"
    )
    print(f"lean result: {lean[2][:200]}")
    print(f"whole result: {whole[2]}")


if __name__ == "__main__":
    main()
