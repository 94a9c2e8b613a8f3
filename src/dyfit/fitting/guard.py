r"""The mismodelling guard: does the simulation, reweighted to θ̂, describe the data?

A fit of θ trusts the simulation in everything but the angular coefficients. After
the fit, the nominal sample weighted by the ratio model's r(y_j|θ̂) must look like the
data in every detector-level variable (the reweighting closure of arXiv:1907.08209,
here against real data). Two checks, with the helpers of :mod:`dyfit.training.quality`:

* per variable (the model's detector-level features and the sin2θ cosφ, sin²θ cos2φ
  projections), weighted histograms in equal-population bins of the data, both
  normalised, sumw2 errors on both sides:
  χ² = Σ_b (p_data − p_sim)² / (σ²_data + σ²_sim), ndf = bins − 1, and its p-value;
  the same against the unweighted nominal sample (θ0) shows what the fit changed;
* a classifier two-sample test in all those variables jointly: the held-out weighted
  AUC of data vs reweighted simulation and its error under the null
  (:func:`~dyfit.training.two_sample.two_sample_auc`, arXiv:1610.06545).

The guard fires (a :class:`~dyfit.errors.DyfitWarning` per failure) when a χ² p-value
is below ``p_min`` (default 1e-3) or the AUC is more than ``auc_sigma`` (default 3)
standard errors from 0.5. Without a model (binned fits) the nominal sample is reweighted
with the exact truth-level weight p(Ω|θ̂)/p(Ω|θ0).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.data.columns import FEATURES_DEFAULT
from dyfit.data.events import EventTable
from dyfit.data.selection import event_weights
from dyfit.errors import DyfitWarning, InputError
from dyfit.training.quality import VariableCheck, closure_histograms, closure_variables

__all__ = ["GuardReport", "guard_variables", "simulation_weights", "mismodelling_guard"]


@dataclass
class GuardReport:
    """The guard's verdict at θ̂: per-variable closure (with p-values) and the AUC."""

    theta: list[float]
    variables: list[VariableCheck]  # target: data; reweighted: simulation at θ̂; nominal: at θ0
    p_values: list[float]
    auc: float
    auc_err: float
    p_min: float = 1e-3
    auc_sigma: float = 3.0

    @property
    def failures(self) -> list[str]:
        """One line per failed check; empty when the simulation describes the data."""
        out = [
            f"data and simulation at the fitted theta differ in {v.name}: "
            f"chi2/ndf = {v.chi2:.1f}/{v.ndf}, p = {p:.2g}"
            for v, p in zip(self.variables, self.p_values, strict=True)
            if p < self.p_min
        ]
        if abs(self.auc - 0.5) > self.auc_sigma * self.auc_err:
            out.append(
                f"a classifier tells data from simulation at the fitted theta: AUC = "
                f"{self.auc:.4f} +- {self.auc_err:.4f}"
            )
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``result.extra["guard"]``), with the verdict and the failures."""
        return asdict(self) | {"passed": self.passed, "failures": self.failures}

    def table(self) -> str:
        """A plain-text summary: χ²/ndf at θ̂ and at θ0 and the p-value per variable, the AUC."""
        lines = [f"{'guard: variable':24s}{'chi2/ndf at fit':>18s}{'at theta0':>14s}{'p':>10s}"]
        for v, p in zip(self.variables, self.p_values, strict=True):
            lines.append(
                f"{v.name:24s}{f'{v.chi2:.1f}/{v.ndf}':>18s}"
                f"{f'{v.chi2_nominal:.1f}/{v.ndf}':>14s}{p:10.3g}"
            )
        lines.append(f"classifier AUC {self.auc:.4f} +- {self.auc_err:.4f} (0.5: no difference)")
        lines.append("guard: passed" if self.passed else "guard: FAILED")
        return "\n".join(lines)


def guard_variables(data: EventTable, nominal: EventTable, model: Any = None) -> list[str]:
    """The detector-level columns both samples hold: the standard features, then the model's."""
    names = [*FEATURES_DEFAULT, *getattr(model, "feature_names", ())]
    names = [n for n in dict.fromkeys(names) if not n.startswith("true_")]
    names = [n for n in names if n in data and n in nominal]
    if not names:
        raise InputError(
            f"data and simulation share none of the columns {', '.join(FEATURES_DEFAULT)}; "
            "map the data's columns with --columns"
        )
    return names


