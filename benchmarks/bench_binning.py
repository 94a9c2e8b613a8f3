"""Is the template fit's default binning fair? Its errors with kinematic bins and finer angles.

Fits the same pool toys (dyfit.studies.pool) with the forward-folding template method under
several binnings and prints σ_fit, the mean reported error and the bias per parameter; the
mean error is the stable figure (σ_fit over K toys has a relative error of 1/√(2K)).

    python benchmarks/bench_binning.py --pool pool.parquet --toys 30
"""

import argparse
import warnings

import numpy as np

from dyfit.data.io import read_events
from dyfit.errors import DyfitWarning
from dyfit.fitting import fit
from dyfit.physics.angular import THETA0
from dyfit.studies.pool import EventPool
from dyfit.studies.pseudo import toy_rngs

BINNINGS = {
    "20x12 (default)": None,
    "20x12 x pT3": "pT=3",
    "20x12 x xF3": "xF=3",
    "20x12 x mass3": "mass=3",
    "10x8 x pT3 x xF3": "costh=10,phi=8,pT=3,xF=3",
    "30x16": "costh=30,phi=16",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", required=True, help="events simulated at theta0")
    parser.add_argument("--toys", type=int, default=30)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DyfitWarning)
    columns = ["mass", "pT", "xF", "costh", "phi", "true_costh", "true_phi"]
    pool = EventPool(read_events(args.pool, only=columns))
    for i, theta in enumerate(([1.0, 0.0, 0.0], [0.5, 0.2, -0.2])):
        fits = {name: [] for name in BINNINGS}
        for k in range(args.toys):
            rng_data, rng_nominal = toy_rngs(args.seed, i, k)
            data = pool.simulate(args.events, theta, rng_data)
            nominal = pool.simulate(3 * args.events, THETA0, rng_nominal)
            for name, bins in BINNINGS.items():
                r = fit(None, data, nominal, "template", bins=bins)
                fits[name].append(np.r_[r.values, r.errors])
        for name, rows in fits.items():
            v = np.array(rows)
            print(
                f"theta {theta} {name:18s} sigma_fit {v[:, :3].std(0, ddof=1).round(4)} "
                f"mean error {v[:, 3:].mean(0).round(4)} bias {(v[:, :3].mean(0) - theta).round(4)}"
            )


if __name__ == "__main__":
    main()
