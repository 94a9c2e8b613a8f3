"""Independent jobs, run here or fanned out over a Dask cluster, results in the jobs' order.

``map_jobs(fn, jobs)`` calls ``fn(job, **shared)`` for each job. With ``scheduler=None``
it runs them one after the other in this process; with ``"local"`` on a
:class:`distributed.LocalCluster` of ``workers`` processes (one thread each); with a
scheduler address (``tcp://host:8786``) or a scheduler file (``*.json``) on an existing
cluster, e.g. one that dask-jobqueue started on HTCondor or SLURM (docs/scale-out.md).
The ``shared`` objects (a model, an event source) are scattered to every worker once,
not shipped with each job. Dask is optional (``pip install 'dyfit[dask]'``) and
imported only here, only when a scheduler is asked for.

Results do not depend on where a job ran as long as each job carries its own seeds
(e.g. :func:`dyfit.studies.pseudo.toy_rngs`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dyfit.errors import InputError

__all__ = ["LOCAL", "map_jobs", "dask_client"]

LOCAL = "local"
SPAWN_ENV = "distributed.nanny.pre-spawn-environ"


@contextlib.contextmanager
def dask_client(scheduler: str, workers: int | None = None) -> Iterator[Any]:
    """A :class:`distributed.Client`: on a new LocalCluster (``"local"``), or joining one.

    Arguments:
        scheduler: ``"local"``, a scheduler address, or a scheduler file (``*.json``).
        workers: Processes of the LocalCluster (default: the CPU count); with an existing
            cluster its own workers are used and ``workers`` must be None.
    """
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--scheduler needs Dask; pip install 'dyfit[dask]'") from None
    if scheduler != LOCAL:
        if workers is not None:
            raise InputError(
                "the number of Dask workers is set where the cluster is started; "
                "give it only with --scheduler local"
            )
        file = scheduler.endswith(".json")
        if file and not Path(scheduler).is_file():
            raise InputError(f"no Dask scheduler file {scheduler}; check the path")
        try:
            client = Client(scheduler_file=scheduler) if file else Client(scheduler, timeout=30)
        except (OSError, TimeoutError, ValueError) as err:
            raise InputError(
                f"cannot reach the Dask scheduler {scheduler} ({type(err).__name__}); "
                "start it with `dask scheduler`, or use --scheduler local"
            ) from None
        with client:
            yield client
        return
    n = workers if workers is not None else os.cpu_count() or 1
    if n < 1:
        raise InputError(f"a local Dask cluster needs at least 1 worker, got {n}")
    # One thread per worker: the jobs are NumPy/torch code that holds the GIL between calls,
    # and BLAS threads inside several workers would only fight over the same cores.
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which stops glibc from
    # raising its mmap threshold: every NumPy array over 128 KiB then costs an mmap and
    # fresh page faults, and a toy fit ran 2.6x slower. The workers keep glibc's default.
    with dask.config.set({f"{SPAWN_ENV}.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    with cluster, Client(cluster) as client:
        yield client


def map_jobs(
    fn: Callable[..., Any],
    jobs: Sequence[Any],
    scheduler: str | None = None,
    workers: int | None = None,
    *,
    shared: Mapping[str, Any] | None = None,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[fn(job, **shared) for job in jobs]``, here or on a Dask cluster.

    Arguments:
        fn: A module-level function (the workers import it by name).
        jobs: The jobs, each passed as the first argument of ``fn``.
        scheduler: None (serial, this process), ``"local"``, an address or a scheduler file.
        workers: LocalCluster processes (``scheduler="local"`` only).
        shared: Keyword arguments common to all jobs, sent to each worker once.
        on_result: Called as ``on_result(index, result)`` as each job ends (in completion
            order on a cluster): to save finished work or advance a progress bar.

    Returns:
        The results, in the order of ``jobs``. A job's exception is raised here.

    Example:
        >>> map_jobs(pow, [2, 3], shared={"exp": 2})  # doctest: +SKIP
        [4, 9]
    """
    shared = dict(shared or {})
    if not jobs:  # no cluster to start for nothing
        return []
    if scheduler is None:
        results = []
        for index, job in enumerate(jobs):
            results.append(fn(job, **shared))
            if on_result is not None:
                on_result(index, results[-1])
        return results
    from distributed import as_completed

    results = [None] * len(jobs)
    with dask_client(scheduler, workers) as client:
        # scatter([obj]) sends obj itself; scatter(obj) would split a dict or list into parts.
        remote = {k: client.scatter([v], broadcast=True)[0] for k, v in shared.items()}
        futures = [client.submit(fn, job, pure=False, **remote) for job in jobs]
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            i = index[future.key]
            results[i] = future.result()
            future.release()  # the result is here now; the cluster can drop it
            if on_result is not None:
                on_result(i, results[i])
    return results