def simulation_weights(
    model: Any, nominal: EventTable, theta: ArrayLike, drop_invalid: bool = False
) -> tuple[EventTable, NDArray[np.float64]]:
    """The nominal events kept and their weights r(y|θ̂) (× their own ``weight``), shape (M,).

    With ``model`` None the exact truth weight p(Ω|θ̂)/p(Ω|θ0) from true_costh, true_phi.
    """
    if model is None:
        from dyfit.physics.angular import angular_weight

        nominal.require(("true_costh", "true_phi"), "the nominal sample (truth reweighting)")
        r = angular_weight(nominal["true_costh"], nominal["true_phi"], theta)
    else:
        from dyfit.fitting.evaluate import ratio_sample

        names = list(model.feature_names)
        finite = np.all(np.isfinite(nominal.matrix(names)), axis=1)
        if drop_invalid:  # ratio_sample drops the same rows: keep the table aligned
            nominal = nominal.select(finite)
        sample, _ = ratio_sample(model, nominal, "nominal sample", drop_invalid)
        r = sample.ratio(np.asarray(theta, dtype=np.float64))
    own = event_weights(nominal)
    return nominal, r if own is None else r * own


def mismodelling_guard(
    model: Any,
    data: EventTable,
    nominal: EventTable,
    theta: ArrayLike,
    *,
    rng: np.random.Generator | None = None,
    bins: int = 20,
    p_min: float = 1e-3,
    auc_sigma: float = 3.0,
    drop_invalid: bool = False,
    warn: bool = True,
) -> GuardReport:
    """Compare ``data`` with ``nominal`` reweighted to ``theta`` (3,) (module docstring).

    Arguments:
        model: The ratio model of the fit (None: truth-level reweighting, binned fits).
        data: The fitted events; a ``weight`` column weights them.
        nominal: The simulation at θ0 = (1, 0, 0) the fit used.
        theta: The fitted θ̂.
        rng: Seeds the classifier's split and training (default: seed 0).
        bins: Equal-population bins of the data per variable.
        p_min, auc_sigma: The thresholds at which the guard fires.
        warn: Issue a DyfitWarning per failed check.

    Example:
        >>> report = mismodelling_guard(model, data, nominal, result.values)  # doctest: +SKIP
        >>> result.extra["guard"] = report.to_dict()  # doctest: +SKIP
    """
    from scipy.stats import chi2

    from dyfit.training.two_sample import two_sample_auc

    rng = np.random.default_rng(0) if rng is None else rng
    nominal, w_sim = simulation_weights(model, nominal, theta, drop_invalid)
    names = guard_variables(data, nominal, model)
    w_data = event_weights(data)
    if w_data is None:
        w_data = np.ones(len(data))
    sim = closure_variables(nominal, names)
    dat = closure_variables(data, names)
    x_sim, x_dat = np.column_stack(list(sim.values())), np.column_stack(list(dat.values()))
    ok_sim, ok_dat = np.all(np.isfinite(x_sim), 1), np.all(np.isfinite(x_dat), 1)
    if not (drop_invalid or (ok_sim.all() and ok_dat.all())):
        raise InputError("NaN or inf in the guard's variables; clean the input or --drop-invalid")
    checks = [
        closure_histograms(n, dat[n][ok_dat], sim[n][ok_sim], w_sim[ok_sim], bins, w_data[ok_dat])
        for n in sim
    ]
    # Files may be ordered (by run, by sample): shuffle before the classifier's half split.
    i_sim, i_dat = rng.permutation(np.flatnonzero(ok_sim)), rng.permutation(np.flatnonzero(ok_dat))
    auc, auc_err = two_sample_auc(
        x_sim[i_sim], w_sim[i_sim], x_dat[i_dat], rng, weights_b=w_data[i_dat]
    )
    report = GuardReport(
        theta=[float(t) for t in np.asarray(theta)],
        variables=checks,
        p_values=[float(chi2.sf(c.chi2, c.ndf)) if c.ndf > 0 else 1.0 for c in checks],
        auc=auc,
        auc_err=auc_err,
        p_min=p_min,
        auc_sigma=auc_sigma,
    )
    if warn:
        for failure in report.failures:
            warnings.warn(failure, DyfitWarning, stacklevel=2)
    return report
