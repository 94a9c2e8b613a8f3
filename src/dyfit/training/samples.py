r"""Training samples for the ratio models, drawn fresh every epoch or from fixed events.

Classifier (the proposal's Table 1): class 1 holds events generated at θ_i drawn
from the prior, one θ per event; class 0 holds nominal events (θ0 = (1, 0, 0)) that
carry, as network input, *the same* θ_i as their class-1 partner. Pairing matters:
class-1 events pass the acceptance at a θ-dependent rate ε(θ), so θ values read
from accepted events are distributed as prior × ε(θ); drawing class-0 θ afresh
from the prior would let the network learn log ε(θ)/ε̄ from θ alone.

Moments regressor: nominal events with targets a_k(true cosθ, true φ).

The signal per event is tiny (the best BCE is ~0.004 nats below ln 2 on the
SeaQuest-like simulation); a fixed sample of 10⁶ events overfits in a few epochs,
which is why :class:`TrainingSource` simulates new events every epoch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from dyfit.data.columns import THETA_COLUMNS
from dyfit.data.events import EventTable
from dyfit.errors import InputError
from dyfit.physics.angular import THETA0, angular_basis, angular_weight, basis_coefficients
from dyfit.physics.prior import ThetaPrior
from dyfit.toy import ToyExperiment

__all__ = [
    "TOY_FEATURES",
    "TRUTH_ANGLES",
    "ClassifierSet",
    "MomentSet",
    "EventSource",
    "TrainingSource",
    "FixedTrainingSource",
    "truth_log_ratio",
    "reference_log_ratio",
    "nominal_abar",
    "simulator_from_provenance",
]

TOY_FEATURES = ("mass", "phi", "costh")  # the detector-level columns the toy provides
TRUTH_ANGLES = ("true_costh", "true_phi")
Split = Literal["train", "validation"]


class EventSource(Protocol):
    def simulate(self, n: int, theta: NDArray, rng: np.random.Generator) -> EventTable: ...


@dataclass
class ClassifierSet:
    """A balanced classifier sample of 2n events: class 1 first, then class 0.

    Attributes:
        x: Raw features, float32 with shape (2n, F).
        theta: The θ input, float32 with shape (2n, 3); rows i and n + i are equal.
        label: 1 for events at θ, 0 for nominal events, float32 with shape (2n,).
        truth_log_ratio: The reference log r(·|θ_i) per event (see :func:`truth_log_ratio`),
            float64 with shape (2n,), or None without truth angles.
    """

    x: NDArray[np.float32]
    theta: NDArray[np.float32]
    label: NDArray[np.float32]
    truth_log_ratio: NDArray[np.float64] | None


@dataclass
class MomentSet:
    """Nominal events x (N, F) float32 with regression targets a_k (N, 4) float32."""

    x: NDArray[np.float32]
    target: NDArray[np.float32]


def truth_log_ratio(
    true_costh: NDArray, true_phi: NDArray, theta: NDArray, abar: NDArray
) -> NDArray:
    r"""The truth-level log-ratio log[a(Ω_true)·c(θ) / ā·c(θ)], with shape (N,).

    Arguments:
        true_costh, true_phi: The true Collins-Soper angles, each with shape (N,).
        theta: (λ, μ, ν), with shape (3,) or (N, 3).
        abar: The mean of a over *accepted* nominal events, with shape (4,).

    ā·c(θ) is ε(θ)/ε(θ0) times the density normalisation, so the result is
    log p(z|θ, acc)/p(z|θ0, acc) for the truth z, valid when the acceptance depends on
    the event but not on θ. As the detector-level x depends on θ only through z,
    r(x|θ) = E_0[r_truth | x]: the BCE of this truth ratio is a lower bound on any
    detector-level classifier's BCE, reached only when x fixes the true angles (the toy).
    """
    a = angular_basis(true_costh, true_phi)
    c = basis_coefficients(theta)
    return np.log(np.sum(a * c, axis=-1)) - np.log(np.sum(abar * c, axis=-1))


def reference_log_ratio(
    events: EventTable, theta: NDArray, abar: NDArray, simulator: object = None
) -> NDArray | None:
    """The reference log r(x|θ) per event, with shape (N,), or None without truth angles.

    Exact on the toy (``simulator`` a :class:`~dyfit.toy.ToyExperiment`); otherwise the
    truth-level ratio of :func:`truth_log_ratio` with ``abar`` from accepted nominal events.
    """
    if not all(n in events for n in TRUTH_ANGLES):
        return None
    if isinstance(simulator, ToyExperiment):
        return simulator.log_ratio(events["true_costh"], events["true_phi"], theta)
    return truth_log_ratio(events["true_costh"], events["true_phi"], theta, abar)


def nominal_abar(events: EventTable) -> NDArray | None:
    """The mean of a over nominal events with truth angles, shape (4,), or None."""
    if not all(n in events for n in TRUTH_ANGLES):
        return None
    return angular_basis(events["true_costh"], events["true_phi"]).mean(0)


def _classifier_set(
    class1: EventTable,
    class0: EventTable,
    theta: NDArray,
    features: tuple[str, ...],
    reference: NDArray | None,
) -> ClassifierSet:
    n = len(class1)
    x = np.concatenate([class1.matrix(features, np.float32), class0.matrix(features, np.float32)])
    return ClassifierSet(
        x=x,
        theta=np.concatenate([theta, theta]).astype(np.float32),
        label=np.concatenate([np.ones(n, np.float32), np.zeros(n, np.float32)]),
        truth_log_ratio=reference,
    )


def _moment_set(events: EventTable, features: tuple[str, ...]) -> MomentSet:
    events.require(TRUTH_ANGLES, "moment regression (targets a_k need the true angles)")
    a = angular_basis(events["true_costh"], events["true_phi"])
    return MomentSet(events.matrix(features, np.float32), a.astype(np.float32))


def _json_safe(meta: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(meta, default=repr))


class TrainingSource:
    r"""Fresh events from an event source (``simulate(n, theta, rng)``) at every draw.

    Arguments:
        simulator: E.g. :class:`~dyfit.toy.ToyExperiment` or ``dyfit.simulation.Simulation``.
        features: The detector-level columns the model reads.
    """

    def __init__(self, simulator: EventSource, features: tuple[str, ...]) -> None:
        self.simulator = simulator
        self.features = tuple(features)
        self._meta: dict[str, Any] = {}

    def _simulate(self, n: int, theta: NDArray, rng: np.random.Generator) -> EventTable:
        events = self.simulator.simulate(n, theta, rng)
        events.require(self.features, "the simulated events")
        self._meta = events.meta
        if not all(c in events for c in THETA_COLUMNS):  # a source that does not record θ
            theta = np.broadcast_to(theta, (n, 3))
            events = events.with_columns(dict(zip(THETA_COLUMNS, theta.T.copy(), strict=True)))
        return events

    def classifier_set(
        self, n: int, prior: ThetaPrior, rng: np.random.Generator, split: Split = "train"
    ) -> ClassifierSet:
        """n class-1 events at θ_i ~ prior and n nominal events paired with the same θ_i."""
        class1 = self._simulate(n, prior.sample(n, rng), rng)
        class0 = self._simulate(n, THETA0, rng)
        # θ as the events record it: a source that selects accepted events may tilt or
        # reorder them; class 0 takes the same θ whatever their distribution.
        theta = class1.matrix(THETA_COLUMNS)
        reference = reference_log_ratio(
            EventTable.concat([class1, class0]),
            np.concatenate([theta, theta]),
            nominal_abar(class0),
            self.simulator,
        )
        return _classifier_set(class1, class0, theta, self.features, reference)

    def moment_set(self, n: int, rng: np.random.Generator, split: Split = "train") -> MomentSet:
        """n nominal events with targets a_k(true angles)."""
        return _moment_set(self._simulate(n, THETA0, rng), self.features)

    def describe(self) -> dict[str, Any]:
        """Provenance for the checkpoint manifest."""
        sim = self.simulator
        out: dict[str, Any] = {"mode": "fresh", "features": list(self.features)}
        if isinstance(sim, ToyExperiment):
            out |= {"source": "toy", "cos_max": sim.cos_max}
        else:
            out["source"] = f"{type(sim).__module__}.{type(sim).__qualname__}"
        if hasattr(sim, "describe"):
            out["simulator"] = _json_safe(sim.describe())
        return out | {"events_meta": _json_safe(self._meta)}


class FixedTrainingSource:
    r"""Fixed nominal events (e.g. from a file) with truth angles; θ redrawn every epoch.

    The events are split once into a training and a validation pool. Class 1 is made
    by unweighting: each candidate nominal event gets θ_i ~ prior and is kept with
    probability w/B, w = :func:`~dyfit.physics.angular.angular_weight` (Ω_true; θ_i)
    and B its bound over the sphere and the prior box. Kept events follow p(x|θ_i);
    their θ follow prior × ε(θ), so class 0 (disjoint nominal events from the same
    pool) takes the paired θ as for fresh events. Each draw re-randomises θ and the
    split between the classes, but the events themselves repeat: expect overfitting
    sooner than with :class:`TrainingSource`.

    Arguments:
        events: Nominal events with the feature columns and ``true_costh``, ``true_phi``.
        features: The detector-level columns the model reads.
        validation_fraction: The share of events held out for validation.
        seed: Seeds the one-off train/validation split.
    """

    def __init__(
        self,
        events: EventTable,
        features: tuple[str, ...],
        validation_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        events.require((*features, *TRUTH_ANGLES), "the training events")
        if not 0.0 < validation_fraction < 1.0:
            raise InputError("validation_fraction must lie strictly between 0 and 1")
        self.features = tuple(features)
        self.meta = events.meta
        order = np.random.default_rng(seed).permutation(len(events))
        n_val = int(round(validation_fraction * len(events)))
        self.pools = {
            "validation": events.select(order[:n_val]),
            "train": events.select(order[n_val:]),
        }

    def classifier_set(
        self, n: int, prior: ThetaPrior, rng: np.random.Generator, split: Split = "train"
    ) -> ClassifierSet:
        """Up to n events per class from the pool (fewer if the pool is too small)."""
        pool = self.pools[split]
        events = pool.select(rng.permutation(len(pool)))
        theta = prior.sample(len(events), rng)
        corners = np.stack(np.meshgrid(*prior.bounds, indexing="ij"), -1).reshape(-1, 3)
        # w ≤ max density / min(1 + cos²θ) · (4/3)/(1 + λ/3), max density ≤ 1 + |λ| + |μ| + |ν|/2
        bound = np.max((1 + np.abs(corners) @ [1.0, 1.0, 0.5]) * (4 / 3) / (1 + corners[:, 0] / 3))
        w = angular_weight(events["true_costh"], events["true_phi"], theta)
        keep = rng.uniform(0.0, bound, len(events)) < w
        # Split the pool so that the kept class-1 events and the class-0 events balance.
        n1 = int(round(len(events) / (1.0 + keep.mean())))
        chosen = np.flatnonzero(keep[:n1])
        m = min(n, chosen.size, len(events) - n1)
        chosen = chosen[:m]
        class1, class0 = events.select(chosen), events.select(slice(n1, n1 + m))
        theta = theta[chosen]
        both = EventTable.concat([class1, class0])
        reference = reference_log_ratio(both, np.concatenate([theta, theta]), nominal_abar(pool))
        return _classifier_set(class1, class0, theta, self.features, reference)

    def moment_set(self, n: int, rng: np.random.Generator, split: Split = "train") -> MomentSet:
        """Up to n nominal events from the pool with targets a_k(true angles)."""
        pool = self.pools[split]
        return _moment_set(pool.select(rng.permutation(len(pool))[:n]), self.features)

    def describe(self) -> dict[str, Any]:
        """Provenance for the checkpoint manifest."""
        n = {k: len(v) for k, v in self.pools.items()}
        return {
            "mode": "fixed",
            "source": "events",
            "features": list(self.features),
            "events": n,
        } | {"events_meta": _json_safe(self.meta)}


def simulator_from_provenance(provenance: dict[str, Any], workers: int = 1) -> EventSource:
    """The event source a model was trained with, rebuilt from its manifest's provenance.

    The toy is rebuilt with its acceptance, ``dyfit.simulation.Simulation`` with the
    generator and detector configurations it recorded (imported here, so this module
    works without it).
    """
    recorded = provenance.get("simulator") if isinstance(provenance, dict) else None
    cos_max = provenance.get("cos_max", 0.5) if isinstance(provenance, dict) else None
    # the provenance is outside the weights' hash: a hand-edited one must fail in one line
    if not (isinstance(recorded, dict | None) and type(cos_max) in (int, float)):
        raise InputError(
            "the model's recorded provenance is malformed (manifest.json was edited); "
            "give --nominal FILE or retrain"
        )
    if provenance.get("source") == "toy":
        if not 0.0 < cos_max <= 1.0:
            raise InputError(
                f"the model's recorded toy acceptance cos_max={cos_max} is not in (0, 1]"
            )
        return ToyExperiment(cos_max)
    if provenance.get("mode") == "fixed":
        raise InputError(
            "this model was trained on fixed events, not a simulator; "
            "check it against a simulator by calling dyfit.training.quality.check_ratio"
        )
    from dyfit.config import validate
    from dyfit.detector import SpectrometerConfig
    from dyfit.physics.generator import GeneratorConfig
    from dyfit.simulation import Simulation

    recorded = recorded or {}
    return Simulation(
        validate(GeneratorConfig, recorded.get("generator_config", {}), "recorded generator"),
        validate(SpectrometerConfig, recorded.get("detector_config", {}), "recorded detector"),
        smearing=recorded.get("smearing", True),
        workers=workers,
    )
