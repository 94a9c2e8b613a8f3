r"""A frozen ratio model evaluated on one event sample, as the fits need it.

A fit only ever asks two things of the model at a trial θ: the per-event log-ratio
log r(x|θ) and the ratio r(x|θ), each with its gradient in θ, on the data or on
the nominal sample. :class:`MomentsSample` answers in closed form from ĥ(x), computed
once (one network pass, float64 after); :class:`NetworkSample` runs the network
at each θ (eval mode, weights frozen, chunked, θ-gradients by autograd).

For a moments model, with c = (1, λ, μ, ν) and the model's ā,

    r(x|θ) = ĥ(x)·c / ā·c,    ∇_θ r = (ĥ' − r ā') / ā·c,

where ' drops the first component (∂c/∂θ picks components 1..3).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.data.events import EventTable
from dyfit.errors import InputError
from dyfit.physics.angular import THETA0, basis_coefficients

__all__ = [
    "CHUNK",
    "frozen",
    "feature_matrix",
    "fit_columns",
    "nominal_sample",
    "ratio_sample",
    "MomentsSample",
    "NetworkSample",
]

CHUNK = 65536


def feature_matrix(
    table: EventTable, names: tuple[str, ...], what: str = "data", drop_invalid: bool = False
) -> tuple[NDArray[np.float64], int]:
    """The model's feature columns as an (N, F) array, and how many rows were dropped.

    Raises InputError when a column is missing (the model reads other features than
    the file holds) or when rows hold NaN/inf and ``drop_invalid`` is false.
    """
    usable, n_bad = _usable(table, tuple(names), what, drop_invalid)
    return usable.matrix(names), n_bad


def fit_columns(model: Any, nominal: bool = False) -> tuple[str, ...]:
    """The columns a neural fit reads: the model's features and ``weight``; for the nominal
    sample also the truth angles, for the physical-limit check (:mod:`dyfit.fitting.oracle`)."""
    extra = ("weight", "true_costh", "true_phi") if nominal else ("weight",)
    return tuple(dict.fromkeys((*model.feature_names, *extra)))


def nominal_sample(source: Any, n: int, rng: np.random.Generator) -> EventTable:
    """n events at θ0 = (1, 0, 0) from an event source (anything with ``simulate``)."""
    return source.simulate(int(n), THETA0, rng)


def _placement(model: Any) -> tuple[Any, Any]:
    """The (dtype, device) of the model's state: float64 for the oracle, float32 otherwise."""
    import torch

    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.float32, torch.device("cpu")


@contextlib.contextmanager
def frozen(model: Any) -> Iterator[Any]:
    """The model in eval mode with its weights excluded from autograd, restored afterwards."""
    training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        model.train(training)
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)


class MomentsSample:
    """A sample seen through a linear model: ĥ with shape (n, 4) and the model's ā (4,)."""

    kind = "moments"

    def __init__(self, h: ArrayLike, abar: ArrayLike) -> None:
        self.h = np.asarray(h, dtype=np.float64)
        self.abar = np.asarray(abar, dtype=np.float64)

    def __len__(self) -> int:
        return self.h.shape[0]

    def subset(self, index: NDArray) -> MomentsSample:
        return MomentsSample(self.h[index], self.abar)

    def hc(self, theta: ArrayLike) -> NDArray[np.float64]:
        """The unnormalised ratio ĥ·c, shape (n,); ≤ 0 marks θ outside the model's range."""
        return self.h @ basis_coefficients(theta)

    def log_ratio(self, theta: ArrayLike, grad: bool = False):
        """log r with shape (n,) (NaN where ĥ·c ≤ 0) and, if ``grad``, ∇log r with shape (n, 3)."""
        c = basis_coefficients(theta)
        hc, ac = self.h @ c, self.abar @ c
        with np.errstate(invalid="ignore", divide="ignore"):
            lr = np.where(hc > 0, np.log(np.where(hc > 0, hc, 1.0)) - np.log(ac), np.nan)
            if not grad:
                return lr
            return lr, self.h[:, 1:] / hc[:, None] - self.abar[1:] / ac

    def ratio(self, theta: ArrayLike, grad: bool = False):
        """r with shape (n,) and, if ``grad``, ∇r with shape (n, 3)."""
        c = basis_coefficients(theta)
        ac = self.abar @ c
        r = (self.h @ c) / ac
        if not grad:
            return r
        return r, (self.h[:, 1:] - r[:, None] * self.abar[1:]) / ac


