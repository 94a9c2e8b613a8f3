r"""Pseudo-experiments drawn from one large simulated sample at θ0, exactly reweighted.

The detector does not know θ: given its true angles, an event's reconstruction is the
same whatever θ it was generated at. So from a sample simulated at θ0, accepting event i
with probability w_i / w_max, where w_i = p(Ω_i|θ) / p(Ω_i|θ0) is the exact truth-level
weight (:func:`~dyfit.physics.angular.angular_weight`), leaves events distributed exactly
as a simulation at θ (accept–reject). One 10^7-event simulation then serves thousands of
toys at any θ, which the full simulation at 12k accepted events per second cannot.

The pool is split once: the first ``nominal_fraction`` of its events serve the nominal
samples (θ = θ0), the rest the data. A request draws a random subset of its part without
replacement, so two toys share on average a fraction m/n_part of their events (m drawn,
n_part in the part); the toys' correlation, and the underestimate of σ_fit by about half
that fraction, is given by :meth:`EventPool.overlap` and should stay at a few per cent.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from dyfit.data.events import EventTable
from dyfit.errors import InputError
from dyfit.physics.angular import THETA0, angular_weight, as_theta

__all__ = ["EventPool"]


class EventPool:
    """An event source with ``simulate(n, theta, rng)`` that draws from a θ0 sample.

    Arguments:
        events: Accepted events simulated at θ0, with ``true_costh`` and ``true_phi``.
        nominal_fraction: The share of the events kept for nominal (θ0) requests.
    """

    def __init__(self, events: EventTable, nominal_fraction: float = 0.4) -> None:
        events.require(("true_costh", "true_phi"), "an event pool")
        theta = events.meta.get("theta")
        if theta is not None and not np.allclose(as_theta(theta), THETA0):
            raise InputError(f"an event pool must be simulated at theta0 = (1, 0, 0), not {theta}")
        if not 0.0 < nominal_fraction < 1.0:
            raise InputError("nominal_fraction must lie strictly between 0 and 1")
        cut = int(round(nominal_fraction * len(events)))
        self.nominal = events.head(cut)
        self.data = events.select(slice(cut, None))
        self._weights: dict[tuple[float, ...], tuple[np.ndarray, float]] = {}
        self._origin: tuple[str, float] | None = None

    @classmethod
    def from_file(cls, path: str, nominal_fraction: float = 0.4) -> EventPool:
        """The pool in an event file; sent to another process (a Dask worker) it travels as
        its path and is read there again, not as its events."""
        from dyfit.data.io import read_events

        pool = cls(read_events(path), nominal_fraction)
        pool._origin = (str(path), nominal_fraction)
        return pool

    def __reduce__(self):
        if self._origin is None:
            return super().__reduce__()
        return (EventPool.from_file, self._origin)

    def _reweighted(self, theta: np.ndarray) -> tuple[np.ndarray, float]:
        """Acceptance probabilities w / w_max over the data part, cached per θ."""
        key = tuple(theta.tolist())
        if key not in self._weights:
            w = angular_weight(self.data["true_costh"], self.data["true_phi"], theta)
            self._weights[key] = (w / w.max(), float(w.mean() / w.max()))
        return self._weights[key]

    def simulate(self, n: int, theta: ArrayLike, rng: np.random.Generator) -> EventTable:
        """n events at a fixed θ with shape (3,), drawn without replacement from the pool."""
        theta = as_theta(theta)
        if theta.ndim != 1:
            raise InputError("an event pool serves one fixed theta per request")
        if np.allclose(theta, THETA0):
            return self._draw(self.nominal, n, rng)
        p_accept, efficiency = self._reweighted(theta)
        # draw a few standard deviations more than n / efficiency candidates, once
        m = int(n / efficiency + 5 * np.sqrt(n / efficiency) + 100)
        if m > len(self.data):
            raise InputError(f"the event pool is too small for {n} events at theta {theta}")
        candidates = rng.choice(len(self.data), size=m, replace=False)
        kept = candidates[rng.random(m) < p_accept[candidates]]
        if len(kept) < n:
            raise InputError(f"the event pool fell short of {n} events at theta {theta}")
        return self.data.select(np.sort(kept[:n]))

    @staticmethod
    def _draw(part: EventTable, n: int, rng: np.random.Generator) -> EventTable:
        if n > len(part):
            raise InputError(f"the event pool holds {len(part)} nominal events; {n} were asked")
        return part.select(np.sort(rng.choice(len(part), size=n, replace=False)))

    def overlap(self, n: int, theta: ArrayLike) -> float:
        """The mean fraction of their events two requests of n events at θ share."""
        theta = as_theta(theta)
        if np.allclose(theta, THETA0):
            return n / len(self.nominal)
        return n / self._reweighted(theta)[1] / len(self.data)
