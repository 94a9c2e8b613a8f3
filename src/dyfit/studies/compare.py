r"""The side-by-side comparison of the fit methods on the same pseudo-experiments.

Every method (the neural fits on a trained model, the three binned fits, and the
truth-level oracle) fits the same toys of :func:`~dyfit.studies.pseudo.run_study`;
the table gives per injected θ, method and parameter the bias, σ_fit (the spread of
θ̂), σ_fit/σ_oracle, the pull width, the coverage of ±1σ̂ and the mean fit time, taken
from :meth:`StudyResult.summary` (no statistic is computed twice). σ_fit/σ_oracle is
the price of each method against the physical limit of the same events: the binned
methods lose the information within their bins and the kinematic dependence of the
acceptance (they integrate it over mass, pT and xF), which the neural fits keep.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from numpy.typing import ArrayLike

from dyfit.atomic import finite_json, write_text_atomic
from dyfit.fitting.methods import BINNED_METHODS, NEURAL_METHODS
from dyfit.studies.pseudo import ORACLE, StudyResult, run_study

__all__ = ["COMPARE_METHODS", "Comparison", "compare_methods", "default_methods"]

COMPARE_METHODS = ("bce-adam", "bce", "likelihood", *BINNED_METHODS)
_COLUMNS = ("bias", "sigma_fit", "sigma_ratio_oracle", "pull_width", "cov68", "fit_time_s")


@dataclass
class Comparison:
    """A finished comparison: the study and the order the methods are shown in."""

    study: StudyResult
    methods: list[str]

    def rows(self) -> list[dict[str, Any]]:
        """The summary rows, methods in order and the oracle last."""
        order = {m: k for k, m in enumerate([*self.methods, ORACLE])}
        rows = [r for r in self.study.summary() if r["method"] in order]
        return sorted(rows, key=lambda r: (r["theta_index"], r["parameter"], order[r["method"]]))

    def findings(self) -> list[str]:
        """Sentences on what the table shows, from its numbers."""
        lines = []
        rows = self.rows()
        for (i, par), group in _groups(rows).items():
            theta = ", ".join(f"{v:g}" for v in self.study.thetas[i])
            ranked = sorted(
                (r for r in group if r["method"] != ORACLE and r["sigma_ratio_oracle"]),
                key=lambda r: r["sigma_ratio_oracle"],
            )
            if len(ranked) == 1:
                lines.append(
                    f"At θ = ({theta}), {par}: {ranked[0]['method']} has σ/σ_oracle = "
                    f"{ranked[0]['sigma_ratio_oracle']:.2f}."
                )
            elif ranked:
                best, worst = ranked[0], ranked[-1]
                lines.append(
                    f"At θ = ({theta}), {par}: {best['method']} is closest to the truth-level "
                    f"limit (σ/σ_oracle = {best['sigma_ratio_oracle']:.2f}), "
                    f"{worst['method']} farthest ({worst['sigma_ratio_oracle']:.2f})."
                )
            for r in group:
                flags = []
                if abs(r["bias"]) > 3 * r["bias_err"]:
                    flags.append(f"a bias of {r['bias']:+.4f} ± {r['bias_err']:.4f}")
                if abs(r["pull_width"] - 1) > 3 * r["pull_width_err"]:
                    flags.append(f"a pull width of {r['pull_width']:.2f} (its errors are off)")
                if r["n_failed"]:
                    flags.append(f"{r['n_failed']} failed fits")
                if flags:
                    lines.append(f"  {r['method']} on {par} shows " + " and ".join(flags) + ".")
        if not any(line.startswith("  ") for line in lines):
            lines.append("No method shows a bias or a pull width off by more than 3 errors.")
        return lines

    def markdown(self) -> str:
        head = (
            "| θ | par | method | bias | σ_fit | σ/σ_oracle | pull width | cov 68.3 % | fit time |"
        )
        out = [head, "|" + "---|" * 9]
        for r in self.rows():
            ratio = r["sigma_ratio_oracle"]
            out.append(
                f"| ({', '.join(f'{v:g}' for v in r['theta'])}) | {r['parameter']} | {r['method']} "
                f"| {r['bias']:+.4f} ± {r['bias_err']:.4f} | {r['sigma_fit']:.4f} "
                f"| {'–' if ratio is None else f'{ratio:.3f}'} "
                f"| {r['pull_width']:.3f} ± {r['pull_width_err']:.3f} "
                f"| {r['cov68']:.3f} ± {r['cov68_err']:.3f} | {r['fit_time_s'] * 1e3:.1f} ms |"
            )
        config = self.study.config
        intro = (
            f"{config['toys']} toys of {config['n_events']} events (fresh nominal samples of "
            f"{config['n_nominal']}) per θ; σ_fit is the spread of θ̂ over the toys, "
            "σ/σ_oracle its ratio to the truth-level fit of the same events (1 is the limit), "
            "the pull width and coverage check the reported errors (1 and 68.3 %)."
        )
        return "\n".join([intro, "", *out, "", *self.findings()]) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "methods": self.methods,
            "config": self.study.config,
            "table": [
                {k: r[k] for k in ("theta", "method", "parameter", *_COLUMNS, "bias_err")}
                for r in self.rows()
            ],
            "findings": self.findings(),
        }

    def save(self, out_dir: str | Path, plots: bool = True) -> list[Path]:
        """The study's own outputs plus comparison.md, comparison.json and sigma_ratio.png/pdf."""
        out = Path(out_dir)
        paths = self.study.save(out, plots=plots)
        write_text_atomic(out / "comparison.md", self.markdown())
        text = json.dumps(finite_json(self.to_json()), indent=1, allow_nan=False)
        write_text_atomic(out / "comparison.json", text)
        paths += [out / "comparison.md", out / "comparison.json"]
        if plots:
            from dyfit.plots.compare import plot_sigma_ratio

            paths += plot_sigma_ratio(self, out / "sigma_ratio")
        return paths


def _groups(rows: Sequence[dict]) -> dict[tuple[int, str], list[dict]]:
    groups: dict[tuple[int, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["theta_index"], r["parameter"]), []).append(r)
    return groups


def default_methods(model: Any) -> list[str]:
    """The neural methods when there is a ratio model, and the binned ones always."""
    return [m for m in COMPARE_METHODS if model is not None or m not in NEURAL_METHODS]


def compare_methods(
    model: Any,
    source: Any,
    thetas: ArrayLike,
    toys: int,
    n_events: int,
    n_nominal: int,
    methods: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = False,
    **study_options: Any,
) -> Comparison:
    """Run every method (default: the neural ones when ``model`` is given, the binned
    ones always) and the oracle on the same toys; ``study_options`` (models, journal,
    scheduler, workers) go to :func:`~dyfit.studies.pseudo.run_study`.

    Example:
        >>> c = compare_methods(TruthRatio(), ToyExperiment(), [[1, 0, 0]], 50, 2000, 6000)
        >>> print(c.markdown())  # doctest: +SKIP
    """
    if methods is None:
        methods = default_methods(model)
    study = run_study(
        model,
        source,
        thetas,
        toys,
        n_events,
        n_nominal,
        methods=tuple(methods),
        seed=seed,
        progress=progress,
        oracle=True,
        **study_options,
    )
    return Comparison(study, list(methods))
