r"""θ = (λ, μ, ν) in bins of a kinematic variable (pT, xF, mass, x1, x2): differential fits.

One ratio model serves every bin: it already sees the kinematics, so the fit in bin b
is the ordinary fit on the data and the nominal events of that bin,

    NLL_b(θ) = −Σ_{i∈b} log r(x_i|θ) + N_b log[(1/M_b) Σ_{j∈b} r(y_j|θ)],

the likelihood of the events conditional on lying in the bin (the nominal sample of the
bin normalises the ratio there). Any method of :func:`dyfit.fitting.fit` works.

Bins follow :func:`numpy.histogram`: bin k holds e_k ≤ v < e_{k+1}, the last bin also
v = e_n. Values below e_0 (underflow), above e_n (overflow) or NaN are counted, not fitted.

Where θ varies inside a bin, the bin's θ̂ estimates the mean θ of its events: the
density is linear in θ, so a mixture of densities at θ(v) with a common λ is the
density at their mean (exactly at truth level, up to the θ-dependence of the
acceptance otherwise). :func:`reference_in_bins` gives that mean for simulated events.

The Lam-Tung combination L = 1 − λ − 2ν (Lam & Tung, Phys. Rev. D 21 (1980) 2712)
vanishes at O(α_s); its error is √(gᵀVg) with g = ∂L/∂θ = (−1, 0, −2).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.data.columns import THETA_COLUMNS
from dyfit.data.events import EventTable
from dyfit.errors import InputError
from dyfit.fitting.result import FitResult
from dyfit.physics.angular import THETA_NAMES

__all__ = [
    "Binning",
    "parse_binning",
    "BinFit",
    "DifferentialResult",
    "fit_differential",
    "lam_tung",
    "reference_in_bins",
]

LAM_TUNG_GRADIENT = np.array([-1.0, 0.0, -2.0])  # ∂(1 − λ − 2ν)/∂(λ, μ, ν)


@dataclass(frozen=True)
class Binning:
    """Bins of ``variable`` with edges of shape (n_bins + 1,), increasing."""

    variable: str
    edges: tuple[float, ...]

    def __post_init__(self) -> None:
        e = np.asarray(self.edges, dtype=np.float64)
        if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
            raise InputError(
                f"bin edges of {self.variable} must be at least two finite, strictly "
                f"increasing numbers, got {list(self.edges)}"
            )

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1

    @property
    def centres(self) -> NDArray[np.float64]:
        e = np.asarray(self.edges)
        return 0.5 * (e[1:] + e[:-1])

    def index(self, values: ArrayLike) -> NDArray[np.intp]:
        """Each value's bin, shape (N,): 0..n_bins−1; −1 underflow, n_bins overflow, −2 NaN."""
        v = np.asarray(values, dtype=np.float64)
        e = np.asarray(self.edges)
        k = np.searchsorted(e, v, side="right") - 1
        k[v == e[-1]] = self.n_bins - 1  # the last bin is closed, as in numpy.histogram
        k[v > e[-1]] = self.n_bins
        k[np.isnan(v)] = -2
        return k

    def column(self, table: EventTable, what: str) -> NDArray[np.float64]:
        if self.variable not in table:
            raise InputError(
                f"{what} lacks the bin variable {self.variable!r}; bin in one of its columns "
                f"({', '.join(table.names)})"
            )
        return np.asarray(table[self.variable], dtype=np.float64)


def parse_binning(text: str) -> Binning:
    """Parse ``"pT=0,0.5,1,1.5,2.5"`` (variable = edges) into a :class:`Binning`."""
    variable, sep, rest = (s.strip() for s in text.partition("="))
    try:
        edges = tuple(float(x) for x in rest.split(","))
    except ValueError:
        edges = ()
    if not (sep and variable and len(edges) >= 2):
        raise InputError(f"cannot parse bins {text!r}; write VARIABLE=e0,e1,... e.g. pT=0,0.5,1")
    return Binning(variable, edges)


