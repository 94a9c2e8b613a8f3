r"""Event figures: reco vs truth, acceptance in the true Collins-Soper angles, mass resolution.

The acceptance needs no sample of generated events: the generated angles follow
the known density at the file's θ (metadata ``theta``), so the expected number
generated in a bin is n_generated · P(bin | θ), with P from the analytic marginals

.. math::

    p(\cos θ) = \frac{1 + λ\cos^2θ}{2(1 + λ/3)}, \qquad
    p(φ) = \frac{1}{2π}\Big[1 + \frac{ν/3}{1 + λ/3}\cos 2φ\Big]

of the density 1 + λcos²θ + μ sin2θ cosφ + (ν/2) sin²θ cos2φ (the μ term
integrates to zero over either angle).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm

from dyfit.data.columns import DIMUON_COLUMNS, UNITS, truth
from dyfit.data.events import EventTable
from dyfit.errors import DyfitWarning
from dyfit.physics.angular import as_theta
from dyfit.plots.style import new_figure, save_figure

__all__ = [
    "plot_events",
    "costh_bin_probability",
    "phi_bin_probability",
    "acceptance",
    "gaussian_core",
]

LABELS = {
    "mass": r"$M_{\mu\mu}$",
    "pT": r"$p_T$",
    "xF": r"$x_F$",
    "costh": r"$\cos\theta_{CS}$",
    "phi": r"$\phi_{CS}$",
    "x1": r"$x_1$",
    "x2": r"$x_2$",
}
RANGES = {"costh": (-1.0, 1.0), "phi": (-np.pi, np.pi)}
N_BINS = 40


def _label(name: str, prefix: str = "") -> str:
    unit = UNITS.get(name, "")
    return f"{prefix}{LABELS.get(name, name)}" + (f" [{unit}]" if unit else "")


def costh_bin_probability(edges: ArrayLike, theta: ArrayLike) -> NDArray:
    """P(cosθ in bin | θ) for bin edges with shape (B+1,); returns shape (B,)."""
    c = np.asarray(edges, dtype=np.float64)
    lam = as_theta(theta)[0]
    cdf = c + lam * c**3 / 3.0
    return np.diff(cdf) / (2.0 * (1.0 + lam / 3.0))


def phi_bin_probability(edges: ArrayLike, theta: ArrayLike) -> NDArray:
    """P(φ in bin | θ) for bin edges (rad) with shape (B+1,); returns shape (B,)."""
    p = np.asarray(edges, dtype=np.float64)
    lam, _, nu = as_theta(theta)
    cdf = p * (1.0 + lam / 3.0) + nu * np.sin(2.0 * p) / 6.0
    return np.diff(cdf) / (2.0 * np.pi * (1.0 + lam / 3.0))


def acceptance(
    values: ArrayLike, edges: ArrayLike, n_generated: int, probability: ArrayLike
) -> tuple[NDArray, NDArray]:
    """Acceptance ε per bin = N_accepted / (n_generated · P(bin)), and its standard error.

    The accepted count in a bin is binomial in n_generated trials with chance P·ε,
    so σ_ε = sqrt(ε (1 - P ε) / (n_generated P)). Shapes: values (N,), edges (B+1,),
    probability (B,); returns two arrays with shape (B,).
    """
    counts = np.histogram(values, edges)[0]
    expected = n_generated * np.asarray(probability, dtype=np.float64)
    eff = counts / expected
    prob = np.asarray(probability)
    return eff, np.sqrt(eff * np.clip(1.0 - prob * eff, 0.0, None) / expected)


def gaussian_core(values: ArrayLike, k: float = 2.0, iterations: int = 50) -> tuple[float, float]:
    r"""Mean and σ of the Gaussian core of a distribution with tails.

    Iterates the mean and RMS of the values within ±kσ of the mean, the RMS divided
    by the RMS a unit Gaussian has inside ±k, so a pure Gaussian gives its own σ.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    mean = float(np.median(x))
    sigma = float(1.4826 * np.median(np.abs(x - mean)))  # the MAD, σ for a Gaussian
    inside_p = 2.0 * norm.cdf(k) - 1.0
    shrink = np.sqrt(1.0 - 2.0 * k * norm.pdf(k) / inside_p)
    for _ in range(iterations):
        if not sigma > 0.0:  # over half the values identical: no width to measure
            return mean, 0.0
        core = x[np.abs(x - mean) < k * sigma]
        new_mean, new_sigma = float(core.mean()), float(core.std() / shrink)
        converged = abs(new_sigma - sigma) < 1e-9 * sigma and abs(new_mean - mean) < 1e-9 * sigma
        mean, sigma = new_mean, new_sigma
        if converged:
            break
    return mean, sigma


def _edges(name: str, *samples: NDArray) -> NDArray:
    if name in RANGES:
        return np.linspace(*RANGES[name], N_BINS + 1)
    x = np.concatenate(samples)
    lo, hi = np.quantile(x[np.isfinite(x)], [0.002, 0.998])
    return np.linspace(lo, hi if hi > lo else lo + 1.0, N_BINS + 1)


