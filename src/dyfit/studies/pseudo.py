r"""Pseudo-experiments: bias, pulls, coverage and efficiency of the fits of θ.

For each injected θ and toy k, a data set of N events and a *fresh* nominal sample
of M events come from ``source.simulate``, with generators seeded by
``SeedSequence(seed, spawn_key=(θ index, k))``: any toy can be rerun alone, so a Dask
fan-out (:mod:`dyfit.parallel`) reproduces the serial study, and a killed study resumes
from its journal of finished toys (:mod:`dyfit.studies.journal`). Each method fits the
same events; the truth-level oracle (:class:`~dyfit.fitting.oracle.TruthRatio`) fits them
too, giving σ_oracle.

Per method and parameter: bias = ⟨θ̂ − θ⟩; pulls (θ̂ − θ)/σ̂ with their mean and
width; the coverage of θ̂ ± σ̂ and θ̂ ± 2σ̂ (nominally 68.3 % and 95.4 %) with binomial
errors; σ_fit, the spread of θ̂, and σ_fit/σ_oracle; the pull width with the Hessian
error alone (``pull_width_stat``), which shows what the nominal-sample term adds.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.atomic import finite_json, write_text_atomic
from dyfit.errors import DyfitError, DyfitWarning, InputError
from dyfit.fitting import FIT_METHODS
from dyfit.physics.angular import THETA0, THETA_NAMES, as_theta, check_physical

__all__ = ["METHODS", "toy_rngs", "run_toy", "run_study", "summarise", "StudyResult"]

METHODS = FIT_METHODS
ORACLE = "oracle"


def toy_rngs(seed: int, theta_index: int, toy_index: int) -> tuple[np.random.Generator, ...]:
    """The independent (data, nominal) generators of one toy."""
    ss = np.random.SeedSequence(seed, spawn_key=(theta_index, toy_index))
    return tuple(np.random.default_rng(s) for s in ss.spawn(2))


def _fit(method: str, model: Any, data, nominal) -> dict[str, Any]:
    from dyfit.fitting import fit

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DyfitWarning)  # kept in result.warnings
            r = fit(model, data, nominal, method=method)
    except DyfitError as err:
        return {"method": method, "converged": False, "error": str(err)}
    nan3 = [float("nan")] * 3
    return {
        "method": method,
        "values": r.values.tolist(),
        "errors": nan3 if r.errors is None else r.errors.tolist(),
        "errors_stat": r.error_breakdown().get("stat", np.array(nan3)).tolist(),
        "converged": r.converged,
        "fit_time_s": r.fit_time_s,
        "prepare_time_s": r.extra.get("prepare_time_s"),
        "warnings": r.warnings,
    }


def run_toy(
    model: Any,
    source: Any,
    theta: ArrayLike,
    theta_index: int,
    toy_index: int,
    n_events: int,
    n_nominal: int,
    methods: Sequence[str] = ("likelihood",),
    seed: int = 0,
    oracle: bool = True,
    models: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Simulate and fit one toy; one record per method (and the oracle).

    ``models`` gives a method its own model (e.g. ``{"cvae": cvae}``); the others use
    ``model`` (ignored by the binned methods, which may run with ``model=None``).
    """
    from dyfit.fitting.oracle import TruthRatio

    rng_data, rng_nominal = toy_rngs(seed, theta_index, toy_index)
    data = source.simulate(n_events, as_theta(theta), rng_data)
    nominal = source.simulate(n_nominal, THETA0, rng_nominal)
    models = dict(models or {})
    fits = [(m, models.get(m, model)) for m in methods]
    if oracle:
        fits.append((ORACLE, TruthRatio(prior=getattr(model, "prior", None))))
    records = []
    for method, m in fits:
        rec = _fit("likelihood" if method == ORACLE else method, m, data, nominal)
        records.append({**rec, "method": method, "theta_index": theta_index, "toy": toy_index})
    return records


def _floats(values: Any) -> NDArray[np.float64]:
    """Numbers as a float array; null (a NaN written to JSON) becomes NaN again."""
    return np.array(values, dtype=np.float64)


