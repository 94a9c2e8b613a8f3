"""The event pool: accept–reject on exact truth weights reproduces a direct simulation at θ."""

import numpy as np
import pytest

from dyfit.data.events import EventTable
from dyfit.errors import InputError
from dyfit.physics.angular import THETA0
from dyfit.studies.pool import EventPool
from dyfit.toy import ToyExperiment


def _moments(events):
    c, p = events["true_costh"], events["true_phi"]
    s = np.sqrt(1 - c**2)
    return np.stack([c**2, 2 * c * s * np.cos(p), s**2 * np.cos(2 * p)], axis=1)


@pytest.mark.parametrize("theta", [(0.5, 0.2, -0.2), (1.6, -0.3, 0.4)])
def test_pool_draws_match_a_direct_simulation(theta):
    toy = ToyExperiment(cos_max=0.8)
    pool = EventPool(toy.simulate(300_000, THETA0, np.random.default_rng(1)))
    n = 40_000
    drawn = _moments(pool.simulate(n, theta, np.random.default_rng(2)))
    direct = _moments(toy.simulate(n, theta, np.random.default_rng(3)))
    # error of the difference: both samples' means, plus the pool's own fluctuation (the
    # drawn events are a subset of one finite pool of len(pool.data) events)
    err = np.sqrt(drawn.var(0) / n + direct.var(0) / n + drawn.var(0) / len(pool.data))
    z = (drawn.mean(0) - direct.mean(0)) / err
    assert np.all(np.abs(z) < 4), z


def test_pool_requests_are_reproducible_and_split():
    toy = ToyExperiment()
    pool = EventPool(toy.simulate(20_000, THETA0, np.random.default_rng(1)), nominal_fraction=0.5)
    a = pool.simulate(1000, (0.5, 0, 0), np.random.default_rng(7))
    b = pool.simulate(1000, (0.5, 0, 0), np.random.default_rng(7))
    assert np.array_equal(a["costh"], b["costh"])
    nominal = pool.simulate(1000, THETA0, np.random.default_rng(7))
    # nominal requests come from the first half, data requests from the second
    assert set(nominal["costh"]) <= set(pool.nominal["costh"])
    assert not set(a["costh"]) & set(pool.nominal["costh"])
    assert 0 < pool.overlap(1000, (0.5, 0, 0)) < 0.2


def test_pool_refuses_what_it_cannot_serve():
    toy = ToyExperiment()
    pool = EventPool(toy.simulate(2000, THETA0, np.random.default_rng(1)))
    with pytest.raises(InputError, match="too small"):
        pool.simulate(5000, (0.5, 0, 0), np.random.default_rng(2))
    with pytest.raises(InputError, match="nominal events"):
        pool.simulate(5000, THETA0, np.random.default_rng(2))
    with pytest.raises(InputError, match="theta0"):
        events = toy.simulate(100, (0.5, 0, 0), np.random.default_rng(1))
        EventPool(EventTable(events.columns, {"theta": [0.5, 0.0, 0.0]}))


def test_a_pool_from_a_file_travels_as_its_path(tmp_path):
    import pickle

    from dyfit.data.io import write_events

    events = ToyExperiment().simulate(5000, THETA0, np.random.default_rng(1))
    write_events(events, tmp_path / "pool.parquet")
    pool = EventPool.from_file(str(tmp_path / "pool.parquet"), nominal_fraction=0.5)
    blob = pickle.dumps(pool)
    assert len(blob) < 1000  # the path, not 5000 events
    copy = pickle.loads(blob)
    a = pool.simulate(100, (0.5, 0.1, 0), np.random.default_rng(3))
    b = copy.simulate(100, (0.5, 0.1, 0), np.random.default_rng(3))
    assert np.array_equal(a["costh"], b["costh"])