def lam_tung(values: ArrayLike, covariance: ArrayLike | None) -> tuple[float, float]:
    """L = 1 − λ − 2ν and its error √(gᵀVg); θ (3,), V (3, 3) or None (error NaN)."""
    t = np.asarray(values, dtype=np.float64)
    value = float(1.0 - t[0] - 2.0 * t[2])
    if covariance is None:
        return value, float("nan")
    g = LAM_TUNG_GRADIENT
    return value, float(np.sqrt(max(g @ np.asarray(covariance) @ g, 0.0)))


@dataclass
class BinFit:
    """One bin: its edges, event counts, the mean of the variable and the fit (None if skipped)."""

    low: float
    high: float
    n_events: int
    n_nominal: int
    mean: float
    result: FitResult | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        out = {"low": self.low, "high": self.high, "n_events": self.n_events}
        out.update(n_nominal=self.n_nominal, mean=self.mean if np.isfinite(self.mean) else None)
        if self.result is None:
            return {**out, "fit": None, "note": self.note}
        value, error = lam_tung(self.result.values, self.result.covariance_total)
        lt = {"value": value, "error": error if np.isfinite(error) else None}
        return {**out, "lam_tung": lt, "fit": self.result.to_json()}


@dataclass
class DifferentialResult:
    """θ̂ per bin of :attr:`binning`, with the under/overflow counts of the data."""

    binning: Binning
    method: str
    bins: list[BinFit]
    underflow: int = 0
    overflow: int = 0
    invalid: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def values(self) -> NDArray[np.float64]:
        """θ̂ per bin, (n_bins, 3); NaN in skipped bins."""
        return np.array([b.result.values if b.result else np.full(3, np.nan) for b in self.bins])

    @property
    def covariances(self) -> NDArray[np.float64]:
        """Total covariance per bin, (n_bins, 3, 3); NaN where skipped or unknown."""
        covs = [None if b.result is None else b.result.covariance_total for b in self.bins]
        return np.array([np.full((3, 3), np.nan) if c is None else c for c in covs])

    @property
    def errors(self) -> NDArray[np.float64]:
        """Total errors per bin, (n_bins, 3)."""
        return np.sqrt(np.diagonal(self.covariances, axis1=1, axis2=2))

    @property
    def lam_tung(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """1 − λ − 2ν per bin and its error, each (n_bins,)."""
        pairs = [lam_tung(v, c) for v, c in zip(self.values, self.covariances, strict=True)]
        return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])

    def chi2(
        self, reference: ArrayLike, parameters: tuple[str, ...] = THETA_NAMES
    ) -> tuple[float, int, float]:
        """χ², degrees of freedom and p-value of θ̂ against ``reference`` (n_bins, 3).

        Sums (θ̂_b − θ_b)ᵀ V_b⁻¹ (θ̂_b − θ_b) over the fitted bins, restricted to
        ``parameters`` (bins are independent: disjoint events, disjoint nominal events).
        """
        from scipy.stats import chi2

        idx = [THETA_NAMES.index(p) for p in parameters]
        ref = np.asarray(reference, dtype=np.float64)
        total, ndf = 0.0, 0
        for d, v in zip(self.values - ref, self.covariances, strict=True):
            d, v = d[idx], v[np.ix_(idx, idx)]
            if np.all(np.isfinite(d)) and np.all(np.isfinite(v)):
                total += float(d @ np.linalg.solve(v, d))
                ndf += len(idx)
        return total, ndf, float(chi2.sf(total, ndf)) if ndf else float("nan")

    def to_json(self) -> dict[str, Any]:
        from dyfit.atomic import finite_json

        return finite_json(
            {
                "variable": self.binning.variable,
                "edges": [float(e) for e in self.binning.edges],
                "method": self.method,
                "underflow": self.underflow,
                "overflow": self.overflow,
                "invalid": self.invalid,
                "bins": [b.to_json() for b in self.bins],
                **self.extra,
            }
        )

    def table(self) -> str:
        """A Markdown table: one row per bin, value ± total error and the Lam-Tung combination."""
        from dyfit.data.columns import UNITS

        unit = UNITS.get(self.binning.variable, "")
        head = f"{self.binning.variable} [{unit}]" if unit else self.binning.variable
        rows = [
            f"| {head} | N | λ | μ | ν | 1 − λ − 2ν |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lt, lt_err = self.lam_tung
        for b, v, e, lv, le in zip(self.bins, self.values, self.errors, lt, lt_err, strict=True):
            cells = [f"{x:.4f} ± {s:.4f}" for x, s in zip([*v, lv], [*e, le], strict=True)]
            if b.result is None:
                cells = ["—"] * 4
            close = "]" if b is self.bins[-1] else ")"
            rows.append(f"| [{b.low:g}, {b.high:g}{close} | {b.n_events} | {' | '.join(cells)} |")
        rows.append(
            f"\nmethod {self.method}; underflow {self.underflow}, overflow {self.overflow}, "
            f"NaN {self.invalid} events not fitted."
        )
        return "\n".join(rows)


def fit_differential(
    model: Any,
    data: EventTable,
    nominal: EventTable,
    binning: Binning,
    method: str = "likelihood",
    *,
    min_events: int = 20,
    **options: Any,
) -> DifferentialResult:
    """Fit θ in each bin of ``binning`` with :func:`dyfit.fitting.fit` and ``method``.

    Arguments:
        model: A ratio model (ignored by the binned methods).
        data: The events; they and ``nominal`` need the column ``binning.variable``.
        nominal: Events at θ0 that normalise the ratio, binned alike.
        binning: The bins (:func:`parse_binning`).
        min_events: Bins with fewer data events are skipped (with a note), not fitted.
        options: Passed on to the fitter (``start``, ``drop_invalid``, ...).

    Warnings of a bin's fit are re-issued with the bin named.

    Example:
        >>> bins = parse_binning("pT=0,1,2")
        >>> res = fit_differential(TruthRatio(), data, nominal, bins)  # doctest: +SKIP
        >>> print(res.table())  # doctest: +SKIP
    """
    from dyfit.fitting import fit

    v_data = binning.column(data, "data")
    k_data = binning.index(v_data)
    k_nom = binning.index(binning.column(nominal, "nominal sample"))
    bins = []
    for b in range(binning.n_bins):
        low, high = binning.edges[b], binning.edges[b + 1]
        in_data, in_nom = k_data == b, k_nom == b
        n, m = int(in_data.sum()), int(in_nom.sum())
        mean = float(v_data[in_data].mean()) if n else float("nan")
        row = BinFit(low, high, n, m, mean)
        if n < min_events or m == 0:
            row.note = f"skipped: {n} data and {m} nominal events (need >= {min_events} and > 0)"
            bins.append(row)
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            row.result = fit(model, data.select(in_data), nominal.select(in_nom), method, **options)
        for w in caught:
            label = f"bin {binning.variable} in [{low:g}, {high:g})"
            warnings.warn(f"{label}: {w.message}", w.category, stacklevel=2)
        bins.append(row)
    return DifferentialResult(
        binning,
        method,
        bins,
        underflow=int(np.sum(k_data == -1)),
        overflow=int(np.sum(k_data == binning.n_bins)),
        invalid=int(np.sum(k_data == -2)),
    )


def reference_in_bins(
    data: EventTable, binning: Binning, curve: Any = None
) -> NDArray[np.float64] | None:
    """The mean injected θ of each bin's events, (n_bins, 3); None if the data cannot tell.

    With a :class:`~dyfit.physics.curves.ThetaCurve`, θ(v) at each event's truth variable
    (``true_<variable>``, else the variable itself); without, the generated θ columns
    (``theta_lambda`` ...) of simulated events. Empty bins give NaN.
    """
    if curve is not None:
        name = f"true_{curve.variable}"
        name = name if name in data else curve.variable
        data.require([name], "data (to evaluate the truth curve)")
        theta = curve(np.asarray(data[name], dtype=np.float64))
    elif all(c in data for c in THETA_COLUMNS):
        theta = data.matrix(THETA_COLUMNS)
    else:
        return None
    k = binning.index(binning.column(data, "data"))
    inside = (k >= 0) & (k < binning.n_bins)
    counts = np.bincount(k[inside], minlength=binning.n_bins).astype(np.float64)
    sums = np.stack(
        [np.bincount(k[inside], theta[inside, p], binning.n_bins) for p in range(3)], axis=-1
    )
    with np.errstate(invalid="ignore"):
        return sums / counts[:, None]
