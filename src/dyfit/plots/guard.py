"""The mismodelling guard's figure: data against the simulation reweighted to θ̂, per variable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dyfit.data.columns import UNITS
from dyfit.plots.style import new_figure, save_figure

__all__ = ["plot_guard"]

LABELS = {
    "mass": r"$m_{\mu\mu}$",
    "pT": r"$p_T$",
    "xF": r"$x_F$",
    "phi": r"$\phi_{CS}$",
    "costh": r"$\cos\theta_{CS}$",
    "sin2theta_cosphi": r"$\sin 2\theta \cos\phi$",
    "sin2theta_cos2phi": r"$\sin^2\theta \cos 2\phi$",
}


def _label(name: str) -> str:
    unit = UNITS.get(name, "")
    return LABELS.get(name, name) + (f" [{unit}]" if unit else "")


def plot_guard(report: Any, stem: str | Path) -> list[Path]:
    """One panel per variable: data (points, sumw2 errors), simulation at θ̂ and at θ0.

    Arguments:
        report: A :class:`~dyfit.fitting.guard.GuardReport`.
        stem: Output path without suffix; ``stem.png`` and ``stem.pdf`` are written.

    The densities are the normalised bin contents divided by the bin width (the bins
    hold equal shares of the data); each panel's title gives χ²/ndf at θ̂ and its p-value.
    """
    n = len(report.variables)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    fig, axes = new_figure(nrows, ncols, squeeze=False)
    for ax, check, p in zip(axes.flat, report.variables, report.p_values, strict=False):
        edges = np.asarray(check.edges)
        width, centre = np.diff(edges), 0.5 * (edges[1:] + edges[:-1])

        ax.stairs(
            np.asarray(check.nominal) / width,
            edges,
            ls="--",
            color="grey",
            label=r"sim., $\theta_0$",
        )
        ax.stairs(
            np.asarray(check.reweighted) / width, edges, color="C0", label=r"sim., $\hat\theta$"
        )
        ax.errorbar(
            centre,
            np.asarray(check.target) / width,
            yerr=np.asarray(check.target_err) / width,
            fmt="o",
            ms=3,
            color="k",
            label="data",
        )
        ax.set_xlabel(_label(check.name))
        ax.set_ylabel("normalised density")
        ax.set_title(rf"$\chi^2$/ndf = {check.chi2:.1f}/{check.ndf}, p = {p:.2g}", fontsize=14)
    axes.flat[0].legend(fontsize=12)
    verdict = "passed" if report.passed else "FAILED"
    fig.suptitle(
        rf"mismodelling guard ({verdict}): AUC = {report.auc:.4f} $\pm$ {report.auc_err:.4f}",
        fontsize=16,
    )
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return save_figure(fig, stem)
