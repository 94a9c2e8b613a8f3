"""Which inputs help: φ encoding and extra detector-level columns, measured by the fitted σ.

Trains the moment regressor on the built-in simulation with each input variant (same
seed, same events per epoch), then fits the same pseudo-data with the same nominal sample
and prints the validation R² of a0..a3 and the likelihood-fit errors, with the truth-level
oracle's errors on the same events as the reference. Run:
``python benchmarks/bench_features.py [--events-per-epoch N] [--epochs E] [--data N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from dyfit.data.columns import FEATURES_DEFAULT
from dyfit.fitting import TruthRatio, fit
from dyfit.physics.angular import THETA0
from dyfit.simulation import Simulation
from dyfit.training.config import TrainingConfig
from dyfit.training.run import train_run

VARIANTS = {
    "proposal x, raw phi": {"features": FEATURES_DEFAULT, "phi_encoding": "raw"},
    "proposal x, cos/sin phi": {"features": FEATURES_DEFAULT, "phi_encoding": "cossin"},
    "x + x1, x2, muon momenta": {
        "features": FEATURES_DEFAULT
        + ("x1", "x2", "mup_px", "mup_py", "mup_pz", "mum_px", "mum_py", "mum_pz"),
        "phi_encoding": "cossin",
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events-per-epoch", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--data", type=int, default=50_000)
    args = parser.parse_args()

    sim = Simulation(workers=2)
    rng = np.random.default_rng(21)
    data = sim.simulate(args.data, np.array([1.0, 0.0, 0.05]), rng)
    nominal = sim.simulate(3 * args.data, THETA0, rng)
    oracle = fit(TruthRatio(), data, nominal).errors
    print(f"{args.data} data events at (1, 0, 0.05); oracle errors " + _fmt(oracle))
    print(f"{'variant':28s} {'R2 a0..a3':30s} {'sigma (lambda, mu, nu)':28s} sigma/oracle  time")
    for name, inputs in VARIANTS.items():
        config = TrainingConfig(
            estimator="moments",
            events_per_epoch=args.events_per_epoch,
            epochs=args.epochs,
            batch_size=1024,
            validation_events=50_000,
            calibration_events=50_000,
            seed=5,
            device="cpu",
            **inputs,
        )
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as run:
            model, history = train_run(config, sim, run)
        errors = fit(model, data, nominal).errors
        r2 = ", ".join(f"{v:.3f}" for v in history.best["r2"])
        ratio = ", ".join(f"{e / o:.3f}" for e, o in zip(errors, oracle, strict=True))
        print(
            f"{name:28s} {r2:30s} {_fmt(errors):28s} {ratio}  {time.perf_counter() - start:.0f} s"
        )
    sim.close()


def _fmt(errors: np.ndarray) -> str:
    return ", ".join(f"{e:.4f}" for e in errors)


if __name__ == "__main__":
    main()
