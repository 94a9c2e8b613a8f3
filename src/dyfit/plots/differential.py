"""Figures of differential fits: λ, μ, ν against the bin variable, and the Lam-Tung
combination 1 − λ − 2ν, with the injected curve, a per-bin reference and a parametrised
fit (line and ±1σ band) overlaid where given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dyfit.physics.angular import THETA_NAMES
from dyfit.plots.fit import LABELS
from dyfit.plots.style import new_figure, save_figure

__all__ = ["axis_label", "plot_differential", "plot_lam_tung"]

_SYMBOLS = {"pT": r"$p_T$", "mass": r"$M_{\mu\mu}$", "xF": r"$x_F$", "x1": r"$x_1$", "x2": r"$x_2$"}


def axis_label(variable: str) -> str:
    """The axis label of a column, with its unit: ``pT`` -> ``$p_T$ [GeV]``."""
    from dyfit.data.columns import UNITS

    base = variable.removeprefix("true_")
    label = _SYMBOLS.get(base, base) + (" (truth)" if base != variable else "")
    unit = UNITS.get(variable, "")
    return f"{label} [{unit}]" if unit else label


def _points(ax, result: Any, y, err, label: str) -> None:
    edges = np.asarray(result.binning.edges)
    x = 0.5 * (edges[1:] + edges[:-1])
    ax.errorbar(x, y, yerr=err, xerr=0.5 * np.diff(edges), fmt="o", color="k", label=label)


def _grid(result: Any) -> np.ndarray:
    edges = result.binning.edges
    return np.linspace(edges[0], edges[-1], 200)


def plot_differential(
    result: Any,
    stem: str | Path,
    truth_curve: Any = None,
    reference: ArrayLike | None = None,
    parametrised: Any = None,
) -> list[Path]:
    """λ, μ, ν per bin (points at the bin centres, bars: bin width and total error).

    Arguments:
        result: A :class:`~dyfit.fitting.differential.DifferentialResult`.
        stem: The file stem; PNG and PDF are written.
        truth_curve: A :class:`~dyfit.physics.curves.ThetaCurve` drawn as a line (its
            variable taken as the bin variable's scale).
        reference: θ per bin, (n_bins, 3), e.g. the mean injected θ of each bin's events.
        parametrised: A :class:`~dyfit.fitting.parametrised.ParametrisedFit` drawn with its band.
    """
    fig, axes = new_figure(1, 3, squeeze=False)
    v = _grid(result)
    for i, (ax, name) in enumerate(zip(axes[0], THETA_NAMES, strict=True)):
        _points(ax, result, result.values[:, i], result.errors[:, i], f"fit ({result.method})")
        if reference is not None:
            x = result.binning.centres
            ax.plot(x, np.asarray(reference)[:, i], "s", mfc="none", color="C3", label="injected")
        if truth_curve is not None:
            ax.plot(v, truth_curve(v)[:, i], color="C3", ls="--", label="injected curve")
        if parametrised is not None:
            y, e = parametrised.theta(v)[:, i], parametrised.theta_error(v)[:, i]
            ax.plot(v, y, color="C0", label="parametrised fit")
            ax.fill_between(v, y - e, y + e, color="C0", alpha=0.25, lw=0)
        ax.set_xlabel(axis_label(result.binning.variable))
        ax.set_ylabel(LABELS[name])
        ax.legend(fontsize="small")
    return save_figure(fig, stem)


def plot_lam_tung(
    result: Any, stem: str | Path, truth_curve: Any = None, parametrised: Any = None
) -> list[Path]:
    """1 − λ − 2ν per bin, zero (the Lam-Tung relation) marked."""
    fig, ax = new_figure()
    value, error = result.lam_tung
    _points(ax, result, value, error, f"fit ({result.method})")
    v = _grid(result)
    if truth_curve is not None:
        t = truth_curve(v)
        ax.plot(v, 1.0 - t[:, 0] - 2.0 * t[:, 2], color="C3", ls="--", label="injected curve")
    if parametrised is not None:
        t = parametrised.theta(v)
        ax.plot(v, 1.0 - t[:, 0] - 2.0 * t[:, 2], color="C0", label="parametrised fit")
    ax.axhline(0.0, color="grey", lw=0.8, label="Lam-Tung: 0")
    ax.set_xlabel(axis_label(result.binning.variable))
    ax.set_ylabel(r"$1 - \lambda - 2\nu$")
    ax.legend(fontsize="small")
    return save_figure(fig, stem)
