r"""How good is a learned ratio? Reweighting closure and the log-ratio against the truth.

For each check point θ:

* **Closure** (DCTR-style, arXiv:1907.08209): an independent nominal sample weighted
  by r(x|θ) must reproduce an independent sample generated at θ, at detector
  level. Per feature (and two angular projections), both are histogrammed in
  equal-population bins of the θ sample, normalised, and compared with
  χ² = Σ (p_θ − p_w)² / (σ²_θ + σ²_w), ndf = bins − 1. The χ² of the *unweighted*
  nominal sample shows how much difference there was to close.
* **Two-sample classifier**: a small network trained to separate the reweighted
  nominal sample from the θ sample, in all features jointly; its held-out AUC must be
  0.5 within its error (:mod:`dyfit.training.two_sample`).
* **Normalisation**: ⟨r⟩ over nominal events must be 1; for the classifier,
  log⟨r⟩ is the θ-only offset the paired sampling is there to prevent.
* **Log-ratio vs reference**: the learned log r against the exact one (toy) or the
  truth-level one (:func:`~dyfit.training.samples.truth_log_ratio`) on the same
  nominal events: RMS difference and, because r(x|θ) = E_0[r_truth | x], a profile of
  the mean truth r in bins of learned r that must follow the diagonal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from dyfit.data.events import EventTable
from dyfit.physics.angular import THETA0, is_physical
from dyfit.physics.prior import ThetaPrior
from dyfit.training.samples import EventSource, nominal_abar, reference_log_ratio
from dyfit.training.two_sample import two_sample_auc

__all__ = [
    "VariableCheck",
    "ThetaCheck",
    "QualityReport",
    "model_log_ratio",
    "check_thetas",
    "closure_variables",
    "closure_histograms",
    "check_ratio",
]


@dataclass
class VariableCheck:
    """One feature's closure at one θ: normalised bin contents (B,) and errors."""

    name: str
    edges: list[float]
    target: list[float]  # the θ sample
    target_err: list[float]
    reweighted: list[float]  # nominal weighted by r(x|θ)
    reweighted_err: list[float]
    nominal: list[float]  # nominal, unweighted
    nominal_err: list[float]
    chi2: float
    chi2_nominal: float
    ndf: int


@dataclass
class ThetaCheck:
    """All checks at one θ (lists, so that the report is JSON-serialisable)."""

    theta: list[float]
    mean_ratio: float
    mean_ratio_err: float
    variables: list[VariableCheck]
    auc: float | None = None  # two-sample classifier: reweighted nominal vs the θ sample
    auc_err: float | None = None  # its standard error if the two agree
    log_ratio_rms: float | None = None  # RMS(learned − reference) over nominal events
    log_ratio_sample: dict[str, list[float]] = field(default_factory=dict)  # for the scatter
    profile: dict[str, list[float]] = field(default_factory=dict)  # learned r bins → truth r

    @property
    def chi2(self) -> float:
        return sum(v.chi2 for v in self.variables)

    @property
    def ndf(self) -> int:
        return sum(v.ndf for v in self.variables)


