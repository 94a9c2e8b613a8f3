"""Compare the built-in LO generator with Pythia 8 at truth level and after the spectrometer.

Writes docs/figures/pythia_vs_builtin.{png,pdf} and prints a Markdown table of means,
acceptances and the Collins-Soper moments (lambda from <cos^2 theta>).
Run: ``python scripts/compare_pythia.py [--events N]`` (needs ``pip install 'dyfit[pythia]'``).
"""

from __future__ import annotations

import argparse

import numpy as np

from dyfit.detector import SpectrometerConfig, simulate_detector
from dyfit.physics.generator import GeneratorConfig, generate_truth
from dyfit.physics.kinematics import beam_target, dilepton_observables
from dyfit.physics.pythia import pythia_truth
from dyfit.plots.style import new_figure, save_figure

VARIABLES = {
    "mass": (np.linspace(4, 10, 31), r"$M_{\mu\mu}$ [GeV]"),
    "pT": (np.linspace(0, 4, 33), r"$p_T$ [GeV]"),
    "xF": (np.linspace(-0.3, 1.0, 27), r"$x_F$"),
    "costh": (np.linspace(-1, 1, 21), r"$\cos\theta_{CS}$"),
}


def lambda_from_moment(costh: np.ndarray) -> tuple[float, float]:
    """lambda from <cos^2> = (5 + 3 lambda) / (5 (3 + lambda)), with its delta-method error."""
    m = np.mean(costh**2)
    dm = np.std(costh**2) / np.sqrt(costh.size)
    lam = (5 - 15 * m) / (5 * m - 3)
    dlam_dm = (-15 * (5 * m - 3) - 5 * (5 - 15 * m)) / (5 * m - 3) ** 2
    return lam, abs(dlam_dm) * dm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000, help="truth events per generator")
    parser.add_argument("-o", default="docs/figures/pythia_vs_builtin")
    args = parser.parse_args()

    config = GeneratorConfig()
    samples = {
        "dyfit LO": generate_truth(args.events, [1.0, 0.0, 0.0], config, np.random.default_rng(1)),
        "Pythia 8": pythia_truth(args.events, config, seed=1),
    }
    beam, target = beam_target(config.beam_energy)
    fig, axes = new_figure(2, 4, figsize=(24, 10))
    print("| sample | <M> GeV | <pT> GeV | <xF> | lambda (truth, all) | acceptance |")
    print("|---|---|---|---|---|---|")
    for label, truth in samples.items():
        lp = truth.matrix([f"true_mup_{c}" for c in ("E", "px", "py", "pz")])
        lm = truth.matrix([f"true_mum_{c}" for c in ("E", "px", "py", "pz")])
        obs = dilepton_observables(lp, lm, beam, target)
        reco, summary = simulate_detector(truth, SpectrometerConfig(), np.random.default_rng(2))
        for col, (name, (edges, xlabel)) in enumerate(VARIABLES.items()):
            for row, values in enumerate((obs[name], reco[name])):
                ax = axes[row, col]
                ax.hist(values, edges, density=True, histtype="step", lw=2, label=label)
                ax.set_xlabel(("truth " if row == 0 else "reco ") + xlabel)
                ax.set_ylabel("normalised")
                ax.legend(fontsize=12)
        lam, dlam = lambda_from_moment(obs["costh"])
        print(
            f"| {label} | {obs['mass'].mean():.3f} | {obs['pT'].mean():.3f} | "
            f"{obs['xF'].mean():.3f} | {lam:.3f} ± {dlam:.3f} | {summary.acceptance:.4f} |"
        )
    for path in save_figure(fig, args.o):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
