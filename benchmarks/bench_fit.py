"""Fit time on 10^5 detector-level events: the default likelihood fit against bce-adam.

Times, on the same simulated data and nominal sample (3x the data), in one run:
the default fit (moment regressor, likelihood, MIGRAD + HESSE + the nominal-sample
error, network passes included, from the loaded checkpoint), the proposal's bce-adam
fit with the same model run to its default tolerance, and the likelihood fit with the
parametrized classifier (a network pass per theta step). Run:
``python benchmarks/bench_fit.py --moments RUN_DIR --classifier RUN_DIR [--events N]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dyfit.fitting import fit
from dyfit.physics.angular import THETA0
from dyfit.simulation import Simulation
from dyfit.training.checkpoint import load_model


def timed(label: str, model_dir: str, data, nominal, method: str) -> float:
    start = time.perf_counter()
    result = fit(load_model(model_dir), data, nominal, method)
    elapsed = time.perf_counter() - start
    values = ", ".join(
        f"{v:+.4f} ± {e:.4f}" for v, e in zip(result.values, result.errors, strict=True)
    )
    print(f"{label:34s} {elapsed:8.3f} s   ({values})", flush=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--moments", required=True, help="run folder of a moment regressor")
    parser.add_argument("--classifier", help="run folder of a parametrized classifier")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--theta", type=float, nargs=3, default=(1.0, 0.0, 0.05))
    args = parser.parse_args()

    sim = Simulation(workers=2)
    rng = np.random.default_rng(7)
    data = sim.simulate(args.events, np.array(args.theta), rng)
    nominal = sim.simulate(3 * args.events, THETA0, rng)
    sim.close()
    print(f"{args.events} data events, {3 * args.events} nominal events, theta = {args.theta}")

    default = timed("likelihood (moments, default)", args.moments, data, nominal, "likelihood")
    adam = timed("bce-adam (moments)", args.moments, data, nominal, "bce-adam")
    print(f"bce-adam / default likelihood: {adam / default:.1f}x")
    if args.classifier:
        clf = timed("likelihood (classifier)", args.classifier, data, nominal, "likelihood")
        print(f"classifier likelihood / default likelihood: {clf / default:.1f}x")


if __name__ == "__main__":
    main()
