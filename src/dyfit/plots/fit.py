"""Figures of the fits: loss scans (the proposal's Figure 2), contours, Adam convergence
(its Figure 3), and from pseudo-experiments the pull distributions and the coverage."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dyfit.physics.angular import THETA_NAMES
from dyfit.plots.style import new_figure, save_figure

__all__ = [
    "LABELS",
    "plot_scans",
    "plot_contour",
    "plot_convergence",
    "plot_pulls",
    "plot_coverage",
]

LABELS = {"lambda": r"$\lambda$", "mu": r"$\mu$", "nu": r"$\nu$"}
_YLABEL = {"nll": r"$\Delta$NLL", "bce": "BCE loss per event"}


def plot_scans(
    scans: Sequence[Any], stem: str | Path, truth: ArrayLike | None = None
) -> list[Path]:
    """One panel per 1-D scan: Δloss against the parameter, θ̂ and the injected value marked."""
    fig, axes = new_figure(1, len(scans), squeeze=False)
    for ax, scan in zip(axes[0], scans, strict=True):
        i = THETA_NAMES.index(scan.parameter)
        label = "profiled" if scan.profiled else "others at fit"
        # The BCE as the proposal shows it (absolute, per event); the NLL as ΔNLL.
        y = scan.delta + (scan.minimum if scan.loss == "bce" else 0.0)
        ax.plot(scan.grid, y, label=f"{scan.loss.upper()} ({label})")
        ax.axvline(scan.theta_hat[i], color="C1", ls="--", label="fitted")
        if truth is not None:
            ax.axvline(np.asarray(truth)[i], color="k", ls=":", label="injected")
        if scan.loss == "nll":
            ax.axhline(0.5, color="grey", lw=0.8, label=r"$\pm 1\sigma$")
        ax.set_xlabel(LABELS[scan.parameter])
        ax.set_ylabel(_YLABEL[scan.loss])
        ax.legend(fontsize="small")
    return save_figure(fig, stem)


def plot_contour(scan: Any, stem: str | Path, truth: ArrayLike | None = None) -> list[Path]:
    """ΔNLL = 1.15 and 3.09 (68.3 % and 95.4 %) contours of a 2-D scan, or BCE filled levels."""
    from dyfit.fitting.scan import LEVELS_2D

    fig, ax = new_figure()
    i, j = (THETA_NAMES.index(p) for p in scan.parameters)
    if scan.loss == "nll":
        cs = ax.contour(
            scan.x, scan.y, scan.delta, levels=list(LEVELS_2D.values()), colors=["C0", "C2"]
        )
        ax.clabel(cs, fmt=dict(zip(cs.levels, LEVELS_2D, strict=True)), fontsize="small")
    else:
        filled = ax.contourf(scan.x, scan.y, scan.delta, levels=12, cmap="viridis")
        fig.colorbar(filled, ax=ax, label=r"$\Delta$ BCE loss per event")
    ax.plot(scan.theta_hat[i], scan.theta_hat[j], "C1+", ms=14, label="fitted")
    if truth is not None:
        t = np.asarray(truth)
        ax.plot(t[i], t[j], "k*", ms=12, label="injected")
    ax.set_xlabel(LABELS[scan.parameters[0]])
    ax.set_ylabel(LABELS[scan.parameters[1]])
    ax.legend(fontsize="small")
    return save_figure(fig, stem)


def plot_convergence(result: Any, stem: str | Path, truth: ArrayLike | None = None) -> list[Path]:
    """θ per Adam epoch: fitted/target where all targets are non-zero (as in the proposal),
    else the values with the target marked; the final ±1σ as a band."""
    hist = result.history
    epochs = np.arange(1, len(hist) + 1)
    errors = result.errors
    t = None if truth is None else np.asarray(truth, dtype=np.float64)
    ratio = t is not None and np.all(np.abs(t) > 1e-12)
    fig, axes = new_figure(1, 1 if ratio else 3, squeeze=False)
    for k, name in enumerate(THETA_NAMES):
        ax = axes[0, 0 if ratio else k]
        scale = t[k] if ratio else 1.0
        ax.plot(epochs, hist[:, k] / scale, color=f"C{k}", label=LABELS[name])
        if errors is not None:
            lo, hi = ((result.values[k] + s * errors[k]) / scale for s in (-1, 1))
            ax.axhspan(min(lo, hi), max(lo, hi), color=f"C{k}", alpha=0.15)
        if t is not None and not ratio:
            ax.axhline(t[k], color="k", ls=":", label="injected")
        ax.set_xlabel("epoch")
        ax.set_ylabel("fitted / injected" if ratio else LABELS[name])
        ax.legend(fontsize="small")
    if ratio:
        axes[0, 0].axhline(1.0, color="k", ls=":")
    return save_figure(fig, stem)


def plot_pulls(study: Any, stem: str | Path, bins: int = 30) -> list[Path]:
    """Pull histograms (θ̂ − θ)/σ̂ pooled over the injected θ, one row per method, one column
    per parameter, with N(0, 1) overlaid."""
    rows = [r for r in study.summary() if r["theta_index"] == 0]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = new_figure(max(len(methods), 1), 3, squeeze=False)
    edges = np.linspace(-4, 4, bins + 1)
    z = np.linspace(-4, 4, 200)
    for a, method in enumerate(methods):
        recs = [r for r in study.records if r["method"] == method and r["converged"]]
        for k, name in enumerate(THETA_NAMES):
            pulls = np.array(
                [
                    (r["values"][k] - study.thetas[r["theta_index"], k]) / r["errors"][k]
                    for r in recs
                ]
            )
            ax = axes[a, k]
            ax.hist(np.clip(pulls, -4, 4), bins=edges, histtype="step", label=method)
            norm = len(pulls) * (edges[1] - edges[0])
            ax.plot(z, norm * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi), "k:", label="N(0, 1)")
            ax.set_xlabel(rf"pull ({LABELS[name]})")
            ax.set_ylabel("toys")
            ax.set_title(
                f"mean {pulls.mean():+.2f}, width {pulls.std(ddof=1):.2f}", fontsize="small"
            )
            ax.legend(fontsize="small")
    return save_figure(fig, stem)


def _tick(name: str, theta: Any = None) -> str:
    """A parameter's tick label; with ``theta``, the injected point on a second line."""
    return LABELS[name] + ("" if theta is None else f"\n({', '.join(f'{v:g}' for v in theta)})")


