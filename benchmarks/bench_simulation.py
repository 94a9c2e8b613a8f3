"""Accepted events per second: the built-in chain against the Pythia-backed chain.

Both chains feed the same spectrometer; the ratio is measured in the same run, so it
does not depend on the machine. Run: ``make bench`` or
``python benchmarks/bench_simulation.py [--events N] [--workers W] [--pythia-truth M]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dyfit.detector import SpectrometerConfig, simulate_detector
from dyfit.physics.generator import GeneratorConfig
from dyfit.simulation import Simulation


def builtin_rate(n_events: int, workers: int) -> tuple[float, float]:
    sim = Simulation(workers=workers)
    start = time.perf_counter()
    sim.simulate(n_events, np.array([1.0, 0.0, 0.0]), np.random.default_rng(1))
    elapsed = time.perf_counter() - start
    sim.close()
    return n_events / elapsed, elapsed


def pythia_rate(n_truth: int) -> tuple[float, float, int]:
    from dyfit.physics.pythia import pythia_truth

    start = time.perf_counter()
    truth = pythia_truth(n_truth, GeneratorConfig(), seed=1)
    reco, _ = simulate_detector(truth, SpectrometerConfig(), np.random.default_rng(2))
    elapsed = time.perf_counter() - start
    return len(reco) / elapsed, elapsed, len(reco)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="accepted events, built-in")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pythia-truth", type=int, default=100_000, help="Pythia truth events")
    args = parser.parse_args()

    rate, elapsed = builtin_rate(args.events, args.workers)
    print(
        f"built-in: {args.events} accepted events in {elapsed:.1f} s = {rate:,.0f} /s "
        f"({args.workers} workers)"
    )
    p_rate, p_elapsed, p_acc = pythia_rate(args.pythia_truth)
    print(
        f"pythia:   {p_acc} accepted of {args.pythia_truth} truth events in {p_elapsed:.1f} s "
        f"= {p_rate:,.1f} /s (one core)"
    )
    print(f"ratio built-in / pythia per accepted event: {rate / p_rate:,.0f}x")


if __name__ == "__main__":
    main()