@dataclass
class QualityReport:
    kind: str
    feature_names: list[str]
    events: int
    checks: list[ThetaCheck]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A plain-text summary: one line per θ."""
        lines = [
            "lambda     mu     nu   chi2/ndf (weighted | unweighted)   <r>-1       rms dlogr   AUC"
        ]
        for c in self.checks:
            unweighted = sum(v.chi2_nominal for v in c.variables)
            rms = "—" if c.log_ratio_rms is None else f"{c.log_ratio_rms:.4f}"
            auc = "—" if c.auc is None else f"{c.auc:.4f}±{c.auc_err:.4f}"
            lines.append(
                f"{c.theta[0]:6.3f} {c.theta[1]:6.3f} {c.theta[2]:6.3f}   "
                f"{c.chi2:8.1f}/{c.ndf:<4d} | {unweighted:9.1f}/{c.ndf:<4d}   "
                f"{c.mean_ratio - 1:+.4f}±{c.mean_ratio_err:.4f}   {rms}    {auc}"
            )
        return "\n".join(lines)


@torch.no_grad()
def model_log_ratio(
    model: torch.nn.Module, events: EventTable, theta: NDArray, batch_size: int = 65536
) -> NDArray[np.float64]:
    """The model's log r(x|θ) on ``events`` (columns ``model.feature_names``), shape (N,)."""
    tensors = [*model.buffers(), *model.parameters()]
    device = tensors[0].device if tensors else torch.device("cpu")
    x = torch.from_numpy(events.matrix(model.feature_names, np.float32)).to(device)
    t = torch.as_tensor(np.asarray(theta), dtype=torch.float32, device=device)
    model.eval()
    parts = [
        model.log_ratio(x[s : s + batch_size], t if t.dim() == 1 else t[s : s + batch_size])
        for s in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(parts).double().cpu().numpy()


def check_thetas(prior: ThetaPrior, step: float = 0.35) -> NDArray[np.float64]:
    """The prior's centre and, per coefficient, centre ± ``step`` × width; physical only (K, 3)."""
    bounds = prior.bounds
    centre, width = bounds.mean(1), np.diff(bounds, axis=1)[:, 0]
    points = [centre] + [
        centre + s * step * width * np.eye(3)[k] for k in range(3) for s in (-1, 1)
    ]
    points = np.array(points)
    return points[is_physical(points)]


def closure_variables(events: EventTable, features: list[str]) -> dict[str, NDArray]:
    """The model's features, plus sin2θ cosφ and sin²θ cos2φ when it reads cosθ and φ.

    The μ and ν terms hide in the one-dimensional cosθ and φ distributions (the μ term
    integrates to zero over either for an acceptance even in cosθ); these projections
    show them.
    """
    out = {f: events[f] for f in features}
    if "costh" in out and "phi" in out:
        c, phi = out["costh"], out["phi"]
        sin2 = np.clip(1.0 - c * c, 0.0, None)
        out["sin2theta_cosphi"] = 2.0 * c * np.sqrt(sin2) * np.cos(phi)
        out["sin2theta_cos2phi"] = sin2 * np.cos(2.0 * phi)
    return out


def _normalised(values: NDArray, edges: NDArray, weights: NDArray | None = None):
    w = np.ones_like(values) if weights is None else weights
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    sw = np.bincount(idx, w, len(edges) - 1)
    sw2 = np.bincount(idx, w * w, len(edges) - 1)
    total = w.sum()
    return sw / total, np.sqrt(sw2) / total


def closure_histograms(
    name: str,
    target: NDArray,
    nominal: NDArray,
    weights: NDArray,
    bins: int = 20,
    target_weights: NDArray | None = None,
) -> VariableCheck:
    """Compare the θ sample with the nominal sample, weighted and unweighted, in one variable.

    Bins hold equal shares of the θ sample; nominal events beyond its range count in the
    outermost bins. ``target_weights`` weights the θ sample (weighted data; sumw2 errors).
    """
    edges = np.unique(np.quantile(target, np.linspace(0.0, 1.0, bins + 1)))
    pt, et = _normalised(target, edges, target_weights)
    pw, ew = _normalised(nominal, edges, weights)
    pn, en = _normalised(nominal, edges)
    ndf = len(edges) - 2

    def chi2(p, e):
        var = et**2 + e**2
        ok = var > 0
        return float(np.sum((pt[ok] - p[ok]) ** 2 / var[ok]))

    return VariableCheck(
        name,
        edges.tolist(),
        pt.tolist(),
        et.tolist(),
        pw.tolist(),
        ew.tolist(),
        pn.tolist(),
        en.tolist(),
        chi2(pw, ew),
        chi2(pn, en),
        ndf,
    )


def _profile(learned: NDArray, reference: NDArray, bins: int = 20) -> dict[str, list[float]]:
    """Mean reference r in equal-population bins of learned r."""
    r_learned, r_ref = np.exp(learned), np.exp(reference)
    order = np.argsort(r_learned)
    groups = np.array_split(order, bins)
    return {
        "learned": [float(r_learned[g].mean()) for g in groups],
        "reference": [float(r_ref[g].mean()) for g in groups],
        "reference_err": [float(r_ref[g].std() / np.sqrt(max(g.size, 1))) for g in groups],
    }


def check_ratio(
    model: torch.nn.Module,
    simulator: EventSource,
    rng: np.random.Generator,
    thetas: NDArray | None = None,
    n_events: int = 100_000,
    bins: int = 20,
    scatter: int = 5000,
) -> QualityReport:
    r"""Run the closure, normalisation and log-ratio checks of ``model`` at several θ.

    Arguments:
        model: A ratio model (``feature_names``, ``log_ratio``, ``kind``).
        simulator: Source of independent events, ``simulate(n, theta, rng)``.
        rng: The random generator (fixes both samples).
        thetas: Check points with shape (K, 3); default :func:`check_thetas` of the prior.
        n_events: Events per sample: one nominal sample, plus one at each θ.
        bins: Bins per feature histogram.
        scatter: Events kept per θ for the learned-vs-reference scatter plot.
    """
    thetas = check_thetas(model.prior) if thetas is None else np.atleast_2d(thetas)
    features = list(model.feature_names)
    nominal = simulator.simulate(n_events, THETA0, rng)
    nominal_vars = closure_variables(nominal, features)
    abar = nominal_abar(nominal)
    checks = []
    for theta in thetas:
        sample = simulator.simulate(n_events, theta, rng)
        log_r = model_log_ratio(model, nominal, theta)
        r = np.exp(log_r)
        sample_vars = closure_variables(sample, features)
        auc, auc_err = two_sample_auc(
            np.column_stack(list(nominal_vars.values())),
            r,
            np.column_stack(list(sample_vars.values())),
            rng,
        )
        check = ThetaCheck(
            theta=theta.tolist(),
            mean_ratio=float(r.mean()),
            mean_ratio_err=float(r.std() / np.sqrt(r.size)),
            variables=[
                closure_histograms(name, target, nominal_vars[name], r, bins)
                for name, target in sample_vars.items()
            ],
            auc=auc,
            auc_err=auc_err,
        )
        reference = reference_log_ratio(nominal, theta, abar, simulator)
        if reference is not None:
            check.log_ratio_rms = float(np.sqrt(np.mean((log_r - reference) ** 2)))
            keep = slice(0, scatter)
            check.log_ratio_sample = {
                "learned": log_r[keep].tolist(),
                "reference": reference[keep].tolist(),
            }
            check.profile = _profile(log_r, reference, bins)
        checks.append(check)
    return QualityReport(model.kind, features, n_events, checks)