def _stats(values: NDArray, errors: NDArray, errors_stat: NDArray, truth: float) -> dict:
    k = len(values)
    pulls = (values - truth) / errors
    cover = {name: float(np.mean(np.abs(pulls) < z)) for name, z in (("cov68", 1), ("cov95", 2))}
    width = float(np.std(pulls, ddof=1))
    return {
        "n": k,
        "bias": float(np.mean(values - truth)),
        "bias_err": float(np.std(values, ddof=1) / np.sqrt(k)),
        "sigma_fit": float(np.std(values, ddof=1)),
        "mean_error": float(np.mean(errors)),
        "pull_mean": float(np.mean(pulls)),
        "pull_mean_err": width / np.sqrt(k),
        "pull_width": width,
        # The standard error of a Gaussian sample's standard deviation.
        "pull_width_err": width / np.sqrt(2 * (k - 1)),
        "pull_width_stat": float(np.std((values - truth) / errors_stat, ddof=1)),
        **cover,
        **{f"{n}_err": float(np.sqrt(p * (1 - p) / k)) for n, p in cover.items()},
    }


def summarise(records: Sequence[dict], thetas: NDArray) -> list[dict[str, Any]]:
    """One row per (θ index, method, parameter) from converged toys (see module docstring)."""
    rows = []
    groups: dict[tuple[int, str], list[dict]] = {}
    for rec in records:
        groups.setdefault((rec["theta_index"], rec["method"]), []).append(rec)
    for (i, method), recs in sorted(groups.items()):
        ok = [r for r in recs if r["converged"] and np.all(np.isfinite(_floats(r["errors"])))]
        if len(ok) < 2:
            continue
        vals, errs, stat = (
            _floats([r[k] for r in ok]) for k in ("values", "errors", "errors_stat")
        )
        for j, name in enumerate(THETA_NAMES):
            rows.append(
                {
                    "theta_index": i,
                    "theta": thetas[i].tolist(),
                    "method": method,
                    "parameter": name,
                    "n_failed": len(recs) - len(ok),
                    "fit_time_s": float(np.mean([r["fit_time_s"] for r in ok])),
                    **_stats(vals[:, j], errs[:, j], stat[:, j], thetas[i, j]),
                }
            )
    oracle = {
        (r["theta_index"], r["parameter"]): r["sigma_fit"] for r in rows if r["method"] == ORACLE
    }
    for r in rows:
        ref = oracle.get((r["theta_index"], r["parameter"]))
        r["sigma_ratio_oracle"] = None if ref is None else r["sigma_fit"] / ref
    return rows


@dataclass
class StudyResult:
    """A finished (or partial) study: the injected θ (K, 3), its settings and per-toy records."""

    thetas: NDArray[np.float64]
    config: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        return summarise(self.records, self.thetas)

    def to_json(self) -> dict[str, Any]:
        return {
            "thetas": self.thetas.tolist(),
            "config": self.config,
            "summary": self.summary(),
            "records": self.records,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> StudyResult:
        return cls(np.array(obj["thetas"], dtype=np.float64), obj["config"], obj["records"])

    def markdown(self) -> str:
        """The summary as a Markdown table (the proposal's Table 2, with errors)."""
        head = (
            "| θ | method | par | bias | σ_fit | σ_fit/σ_oracle | pull mean | pull width "
            "| width (Hessian only) | cov 68.3 % | cov 95.4 % | fit time |"
        )
        lines = [head, "|" + "---|" * 12]
        for r in self.summary():
            ratio = "–" if r["sigma_ratio_oracle"] is None else f"{r['sigma_ratio_oracle']:.3f}"
            lines.append(
                f"| ({', '.join(f'{v:g}' for v in r['theta'])}) | {r['method']} | {r['parameter']} "
                f"| {r['bias']:+.4f} ± {r['bias_err']:.4f} | {r['sigma_fit']:.4f} | {ratio} "
                f"| {r['pull_mean']:+.3f} ± {r['pull_mean_err']:.3f} "
                f"| {r['pull_width']:.3f} ± {r['pull_width_err']:.3f} | {r['pull_width_stat']:.3f} "
                f"| {r['cov68']:.3f} ± {r['cov68_err']:.3f} "
                f"| {r['cov95']:.3f} ± {r['cov95_err']:.3f} "
                f"| {r['fit_time_s'] * 1e3:.1f} ms |"
            )
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | Path, plots: bool = True) -> list[Path]:
        """Write study.json, summary.md and (optionally) pull and coverage plots."""
        out = Path(out_dir)
        text = json.dumps(finite_json(self.to_json()), indent=1, allow_nan=False)
        write_text_atomic(out / "study.json", text)
        write_text_atomic(out / "summary.md", self.markdown())
        paths = [out / "study.json", out / "summary.md"]
        if plots:
            from dyfit.plots.fit import plot_coverage, plot_pulls

            paths += plot_pulls(self, out / "pulls") + plot_coverage(self, out / "coverage")
        return paths


