r"""Training figures: the loss curves (the proposal's Figure 1) and the ratio checks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from dyfit.data.columns import UNITS
from dyfit.plots.style import new_figure, save_figure

__all__ = ["plot_history", "plot_closure", "plot_log_ratio"]


def _label(name: str) -> str:
    unit = UNITS.get(name, "")
    return f"{name} [{unit}]" if unit else name


def plot_history(history: dict[str, Any], stem: str | Path) -> list[Path]:
    """Figure 1: training and validation loss, and validation accuracy (or R²), vs epoch.

    Arguments:
        history: ``TrainingHistory.to_dict()``.
        stem: Output path without suffix; writes ``stem.png`` and ``stem.pdf``.

    For the classifier the left panel marks ln 2 (no separation) and the truth-level
    Bayes bound, and the title gives the captured fraction of the achievable separation
    (ln 2 − val loss)/(ln 2 − bound) at the best epoch.
    """
    records = history["records"]
    epoch = [r["epoch"] + 1 for r in records]
    fig, (ax_loss, ax_acc) = new_figure(1, 2)
    ax_loss.plot(epoch, [r["train_loss"] for r in records], "o-", label="training loss")
    ax_loss.plot(epoch, [r["val_loss"] for r in records], "s-", label="validation loss")
    best = records[history["best_epoch"]]
    if history["estimator"] == "classifier":
        ax_loss.axhline(math.log(2), color="grey", ls=":", label="ln 2 (no separation)")
        if history.get("bayes_loss") is not None:
            ax_loss.axhline(
                history["bayes_loss"], color="k", ls="--", label="Bayes bound (truth ratio)"
            )
            ax_loss.set_title(
                f"captured {100 * best['captured']:.0f} % of the achievable separation", fontsize=14
            )
        ax_loss.set_ylabel("binary cross-entropy [nats]")
        ax_acc.plot(
            epoch,
            [r["val_accuracy"] for r in records],
            "o-",
            color="C2",
            label="validation accuracy",
        )
        ax_acc.set_ylabel("accuracy")
    else:
        ax_loss.set_ylabel("MSE (standardised a_k)")
        ax_loss.set_yscale("log")
        r2 = np.array([r["r2"] for r in records])
        for k in range(r2.shape[1]):
            ax_acc.plot(epoch, r2[:, k], "o-", label=f"$R^2$ of $a_{k}$")
        ax_acc.set_ylabel("validation $R^2$")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=12)
    ax_loss.axvline(best["epoch"] + 1, color="C3", lw=0.8, alpha=0.6)
    return save_figure(fig, stem)


def plot_closure(check: dict[str, Any], stem: str | Path) -> list[Path]:
    """Per feature: the θ sample, the nominal sample reweighted by r(x|θ), and unweighted;
    ratio panels to the θ sample below. ``check`` is one ``ThetaCheck`` as a dict."""
    variables = check["variables"]
    fig, axes = new_figure(
        2,
        len(variables),
        sharex="col",
        gridspec_kw={"height_ratios": [3, 1]},
        figsize=(4.5 * len(variables), 6.0),
    )
    axes = np.asarray(axes).reshape(2, -1)
    for (top, bottom), v in zip(axes.T, variables, strict=True):
        edges = np.array(v["edges"])
        centre, width = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
        target, target_err = np.array(v["target"]), np.array(v["target_err"])
        top.errorbar(
            centre,
            target / width,
            target_err / width,
            fmt="ko",
            ms=3,
            label=r"generated at $\theta$",
        )
        for key, style, label in (
            ("reweighted", "-", r"nominal $\times\, r(x|\theta)$"),
            ("nominal", "--", "nominal"),
        ):
            top.stairs(np.array(v[key]) / width, edges, ls=style, label=label)
            ratio = np.divide(v[key], target, out=np.full_like(target, np.nan), where=target > 0)
            bottom.stairs(ratio, edges, ls=style)
        rel = np.divide(target_err, target, out=np.zeros_like(target), where=target > 0)
        bottom.stairs(1 + rel, edges, baseline=1 - rel, fill=True, color="grey", alpha=0.3)
        top.set_ylabel("normalised density")
        top.set_title(
            f"$\\chi^2$/ndf = {v['chi2']:.1f}/{v['ndf']} (unweighted {v['chi2_nominal']:.0f})",
            fontsize=11,
        )
        bottom.set_xlabel(_label(v["name"]))
        bottom.set_ylabel("/ generated")
        bottom.set_ylim(0.9, 1.1)
    axes[0, 0].legend(fontsize=10)
    lam, mu, nu = check["theta"]
    fig.suptitle(f"$\\lambda$ = {lam:.2f}, $\\mu$ = {mu:.2f}, $\\nu$ = {nu:.2f}")
    return save_figure(fig, stem)


def plot_log_ratio(report: dict[str, Any], stem: str | Path) -> list[Path]:
    """Learned vs reference log r at each θ (scatter), with the profile of mean reference r."""
    checks = [c for c in report["checks"] if c["log_ratio_sample"]]
    if not checks:
        return []
    ncols = min(4, len(checks))
    nrows = -(-len(checks) // ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(4.5 * ncols, 4.5 * nrows), squeeze=False)
    for ax, c in zip(axes.flat, checks, strict=False):
        learned, reference = (
            np.array(c["log_ratio_sample"]["learned"]),
            np.array(c["log_ratio_sample"]["reference"]),
        )
        ax.plot(reference, learned, ".", ms=1.5, alpha=0.3, color="C0")
        p = c["profile"]
        ax.errorbar(
            np.log(p["reference"]),
            np.log(p["learned"]),
            xerr=np.array(p["reference_err"]) / p["reference"],
            fmt="o",
            ms=3,
            color="C3",
            label=r"profile: $\log\langle r_\mathrm{ref}\rangle$",
        )
        lo, hi = np.percentile(np.concatenate([learned, reference]), [0.5, 99.5])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_title(
            r"$\theta$ = ({:.2f}, {:.2f}, {:.2f}), rms {:.3f}".format(
                *c["theta"], c["log_ratio_rms"]
            ),
            fontsize=10,
        )
        ax.set_xlabel(r"reference $\log r$")
        ax.set_ylabel(r"learned $\log r$")
    for ax in list(axes.flat)[len(checks) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=9)
    return save_figure(fig, stem)
