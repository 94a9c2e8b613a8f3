"""Fitting θ = (λ, μ, ν) with a frozen ratio model: likelihood, BCE (MIGRAD or Adam), scans.

Example:
    >>> from dyfit.fitting import TruthRatio, fit
    >>> result = fit(TruthRatio(), data, nominal, method="likelihood")  # doctest: +SKIP
    >>> print(result.table())  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dyfit.errors import InputError
from dyfit.fitting.methods import BINNED_METHODS, FIT_METHODS, GENERATIVE_METHODS, NEURAL_METHODS

if TYPE_CHECKING:
    import numpy as np

    from dyfit.data.events import EventTable
    from dyfit.fitting.bce import fit_bce
    from dyfit.fitting.likelihood import fit_likelihood
    from dyfit.fitting.oracle import TruthRatio
    from dyfit.fitting.result import FIT_RESULT_SCHEMA, FitResult

# The fitters need torch: they load on first use, so that the CLI modules, which import
# the method names from here, keep `dyfit CMD --help` fast.
_LAZY = {
    "FIT_RESULT_SCHEMA": "result",
    "FitResult": "result",
    "TruthRatio": "oracle",
    "fit_bce": "bce",
    "fit_likelihood": "likelihood",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"dyfit.fitting.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BINNED_METHODS",
    "FIT_METHODS",
    "GENERATIVE_METHODS",
    "NEURAL_METHODS",
    "FIT_RESULT_SCHEMA",
    "FitResult",
    "TruthRatio",
    "fit",
    "fit_bce",
    "fit_likelihood",
]


def fit(
    model: Any,
    data: EventTable,
    nominal: EventTable | None = None,
    method: str = "likelihood",
    *,
    source: Any = None,
    n_nominal: int | None = None,
    rng: np.random.Generator | None = None,
    **options: Any,
) -> FitResult:
    """Fit θ with ``method`` (one of :data:`FIT_METHODS`); options go to the fitter.

    The neural methods use ``model``, a ratio model; the binned methods ignore it and use
    the nominal sample's truth columns (``true_costh``, ``true_phi``); "cvae" uses ``model``,
    a conditional VAE, and ignores the nominal sample.

    Without ``nominal``, ``n_nominal`` events (default 3× the data) are simulated at θ0
    with ``source`` (anything with ``simulate(n, theta, rng)``) and ``rng`` (default: seed 0).
    """
    if method not in FIT_METHODS:
        raise InputError(f"unknown fit method {method!r}; use one of {', '.join(FIT_METHODS)}")
    if method in GENERATIVE_METHODS:
        from dyfit.fitting.cvae import fit_cvae

        return fit_cvae(model, data, **options)
    if nominal is None:
        import numpy as np

        from dyfit.fitting.evaluate import nominal_sample

        if source is None:
            raise InputError("give a nominal sample, or an event source to simulate one")
        n = n_nominal if n_nominal is not None else 3 * len(data)
        nominal = nominal_sample(source, n, rng if rng is not None else np.random.default_rng(0))
    if method in BINNED_METHODS:
        from dyfit.fitting.binned import fit_binned

        return fit_binned(data, nominal, method=method, **options)
    if method == "likelihood":
        from dyfit.fitting.likelihood import fit_likelihood

        return fit_likelihood(model, data, nominal, **options)
    from dyfit.fitting.bce import fit_bce

    return fit_bce(model, data, nominal, method=method, **options)