def _toy_job(job: tuple, model: Any, source: Any, models: Mapping[str, Any] | None) -> list:
    """One toy, from a job tuple: the unit :func:`run_study` hands to ``map_jobs``."""
    theta, i, k, n_events, n_nominal, methods, seed, oracle = job
    return run_toy(model, source, theta, i, k, n_events, n_nominal, methods, seed, oracle, models)


def _single_process(source: Any) -> Any:
    """The source without its own process pool: each Dask worker is already one process."""
    if getattr(source, "workers", 1) == 1:
        return source
    source = copy.copy(source)
    source.workers = 1  # Simulation's output does not depend on its number of workers
    return source


def run_study(
    model: Any,
    source: Any,
    thetas: ArrayLike,
    toys: int,
    n_events: int,
    n_nominal: int,
    methods: Sequence[str] = ("likelihood",),
    seed: int = 0,
    progress: bool = False,
    oracle: bool = True,
    models: Mapping[str, Any] | None = None,
    *,
    journal: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> StudyResult:
    """Run ``toys`` pseudo-experiments at each θ in ``thetas`` (shape (K, 3)).

    Arguments:
        journal: A folder where each finished toy is kept (:mod:`dyfit.studies.journal`);
            a rerun with the same settings skips the toys found there, so a killed study
            resumes and ends with the same records. Another study's journal is refused.
        scheduler: None runs the toys here, one after the other; ``"local"`` (a Dask
            LocalCluster of ``workers`` processes) or a Dask scheduler address fans them
            out (:func:`dyfit.parallel.map_jobs`). The records do not depend on it: each
            toy has its own seeds (:func:`toy_rngs`).

    Example:
        >>> study = run_study(TruthRatio(), ToyExperiment(), [[1, 0, 0]], 100, 2000, 6000)
        >>> print(study.markdown())  # doctest: +SKIP
    """
    from dyfit.parallel import map_jobs
    from dyfit.studies.journal import ToyJournal, describe_source, fingerprint

    thetas = np.atleast_2d(check_physical(thetas))
    prior = getattr(model, "prior", None)
    outside = [] if prior is None else [t for t in thetas if not prior.contains(t)]
    if outside:
        raise InputError(
            f"injected theta {outside[0].tolist()} lies outside the model's trained range "
            f"({prior.describe()}); pick theta inside it"
        )
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or toys < 2 or n_events < 1 or n_nominal < 1:
        raise InputError(
            f"study needs methods from {', '.join(METHODS)} (got {', '.join(unknown) or 'ok'}), "
            "at least 2 toys and positive event counts"
        )
    config = {
        "toys": toys,
        "n_events": n_events,
        "n_nominal": n_nominal,
        "methods": list(methods),
        "seed": seed,
        "oracle": oracle,
    }
    done: dict[tuple[int, int], list[dict[str, Any]]] = {}
    log = None
    if journal is not None:
        identity = {
            **config,
            "thetas": thetas.tolist(),
            "model": fingerprint(model),
            "models": {m: fingerprint(v) for m, v in sorted((models or {}).items())},
            "source": describe_source(source),
        }
        log = ToyJournal(journal, identity)
        done = log.done
    jobs = [(i, k) for i in range(len(thetas)) for k in range(toys)]
    todo = [job for job in jobs if job not in done]
    bar = None
    if progress:
        from tqdm import tqdm

        desc = f"toys ({len(jobs) - len(todo)} resumed)" if len(todo) < len(jobs) else "toys"
        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=desc, unit="toy")

    def finished(index: int, records: list[dict[str, Any]]) -> None:
        i, k = todo[index]
        if log is not None:
            log.append(i, k, records)
        done[i, k] = records
        if bar is not None:
            bar.update()

    spec = (n_events, n_nominal, tuple(methods), seed, oracle)
    shared = {
        "model": model,
        "source": source if scheduler is None else _single_process(source),
        "models": models,
    }
    jobs_todo = [(thetas[i], i, k, *spec) for i, k in todo]
    map_jobs(_toy_job, jobs_todo, scheduler, workers, shared=shared, on_result=finished)
    if bar is not None:
        bar.close()
    return StudyResult(thetas, config, [r for job in jobs for r in done[job]])