class NetworkSample:
    """A sample seen through a network: the features as a tensor, the model run per θ."""

    kind = "network"

    def __init__(self, model: Any, x: Any, chunk: int = CHUNK) -> None:
        self.model, self.x, self.chunk = model, x, chunk

    def __len__(self) -> int:
        return self.x.shape[0]

    def subset(self, index: NDArray) -> NetworkSample:
        return NetworkSample(self.model, self.x[index], self.chunk)

    def log_ratio(self, theta: ArrayLike, grad: bool = False):
        """log r with shape (n,) and, if ``grad``, the per-event ∇log r with shape (n, 3)."""
        import torch

        t = torch.as_tensor(
            np.asarray(theta, dtype=np.float64), dtype=self.x.dtype, device=self.x.device
        )
        values, grads = [], []
        with frozen(self.model):
            for start in range(0, len(self), self.chunk):
                xc = self.x[start : start + self.chunk]
                if not grad:
                    with torch.no_grad():
                        values.append(self.model.log_ratio(xc, t))
                    continue
                # One θ row per event: the gradient of the sum is then per-event.
                tc = t.expand(xc.shape[0], 3).clone().requires_grad_(True)
                lr = self.model.log_ratio(xc, tc)
                (g,) = torch.autograd.grad(lr.sum(), tc)
                values.append(lr.detach())
                grads.append(g)
        lr = torch.cat(values).double().cpu().numpy()
        return (lr, torch.cat(grads).double().cpu().numpy()) if grad else lr

    def ratio(self, theta: ArrayLike, grad: bool = False):
        """r = exp(log r) with shape (n,) and, if ``grad``, ∇r = r ∇log r with shape (n, 3)."""
        if not grad:
            return np.exp(self.log_ratio(theta))
        lr, g = self.log_ratio(theta, grad=True)
        r = np.exp(lr)
        return r, r[:, None] * g


def _usable(table: EventTable, names: tuple[str, ...], what: str, drop_invalid: bool):
    """The table cut to the model's feature columns and finite rows, and the rows dropped
    (the checks of :func:`feature_matrix`, column by column: no (N, F) matrix is made)."""
    missing = [n for n in names if n not in table]
    if missing:
        raise InputError(
            f"{what} lacks column(s) {', '.join(missing)} that the model reads "
            f"(model features: {', '.join(names)}); give events with those columns"
        )
    finite = np.ones(len(table), dtype=bool)
    for n in names:
        finite &= np.isfinite(np.asarray(table[n], dtype=np.float64))
    n_bad = len(table) - int(np.count_nonzero(finite))
    if n_bad and not drop_invalid:
        raise InputError(
            f"{what} has {n_bad} event(s) with NaN or inf in the model's features; "
            "remove them or pass --drop-invalid"
        )
    if n_bad == len(table):
        raise InputError(f"{what} holds no usable events")
    columns = {n: table[n][finite] if n_bad else table[n] for n in names}
    return EventTable(columns), n_bad


def ratio_sample(
    model: Any,
    table: EventTable,
    what: str = "data",
    drop_invalid: bool = False,
    chunk: int = CHUNK,
) -> tuple[MomentsSample | NetworkSample, int]:
    """The model on one event table (one network pass for moments models), and rows dropped.

    The features are converted ``chunk`` events at a time into preallocated outputs:
    ĥ with shape (N, 4) in float64 for moments models, else the features (N, F) in the
    model's dtype, never an (N, F) float64 copy: with the columns read lean, a fit of 10^7
    data and 10^7 nominal events peaks at 2.7 GiB RSS (benchmarks/bench_memory.py).
    """
    import torch

    names = tuple(model.feature_names)
    usable, n_bad = _usable(table, names, what, drop_invalid)
    dtype, device = _placement(model)
    n = len(usable)

    def block(start: int):
        x = np.stack([np.asarray(usable[c][start : start + chunk]) for c in names], axis=-1)
        return torch.as_tensor(x, dtype=dtype, device=device)  # (≤ chunk, F)

    if getattr(model, "kind", "classifier") != "moments":
        xt = torch.empty((n, len(names)), dtype=dtype, device=device)
        for start in range(0, n, chunk):
            xt[start : start + chunk] = block(start)
        folded = getattr(model, "folded", None)
        return NetworkSample(folded() if callable(folded) else model, xt, chunk), n_bad
    h = np.empty((n, 4))
    with frozen(model), torch.no_grad():
        for start in range(0, n, chunk):
            h[start : start + chunk] = model.moments(block(start)).double().cpu().numpy()
    return MomentsSample(h, model.abar.double().cpu().numpy()), n_bad