def _reco_vs_truth(table: EventTable, name: str, stem: Path) -> list[Path]:
    import mplhep

    reco, true = table[name], table[truth(name)]
    edges = _edges(name, reco, true)
    n_reco, n_true = np.histogram(reco, edges)[0], np.histogram(true, edges)[0]
    fig, (ax, rax) = new_figure(
        2, 1, sharex=True, figsize=(7.0, 7.0), gridspec_kw={"height_ratios": (3, 1)}
    )
    mplhep.histplot(n_true, edges, ax=ax, label="truth", yerr=np.sqrt(n_true))
    mplhep.histplot(n_reco, edges, ax=ax, label="reconstructed", yerr=np.sqrt(n_reco))
    ax.set_ylabel("Events / bin")
    ax.set_xlim(edges[0], edges[-1])
    ax.legend()
    ok = (n_true > 0) & (n_reco > 0)
    ratio = np.divide(n_reco, n_true, out=np.full(len(n_true), np.nan), where=ok)
    # Poisson errors as if independent: the two histograms share events, so this is an upper bound.
    err = np.where(
        ok, ratio * np.sqrt(1.0 / np.maximum(n_reco, 1) + 1.0 / np.maximum(n_true, 1)), 0
    )
    centres = 0.5 * (edges[1:] + edges[:-1])
    rax.errorbar(centres[ok], ratio[ok], yerr=err[ok], fmt="o", color="k", markersize=3)
    rax.axhline(1.0, color="grey", linestyle="--")
    rax.set_ylabel("reco / truth")
    rax.set_xlabel(_label(name))
    return save_figure(fig, stem)


def _acceptance(table: EventTable, theta: NDArray, n_generated: int, stem: Path) -> list[Path]:
    fig, axes = new_figure(1, 2, figsize=(13.0, 5.5))
    for ax, name, prob in zip(
        axes, ("costh", "phi"), (costh_bin_probability, phi_bin_probability), strict=True
    ):
        edges = _edges(name)
        eff, err = acceptance(table[truth(name)], edges, n_generated, prob(edges, theta))
        centres = 0.5 * (edges[1:] + edges[:-1])
        ax.errorbar(centres, 100.0 * eff, yerr=100.0 * err, xerr=np.diff(edges) / 2, fmt="o", ms=3)
        ax.set_xlabel(_label(name, "true "))
        ax.set_ylabel("acceptance [%]")
        ax.set_ylim(bottom=0.0)
    fig.suptitle(r"$\theta$ = ({:g}, {:g}, {:g}), {:,} generated".format(*theta, n_generated))
    return save_figure(fig, stem)


def _mass_resolution(table: EventTable, stem: Path) -> list[Path]:
    import mplhep

    rel = (table["mass"] - table["true_mass"]) / table["true_mass"]
    rms = float(np.sqrt(np.mean(rel**2)))
    mean, sigma = gaussian_core(rel)
    half = 5.0 * (sigma or rms or 1e-3)
    edges = np.linspace(mean - half, mean + half, 2 * N_BINS + 1)
    counts = np.histogram(rel, edges)[0]
    fig, ax = new_figure()
    mplhep.histplot(counts, edges, ax=ax, yerr=np.sqrt(counts), label="events")
    x = np.linspace(edges[0], edges[-1], 400)
    scale = len(rel) * np.diff(edges)[0]
    ax.plot(x, scale * norm.pdf(x, mean, sigma), label="Gaussian core")
    ax.text(
        0.04,
        0.95,
        f"RMS = {100 * rms:.2f} %\n" + rf"$\sigma_{{core}}$ = {100 * sigma:.2f} %",
        transform=ax.transAxes,
        va="top",
    )
    ax.set_xlabel(r"$(M_{reco} - M_{true}) / M_{true}$")
    ax.set_ylabel("Events / bin")
    ax.set_ylim(0.0, 1.3 * max(counts.max(), 1))  # room for the text and legend
    ax.legend(loc="upper right")
    return save_figure(fig, stem)


def plot_events(table: EventTable, outdir: str | Path) -> list[Path]:
    """Draw the event figures into ``outdir`` and return their paths (PNG and PDF each).

    Figures: ``reco_vs_truth_<name>`` for each of mass, pT, xF, costh, phi, x1, x2
    with its truth column; ``acceptance`` (needs metadata ``theta`` with shape (3,)
    and ``n_generated``); ``mass_resolution`` (needs ``mass`` and ``true_mass``).
    A figure whose inputs are missing is skipped with a :class:`DyfitWarning`.
    """
    outdir = Path(outdir)
    paths: list[Path] = []
    skipped: list[str] = []
    pairs = [n for n in DIMUON_COLUMNS if n in table and truth(n) in table]
    for name in pairs:
        paths += _reco_vs_truth(table, name, outdir / f"reco_vs_truth_{name}")
    if not pairs:
        skipped.append("reco-vs-truth plots skipped: no reco column has its true_ partner")
    theta, n_generated = table.meta.get("theta"), table.meta.get("n_generated")
    if np.shape(theta) == (3,) and n_generated and {"true_costh", "true_phi"} <= set(table.names):
        paths += _acceptance(table, as_theta(theta), int(n_generated), outdir / "acceptance")
    else:
        skipped.append(
            "acceptance plot skipped: it needs true_costh, true_phi and metadata theta (one "
            "fixed value) and n_generated, which a prior sample or an external file lacks"
        )
    if "mass" in table and "true_mass" in table:
        paths += _mass_resolution(table, outdir / "mass_resolution")
    else:
        skipped.append("mass resolution plot skipped: it needs mass and true_mass")
    for note in skipped:
        warnings.warn(note, DyfitWarning, stacklevel=2)
    return paths