def plot_coverage(study: Any, stem: str | Path) -> list[Path]:
    """Coverage of ±1σ̂ and ±2σ̂ per parameter and method, with binomial errors."""
    rows = study.summary()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = new_figure(1, 2, squeeze=False)
    for ax, (key, nominal) in zip(axes[0], (("cov68", 0.683), ("cov95", 0.954)), strict=True):
        for m, method in enumerate(methods):
            sel = [r for r in rows if r["method"] == method]
            x = np.array([THETA_NAMES.index(r["parameter"]) + 3.5 * r["theta_index"] for r in sel])
            offset = 0.15 * (m - (len(methods) - 1) / 2)
            ax.errorbar(
                x + offset,
                [r[key] for r in sel],
                yerr=[r[f"{key}_err"] for r in sel],
                fmt="o",
                label=method,
            )
        ax.axhline(nominal, color="k", ls=":")
        many = len(study.thetas) > 1
        ticks = [
            (k + 3.5 * i, _tick(n, t if k == 1 and many else None))
            for i, t in enumerate(study.thetas)
            for k, n in enumerate(THETA_NAMES)
        ]
        ax.set_xticks(*zip(*ticks, strict=True))
        ax.set_ylabel(f"coverage (nominal {nominal:.1%})")
        ax.legend(fontsize="small")
    return save_figure(fig, stem)
