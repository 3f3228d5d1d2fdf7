"""Dask clusters for prediction: a client, the models each worker keeps, SLURM/LSF clusters.

* :func:`dask_client`: a ``distributed.Client`` on an existing cluster (``--scheduler``: an
  address such as ``tcp://host:8786`` or a scheduler file) or on a ``LocalCluster`` of
  ``workers`` processes on this machine (``--workers N``; it listens on 127.0.0.1 only, with no
  dashboard); closed, with the local cluster, when the block ends.
* :class:`ModelCache` / :class:`ModelPlugin`: every worker loads each model once, on first use,
  and keeps it for every block and image it is given (onnxruntime sessions are not picklable:
  the model is never shipped, only its name or path).
* :func:`jobqueue_cluster`: a dask-jobqueue cluster (SLURM, LSF, PBS, SGE) of workers suited to
  block-wise prediction (one single-threaded worker per core, no dashboard); see the README.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from ..errors import SegQCError
from .models import PLUGIN, ModelCache

#: Seconds to wait for a scheduler given by ``--scheduler``.
CONNECT_TIMEOUT = 20
#: Job schedulers of dask-jobqueue by their usual names.
JOBQUEUE = {"slurm": "SLURMCluster", "lsf": "LSFCluster", "pbs": "PBSCluster", "sge": "SGECluster"}
_ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc)://[^\s/]+$|^[\w.\-\[\]:]+:\d+$")


class ModelPlugin(WorkerPlugin):
    """Gives each worker a :class:`ModelCache`; ``threads``: the network's threads per worker
    (None: as the worker's environment says)."""

    name = PLUGIN

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self.cache: ModelCache | None = None

    def setup(self, worker) -> None:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        self.cache = ModelCache()

    def teardown(self, worker) -> None:
        self.cache = None


def check_scheduler(scheduler: str) -> dict:
    """``Client`` arguments for ``--scheduler``: a scheduler file, or an address."""
    text = scheduler.strip()
    if Path(text).is_file():
        return {"scheduler_file": text}
    if not _ADDRESS.match(text):
        raise SegQCError(
            f"--scheduler {scheduler!r}: give a dask scheduler address such as "
            "tcp://HOST:8786, or a scheduler file"
        )
    return {"address": text}


@contextmanager
def dask_client(
    scheduler: str | None = None,
    workers: int | None = None,
    *,
    threads: int | None = None,
    timeout: float = CONNECT_TIMEOUT,
) -> Iterator:
    """A ``distributed.Client`` for prediction, with :class:`ModelPlugin` registered; closed at
    the end (and the local cluster with it). ``threads``: the network's threads per local
    worker (default: this machine's cores shared out among the workers); ``timeout``: seconds
    to reach a ``scheduler``."""
    from distributed import Client, LocalCluster

    if workers is not None and workers < 1:
        raise SegQCError(f"--workers must be at least 1, got {workers}")
    if scheduler and workers:
        raise SegQCError("--scheduler and --workers exclude each other: give one")
    if not scheduler and not workers:
        raise SegQCError("need --scheduler ADDRESS or --workers N")
    cluster = None
    if scheduler:
        kwargs = check_scheduler(scheduler)
        try:
            client = Client(**kwargs, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SegQCError(
                f"--scheduler {scheduler}: cannot reach the dask scheduler "
                f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
    else:
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            worker_dashboard_address=None,
            # task errors reach the client as exceptions; the workers' own log lines (at
            # shutdown under load: "still alive, killing", heartbeats) would only be noise
            silence_logs=logging.CRITICAL,
        )
        client = Client(cluster)
    try:
        client.register_plugin(ModelPlugin(threads if cluster else None), name=PLUGIN)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def jobqueue_cluster(
    system: str,
    *,
    cores: int,
    memory: str,
    walltime: str,
    processes: int | None = None,
    **kwargs,
):
    """A dask-jobqueue cluster (``system``: slurm, lsf, pbs or sge) for ``segqc predict``.

    Each job gets ``cores`` cores and ``memory``; by default it runs one single-threaded worker
    process per core (``processes``), so each worker holds one block at a time (measured: about
    1.5-2 GB for ``--block 2048``; give about 4 GB per core for 4096) and its own copy of the
    model. The
    scheduler runs with no dashboard. Other keyword arguments (``queue``, ``account``,
    ``job_extra_directives``, ``python``, ``scheduler_options``, ...) go to dask-jobqueue.
    Scale it (``cluster.scale(jobs=32)``) and pass ``cluster.scheduler_address`` (or a
    scheduler file) to ``segqc predict --scheduler``, or a ``Client(cluster)`` to
    :func:`napari_segqc.core.distributed.predict.predict_paths`.
    """
    try:
        import dask_jobqueue
    except ImportError:
        raise SegQCError(
            "dask-jobqueue is not installed: pip install 'napari-segqc[cluster]'"
        ) from None
    name = JOBQUEUE.get(system.lower())
    if name is None:
        raise SegQCError(f"job scheduler must be one of {', '.join(JOBQUEUE)}, got {system!r}")
    options = {"dashboard_address": None, **kwargs.pop("scheduler_options", {})}
    kwargs.setdefault("job_name", "segqc-worker")
    return getattr(dask_jobqueue, name)(
        cores=cores,
        memory=memory,
        walltime=walltime,
        processes=processes or cores,
        scheduler_options=options,
        **kwargs,
    )
