"""Dask clients: a local cluster on 127.0.0.1 only, closed afterwards; clear errors for bad
addresses; models loaded once; dask-jobqueue configurations (built, never submitted)."""

from __future__ import annotations

import time

import psutil
import pytest

from napari_segqc.core.distributed.cluster import (
    PLUGIN,
    check_scheduler,
    dask_client,
    jobqueue_cluster,
)
from napari_segqc.core.distributed.models import ModelCache, worker_models
from napari_segqc.core.errors import SegQCError


def _listening(processes) -> set[tuple[str, int]]:
    found = set()
    for proc in processes:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((conn.laddr.ip, conn.laddr.port))
        except psutil.NoSuchProcess:
            pass
    return found


def _alive(proc) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_local_workers_listen_on_loopback_only_and_are_stopped_afterwards():
    me = psutil.Process()
    before = _listening([me])
    with dask_client(workers=2, threads=1) as client:
        children = me.children(recursive=True)
        workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2
        assert len(client.scheduler_info()["workers"]) == 2
        ours = (_listening([me]) - before) | _listening(children)
        assert ours and {ip for ip, _ in ours} == {"127.0.0.1"}, ours
        plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
        assert all(PLUGIN in names for names in plugins.values())
        threads = client.run(lambda: __import__("torch").get_num_threads())
        assert set(threads.values()) == {1}
    assert client.status == "closed"
    deadline = time.monotonic() + 20
    while any(_alive(c) for c in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(c) for c in workers)
    assert _listening([me]) - before == set()


def test_bad_or_unreachable_schedulers_are_one_line_errors(tmp_path):
    with pytest.raises(SegQCError, match="exclude each other"), dask_client("tcp://a:1", 2):
        pass
    with pytest.raises(SegQCError, match="need --scheduler"), dask_client():
        pass
    with pytest.raises(SegQCError, match="at least 1"), dask_client(workers=0):
        pass
    with pytest.raises(SegQCError, match="give a dask scheduler address"):
        check_scheduler("http://example.org/dask")
    assert check_scheduler("tcp://10.0.0.5:8786") == {"address": "tcp://10.0.0.5:8786"}
    file = tmp_path / "scheduler.json"
    file.write_text("{}")
    assert check_scheduler(str(file)) == {"scheduler_file": str(file)}
    t0 = time.monotonic()
    with (
        pytest.raises(SegQCError, match="cannot reach the dask scheduler"),
        dask_client("tcp://127.0.0.1:9", timeout=2),
    ):
        pass
    assert time.monotonic() - t0 < 15


def test_model_cache_loads_each_model_once():
    cache = ModelCache()
    first = cache.get("nuclei", "cpu")
    assert cache.get("nuclei", "cpu") is first and cache.loads == 1
    assert worker_models() is worker_models()  # not on a worker: this process's cache


def test_model_cache_drops_the_least_recently_used():
    cache = ModelCache(capacity=2)
    nuclei = cache.get("nuclei", "cpu")
    cache.get("nuclei", "cpu", "torch")
    assert cache.get("nuclei", "cpu") is nuclei  # used again: now the most recent
    cache.get("nuclei-stained", "cpu")  # a third model: the torch one goes
    assert cache.loads == 3
    assert cache.get("nuclei", "cpu") is nuclei and cache.loads == 3
    cache.get("nuclei", "cpu", "torch")
    assert cache.loads == 4


def test_slurm_and_lsf_configurations_without_submitting():
    pytest.importorskip("dask_jobqueue")
    local = {"host": "127.0.0.1"}  # a test must not listen elsewhere
    slurm = jobqueue_cluster(
        "slurm",
        cores=8,
        memory="32GB",
        walltime="02:00:00",
        queue="normal",
        account="lab",
        job_extra_directives=["--gres=gpu:1"],
        python="/opt/segqc/bin/python",
        scheduler_options=local,
    )
    try:
        script = slurm.job_script()
        assert "#SBATCH -p normal" in script and "#SBATCH -A lab" in script
        assert "#SBATCH --cpus-per-task=8" in script and "#SBATCH -t 02:00:00" in script
        assert "#SBATCH --gres=gpu:1" in script and "#SBATCH -J segqc-worker" in script
        # one single-threaded worker per core, each with an eighth of the memory
        assert "/opt/segqc/bin/python -m distributed.cli.dask_worker" in script
        assert "--nthreads 1" in script and "--nworkers 8" in script
        assert slurm.scheduler_address.startswith("tcp://127.0.0.1:")
    finally:
        slurm.close()
    lsf = jobqueue_cluster(
        "LSF", cores=4, memory="16GB", walltime="01:30", queue="long", scheduler_options=local
    )
    try:
        script = lsf.job_script()
        assert "#BSUB -q long" in script and "#BSUB -n 4" in script and "#BSUB -W 01:30" in script
        assert "--nthreads 1" in script and "--nworkers 4" in script
    finally:
        lsf.close()
    with pytest.raises(SegQCError, match="one of slurm"):
        jobqueue_cluster("condor", cores=1, memory="1GB", walltime="1:00")
