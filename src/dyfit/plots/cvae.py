"""Figures of the cVAE fit: the loss scan (the proposal's Figure 4), the Adam convergence
(its Figure 5) and generated-vs-simulated histograms (the DCTR check)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.plots.style import new_figure, save_figure

__all__ = ["plot_loss_scan", "plot_convergence_1d", "plot_generated"]


def plot_loss_scan(
    grid: NDArray,
    loss: NDArray,
    stem: str | Path,
    fitted: float,
    truth: float,
    exact: NDArray | None = None,
    shift: float = 0.0,
    label: str = r"$\mu$",
) -> list[Path]:
    """Mean negative ELBO per event against the parameter (shifted by ``shift`` into x's
    units), the exact negative log-likelihood beside it; fitted and true values marked."""
    fig, ax = new_figure()
    ax.plot(grid, loss + shift, label="cVAE: mean negative ELBO")
    if exact is not None:
        ax.plot(grid, exact, "k--", lw=1, label="exact: mean negative log-likelihood")
    ax.axvline(fitted, color="C1", ls="--", label=f"fitted {fitted:.3f}")
    ax.axvline(truth, color="k", ls=":", label=f"true {truth:g}")
    ax.set_xlabel(label)
    ax.set_ylabel("loss per event [nats]")
    ax.legend(fontsize="small")
    return save_figure(fig, stem)


def plot_convergence_1d(
    history: NDArray,
    stem: str | Path,
    truth: float,
    error: float | None = None,
    label: str = r"$\mu$",
) -> list[Path]:
    """The parameter per Adam epoch, the true value and the final ±1σ band."""
    fig, ax = new_figure()
    epochs = np.arange(1, len(history) + 1)
    values = np.asarray(history)[:, 0]
    ax.plot(epochs, values, label="Adam on the frozen cVAE")
    if error is not None:
        ax.axhspan(
            values[-1] - error, values[-1] + error, color="C0", alpha=0.2, label=r"$\pm 1\sigma$"
        )
    ax.axhline(truth, color="k", ls=":", label=f"true {truth:g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"fitted {label}")
    ax.legend(fontsize="small")
    return save_figure(fig, stem)


def plot_generated(
    generated: NDArray,
    simulated: NDArray,
    names: ArrayLike,
    stem: str | Path,
    weights: NDArray | None = None,
    bins: int = 40,
) -> list[Path]:
    """Per-variable histograms (normalised) of generated (N, F) and simulated (M, F) events;
    with ``weights``, the DCTR-reweighted generated events too."""
    names = list(names)
    fig, axes = new_figure(1, len(names), squeeze=False)
    for i, (ax, name) in enumerate(zip(axes[0], names, strict=True)):
        edges = np.quantile(simulated[:, i], np.linspace(0.001, 0.999, bins + 1))
        kw = {"bins": edges, "density": True, "histtype": "step"}
        ax.hist(simulated[:, i], label="simulated", color="k", **kw)
        ax.hist(generated[:, i], label="cVAE", color="C0", **kw)
        if weights is not None:
            ax.hist(generated[:, i], weights=weights, label="cVAE + DCTR", color="C1", **kw)
        ax.set_xlabel(name)
        ax.set_ylabel("density")
        ax.legend(fontsize="small")
    return save_figure(fig, stem)
