"""The built-in simulation chain: leading-order generator → spectrometer → reconstruction.

:class:`Simulation` is an event source: ``simulate(n, theta, rng)`` returns exactly
n *accepted* detector-level events, at one θ with shape (3,), at one θ per event
with shape (n, 3), or on a :class:`~dyfit.physics.curves.ThetaCurve` of each event's
truth kinematics. For per-event θ each requested θ_i is kept by exactly one
accepted event (the first of several truth trials at θ_i to pass), so the θ
distribution of the output is the requested one, with no tilt by the θ-dependent
acceptance. This is what the paired training samples of the classifier need.

Truth events are made in chunks whose random streams derive from one seed and
the chunk's index, so the output is the same whatever the number of workers.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dyfit import __version__
from dyfit.data.events import EventTable
from dyfit.detector import SpectrometerConfig, simulate_detector
from dyfit.errors import InputError
from dyfit.physics.angular import check_physical
from dyfit.physics.curves import ThetaCurve
from dyfit.physics.generator import GeneratorConfig, generate_truth
from dyfit.physics.prior import ThetaPrior

__all__ = ["Simulation", "simulate"]

_INDEX = "_trial_of"  # per-event θ: which requested event a truth trial belongs to


class Simulation:
    """The SeaQuest-like chain as an event source.

    Arguments:
        generator: The generator configuration (beam, target, kinematic ranges).
        detector: The spectrometer configuration.
        smearing: False switches off multiple scattering, straggling and hit smearing.
        workers: Processes for the truth → detector chunks (results do not depend on it).
        chunk_size: Truth events per chunk; small chunks keep the arrays in cache, which
            matters when several workers share it (2^15 ran 1.5x faster than 2^18 on two).
    """

    def __init__(
        self,
        generator: GeneratorConfig | None = None,
        detector: SpectrometerConfig | None = None,
        *,
        smearing: bool = True,
        workers: int = 1,
        chunk_size: int = 1 << 15,
    ) -> None:
        self.generator = generator or GeneratorConfig()
        self.detector = detector or SpectrometerConfig()
        self.smearing = smearing
        self.workers = max(1, workers)
        self.chunk_size = chunk_size
        self.n_generated = 0  # truth events made by the last call
        self.n_accepted = 0  # of which accepted (some may be left unused)
        self._pool: ProcessPoolExecutor | None = None

    def describe(self) -> dict[str, Any]:
        """The provenance recorded in files and checkpoints."""
        return {
            "source": "dyfit.simulation",
            "dyfit_version": __version__,
            "generator_config": self.generator.model_dump(mode="json"),
            "detector_config": self.detector.model_dump(mode="json"),
            "smearing": self.smearing,
        }

    def _run(self, jobs: list[tuple[np.ndarray, int, tuple[int, int]]]) -> list[EventTable]:
        """Chunks for ``jobs`` (θ, truth events, seed) in order, on ``workers`` processes.

        The process pool is made on first use and kept for later calls (``close()``
        ends it), so that a training loop does not pay for new processes every epoch.
        """
        settings = (self.generator, self.detector, self.smearing)
        if self.workers == 1 or len(jobs) == 1:
            return [_chunk(*settings, *job) for job in jobs]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers)
        futures = [self._pool.submit(_chunk, *settings, *job) for job in jobs]
        return [f.result() for f in futures]

    def close(self) -> None:
        """End the worker processes, if any."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pool": None}

    def simulate(
        self,
        n: int,
        theta: ArrayLike | ThetaCurve,
        rng: np.random.Generator,
        *,
        progress: bool = False,
    ) -> EventTable:
        """n accepted events at θ (shape (3,)), at per-event θ (shape (n, 3)) or on a curve."""
        if n <= 0:
            raise InputError(f"the number of events must be positive, got {n}")
        curve = isinstance(theta, ThetaCurve)
        theta = theta if curve else check_physical(theta)
        base = int(rng.integers(2**62))
        bar = _progress_bar(n, progress)
        if curve or theta.ndim == 1:
            table = self._fixed(n, theta, base, bar)
        else:
            if len(theta) != n:
                raise InputError(f"per-event theta has {len(theta)} rows for {n} events")
            table = self._per_event(theta, base, bar)
        if bar is not None:
            bar.close()
        return table

    def _fixed(self, n: int, theta: np.ndarray | ThetaCurve, base: int, bar) -> EventTable:
        kept: list[EventTable] = []
        n_kept = 0
        while n_kept < n:
            first = len(kept)
            jobs = [(theta, self.chunk_size, (base, first + i)) for i in range(self.workers)]
            for table in self._run(jobs):
                if n_kept >= n:
                    break
                kept.append(table)
                n_kept += len(table)
                if bar is not None:
                    bar.update(min(len(table), n - bar.n))
        table = EventTable.concat(kept).head(n)
        # the truth events behind the kept ones: full chunks, then the last one up to its n-th
        self.n_generated = (len(kept) - 1) * self.chunk_size + int(table[_INDEX][-1]) + 1
        self.n_accepted = n
        return _without_index(table)

    def _per_event(self, theta: np.ndarray, base: int, bar) -> EventTable:
        n = len(theta)
        rows: list[EventTable] = []
        pending = np.arange(n)
        acceptance = 0.01  # a first guess, then measured each round
        n_chunks = 0
        self.n_generated = self.n_accepted = 0
        while pending.size:
            # Expected accepted trials per pending θ: below one wastes least (only the first
            # accepted trial is kept); more at the end, to finish in few rounds.
            hits = 0.7 if pending.size > 2000 else 3.0
            trials = int(np.clip(hits / acceptance, 1, 4096))
            parts = np.array_split(pending, -(-pending.size * trials // self.chunk_size))
            owners = [np.repeat(part, trials) for part in parts]
            jobs = [(theta[o], o.size, (base, n_chunks + i)) for i, o in enumerate(owners)]
            n_chunks += len(jobs)
            tables = self._run(jobs)
            round_generated = sum(o.size for o in owners)
            round_accepted = sum(map(len, tables))
            self.n_generated += round_generated
            self.n_accepted += round_accepted
            for owner, table in zip(owners, tables, strict=True):
                # the first accepted trial of each θ; _INDEX becomes the requested row
                hit, first = np.unique(owner[table[_INDEX]], return_index=True)
                rows.append(table.select(first).with_columns({_INDEX: hit}))
                pending = np.setdiff1d(pending, hit, assume_unique=True)
                if bar is not None:
                    bar.update(hit.size)
            acceptance = max(round_accepted / round_generated, 1e-4)
        table = EventTable.concat(rows)
        order = np.argsort(table[_INDEX], kind="stable")
        return _without_index(table.select(order))


def _chunk(
    generator: GeneratorConfig,
    detector: SpectrometerConfig,
    smearing: bool,
    theta: np.ndarray,
    size: int,
    seed: tuple[int, int],
) -> EventTable:
    """Accepted events from ``size`` truth events; ``_INDEX`` is each one's truth row."""
    rng = np.random.default_rng(seed)
    truth = generate_truth(size, theta, generator, rng)
    truth = truth.with_columns({_INDEX: np.arange(size)})
    reco, _ = simulate_detector(
        truth, detector, rng, beam_energy=generator.beam_energy, smearing=smearing
    )
    return reco


def _without_index(table: EventTable) -> EventTable:
    return EventTable({k: v for k, v in table.columns.items() if k != _INDEX}, table.meta)


def _progress_bar(n: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=n, unit="ev", desc="simulating", leave=False)


def simulate(
    n_events: int,
    *,
    theta: ArrayLike | ThetaCurve | None = None,
    prior: ThetaPrior | None = None,
    generator: GeneratorConfig | None = None,
    detector: SpectrometerConfig | None = None,
    smearing: bool = True,
    seed: int = 0,
    workers: int = 1,
    progress: bool = False,
) -> EventTable:
    """n_events accepted events at a fixed θ, with θ drawn per event from a prior, or on a
    :class:`~dyfit.physics.curves.ThetaCurve` of the truth kinematics.

    The metadata records the generator and detector configurations, θ or the
    prior, the seed, the number of truth events generated and the acceptance.

    Example:
        >>> table = simulate(1000, theta=(1.0, 0.0, 0.05), seed=1)  # doctest: +SKIP
    """
    if theta is not None and prior is not None:
        raise InputError("give either a fixed theta or a prior, not both")
    if n_events <= 0:
        raise InputError(f"--events must be positive, got {n_events}")
    sim = Simulation(generator, detector, smearing=smearing, workers=workers)
    rng = np.random.default_rng(seed)
    meta: dict[str, Any] = {**sim.describe(), "seed": seed}
    if prior is not None:
        thetas = prior.sample(n_events, rng)
        meta["prior"] = prior.model_dump(mode="json")
    elif isinstance(theta, ThetaCurve):
        thetas = theta
        meta["theta_curve"] = theta.model_dump(mode="json", by_alias=True, exclude_none=True)
    else:
        thetas = check_physical((1.0, 0.0, 0.0) if theta is None else theta)
        meta["theta"] = [float(t) for t in thetas]  # (lambda, mu, nu)
    try:
        table = sim.simulate(n_events, thetas, rng, progress=progress)
    finally:
        sim.close()
    meta["n_generated"] = sim.n_generated
    meta["acceptance"] = sim.n_accepted / sim.n_generated
    table.meta = meta
    return table
