"""The ``dask.distributed`` client every distributed step runs on.

``get_client()`` returns, in this order: the client passed in; a client connected to a
scheduler address (``tcp://HOST:8786``, from ``dask scheduler`` / ``dask worker`` or any
deployment: Kubernetes, YARN, SLURM via dask-jobqueue, Coiled); a new ``LocalCluster`` of
``workers`` processes on this machine; or the current client (``distributed.default_client``).
Computations then run on it: Dask uses the most recently created client by default.
"""

from __future__ import annotations

from typing import Any

from pex_tuner.errors import ConfigurationError

__all__ = ["get_client", "local_cluster"]


def local_cluster(
    workers: int,
    *,
    threads_per_worker: int = 1,
    memory_limit: str | float | None = "auto",
    processes: bool = True,
    dashboard_address: str | None = ":0",
) -> Any:
    """A ``distributed.Client`` on a new LocalCluster of ``workers`` workers.

    Args:
        workers: worker processes (or threads with ``processes=False``).
        threads_per_worker: threads per worker (1: the OPE kernel runs one thread per
            partition task, and numba's own threads stay at one per worker).
        memory_limit: per worker (``"4GiB"``, bytes, ``"auto"`` = system memory / workers).
        processes: worker processes (True) or threads of this process (False, for tests).
        dashboard_address: the diagnostics dashboard (``":0"`` a free port, None: off).
    """
    from distributed import Client, LocalCluster

    if int(workers) < 1:
        raise ConfigurationError(f"'workers' must be a positive integer; got {workers!r}")
    extra: dict[str, Any] = {}
    if processes:
        # numba (the OPE kernel) and OpenMP (LightGBM) use one thread per worker thread:
        # more would oversubscribe the cores the other workers use
        n = str(int(threads_per_worker))
        extra["env"] = {"NUMBA_NUM_THREADS": n, "OMP_NUM_THREADS": n}
    cluster = LocalCluster(
        n_workers=int(workers),
        threads_per_worker=int(threads_per_worker),
        memory_limit=memory_limit,
        processes=processes,
        dashboard_address=dashboard_address,
        **extra,
    )
    return Client(cluster)


def get_client(
    client: Any = None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    memory_limit: str | float | None = "auto",
    threads_per_worker: int = 1,
) -> Any:
    """The client to run on (see the module docstring), or None when there is none and none
    was asked for (Dask's local threaded scheduler then runs the work in this process).

    Args:
        client: a ``distributed.Client`` to use as is.
        scheduler: address of a running scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
        workers: start a LocalCluster with this many worker processes.
        memory_limit, threads_per_worker: per worker of a LocalCluster.

    Raises:
        ConfigurationError: both ``scheduler`` and ``workers`` given.
    """
    if client is not None:
        return client
    if scheduler is not None and workers is not None:
        raise ConfigurationError(
            "give either 'scheduler' (a running cluster's address) or 'workers' (a local "
            "cluster on this machine), not both"
        )
    if scheduler is not None:
        from distributed import Client

        return Client(scheduler)
    if workers is not None:
        return local_cluster(
            workers, threads_per_worker=threads_per_worker, memory_limit=memory_limit
        )
    try:
        from distributed import default_client

        return default_client()
    except ValueError:
        return None
