"""The comparison figure: σ_method/σ_oracle per parameter, one marker per method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dyfit.physics.angular import THETA_NAMES
from dyfit.plots.fit import LABELS
from dyfit.plots.style import new_figure, save_figure

__all__ = ["plot_sigma_ratio"]


def plot_sigma_ratio(comparison: Any, stem: str | Path) -> list[Path]:
    """σ_fit/σ_oracle per parameter (grouped by injected θ) for each method; 1 is the
    truth-level limit. Error bars: the standard error of a spread, ratio/√(2(K − 1))."""
    rows = [r for r in comparison.rows() if r["method"] != "oracle"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    thetas = comparison.study.thetas
    fig, ax = new_figure()
    for m, method in enumerate(methods):
        sel = [r for r in rows if r["method"] == method and r["sigma_ratio_oracle"] is not None]
        x = np.array([THETA_NAMES.index(r["parameter"]) + 3.5 * r["theta_index"] for r in sel])
        y = np.array([r["sigma_ratio_oracle"] for r in sel])
        err = y / np.sqrt(2 * (np.array([r["n"] for r in sel]) - 1))
        offset = 0.6 * (m - (len(methods) - 1) / 2) / max(len(methods), 1)
        ax.errorbar(x + offset, y, yerr=err, fmt="os^vD<>"[m % 7], label=method)
    ax.axhline(1.0, color="k", ls=":", label="truth-level limit")
    ticks = [
        (k + 3.5 * i, LABELS[n] + (f"\n({', '.join(f'{v:g}' for v in t)})" if k == 1 else ""))
        for i, t in enumerate(thetas)
        for k, n in enumerate(THETA_NAMES)
    ]
    ax.set_xticks(*zip(*ticks, strict=True))
    ax.set_ylabel(r"$\sigma_{\mathrm{method}} / \sigma_{\mathrm{oracle}}$")
    ax.legend(fontsize="small", ncol=2)
    return save_figure(fig, stem)


def plot_projections(data: Any, nominal: Any, result: Any, stem: str | Path) -> list[Path]:
    """A binned fit's data against its prediction, in cosθ and in φ: the nominal sample
    reweighted at truth level to θ̂ with the exact weights, normalised to the data."""
    from dyfit.physics.angular import angular_weight

    bins = result.extra.get("binning", {})
    w = np.asarray(data["weight"], dtype=np.float64) if "weight" in data else None
    wn = angular_weight(nominal["true_costh"], nominal["true_phi"], result.values)
    if "weight" in nominal:
        wn = wn * np.asarray(nominal["weight"], dtype=np.float64)
    fig, axes = new_figure(1, 2, squeeze=False)
    for ax, name, label in zip(
        axes[0], ("costh", "phi"), (r"$\cos\theta$", r"$\phi$ [rad]"), strict=True
    ):
        edges = np.asarray(bins.get(name, np.linspace(-1, 1, 21) * (np.pi if name == "phi" else 1)))
        n, _ = np.histogram(data[name], edges, weights=w)
        n2, _ = np.histogram(data[name], edges, weights=None if w is None else w * w)
        pred, _ = np.histogram(nominal[name], edges, weights=wn)
        pred *= n.sum() / pred.sum()
        centres = 0.5 * (edges[1:] + edges[:-1])
        ax.errorbar(centres, n, yerr=np.sqrt(n2), fmt="ko", label="data")
        ax.stairs(pred, edges, color="C0", label=f"{result.method} fit")
        ax.set_xlabel(label)
        ax.set_ylabel("events per bin")
        ax.legend(fontsize="small")
    return save_figure(fig, stem)
