"""Distributed prediction: time and peak memory per worker, and agreement with single-process.

Zarr mosaics of real DSB 2018 nuclei (:func:`bench_predict.mosaic`: 256-pixel crops, a 4096
mosaic repeated past 4096 pixels) are written to a temporary folder; each is segmented block by
block (``--block``, default 2048, so that a 4096 image makes 4 blocks) on a ``LocalCluster`` of
1 and of 2 worker processes on 127.0.0.1 (``dask_client(workers=N)``: one task thread per
worker, the machine's cores shared out as the network's threads), and whole in this process
(``segment_image``, the single-process path; in a child process, for its own peak memory).

Printed per run: seconds (the cluster already started; the model loads on first use count),
megapixels per second, each worker's peak resident memory (VmHWM read in the worker: the peak
of the whole process, Python, torch and the model included), the seconds spent in each kind of
task (from dask's task stream), and the instance accuracy at IoU 0.5 of the block-wise labels
against the single-process ones. Then a worked estimate, from the measured cost of a block on
one thread, for a 100k x 100k slide on a 32-node cluster.

    python benchmarks/bench_distributed.py [--sizes 4096 16384] [--block 2048]
        [--single-max 4096]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from bench_predict import mosaic, peak_rss_mib  # noqa: E402


def write_zarr(path: Path, size: int) -> np.ndarray | None:
    """A size x size uint8 nuclei mosaic as a zarr array (chunks of 1024); returned as numpy
    when it is small enough to compare with single-process prediction."""
    import zarr

    part = mosaic(min(size, 4096), seed=1)
    array = zarr.open_array(
        str(path), mode="w", shape=(size, size), chunks=(1024, 1024), dtype="u1"
    )
    for y in range(0, size, part.shape[0]):
        for x in range(0, size, part.shape[1]):
            array[y : y + part.shape[0], x : x + part.shape[1]] = part
    return part if size <= 4096 else None


def _peak_mib(dask_worker=None) -> float:
    return peak_rss_mib()


def single_child(path: str, out: str) -> None:
    """Child process: the single-process path on the whole zarr image; prints seconds, peak."""
    from napari_segqc.core.distributed.images import segment_image
    from napari_segqc.core.distributed.models import ModelCache
    from napari_segqc.core.distributed.settings import PredictSettings
    from napari_segqc.core.distributed.zarr_io import read_zarr_image

    image = np.asarray(read_zarr_image(path))
    t0 = time.perf_counter()
    labels, _, _ = segment_image(image, PredictSettings(model="nuclei"), ModelCache())
    seconds = time.perf_counter() - t0
    np.save(out, labels)
    print(f"{seconds:.2f} {peak_rss_mib():.0f} {int(labels.max())}")


def run_single(path: Path, tmp: Path) -> tuple[float, float, np.ndarray]:
    out = tmp / "single.npy"
    child = subprocess.run(
        [sys.executable, __file__, "--child", str(path), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, peak, _ = child.stdout.split()[-3:]
    return float(seconds), float(peak), np.load(out)


def run_cluster(path: Path, target: Path, workers: int, block: int) -> dict:
    """Block-wise on a fresh LocalCluster of ``workers`` processes."""
    from dask.utils import key_split
    from distributed import get_task_stream

    from napari_segqc.core.distributed.cluster import dask_client
    from napari_segqc.core.distributed.predict import predict_blocks
    from napari_segqc.core.distributed.settings import PredictSettings

    settings = PredictSettings(model="nuclei", block=block)
    with dask_client(workers=workers) as client:
        client.wait_for_workers(workers)
        t0 = time.perf_counter()
        with get_task_stream(client) as stream:
            run = predict_blocks(client, path, target, settings)
        seconds = time.perf_counter() - t0
        peaks = client.run(_peak_mib)
    tasks: dict[str, list[float]] = defaultdict(list)
    for item in stream.data:
        prefix = key_split(item["key"])
        for part in item["startstops"]:
            if part["action"] == "compute":
                tasks[prefix].append(part["stop"] - part["start"])
    return {"seconds": seconds, "peaks": sorted(peaks.values()), "run": run, "tasks": tasks}


def describe_tasks(tasks: dict[str, list[float]]) -> str:
    parts = []
    for prefix in (
        "estimate_scale",
        "run_block",
        "match_seam",
        "relabel_block",
        "downsample_chunk",
    ):
        times = tasks.get(prefix, [])
        if times:
            parts.append(f"{prefix} {len(times)} x {np.mean(times):.2f} s")
    return ", ".join(parts)


def estimate_slide(per_mpix_thread: float, peak_mib: float, block: int) -> None:
    """A 100k x 100k slide on 32 nodes of 32 cores (one single-threaded worker per core)."""
    side, nodes, cores = 100_000, 32, 32
    workers = nodes * cores
    halo = 128
    print(f"\nWorked estimate: a {side:,} x {side:,} slide on {nodes} nodes x {cores} cores:")
    for b in (2048, 4096):
        blocks = math.ceil(side / b) ** 2
        window_mpix = (b + 2 * halo) ** 2 / 1e6
        per_block = per_mpix_thread * window_mpix
        waves = math.ceil(blocks / workers)
        total = waves * per_block
        print(
            f"  --block {b}: {blocks} blocks of {window_mpix:.1f} MPix with halo, "
            f"{per_block:.0f} s each on one thread -> {waves} wave(s) on {workers} workers: "
            f"about {total / 60:.1f} min of block work"
            + (
                " (this machine: " + f"{peak_mib / 1024:.1f} GiB peak per worker)"
                if b == block
                else ""
            )
        )
    print(
        "  plus seams, stitching and the relabel / pyramid passes (a few % here: see the task "
        "times), and reading 10 GB of pixels from shared storage"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[4096])
    p.add_argument("--block", type=int, default=2048)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument(
        "--single-max", type=int, default=4096, help="largest size also run single-process"
    )
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        single_child(*args.child)
        return
    from napari_segqc.core.qc.matching import match_objects

    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs, load "
        f"average {os.getloadavg()[0]:.2f}; built-in 'nuclei' (int8 ONNX); block {args.block}"
    )
    per_mpix_thread, last_peak = None, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in args.sizes:
            path = tmp / f"mosaic{size}.zarr"
            write_zarr(path, size)
            mpix = size * size / 1e6
            single = None
            if size <= args.single_max:
                seconds, peak, single = run_single(path, tmp)
                print(
                    f"| {size}² | single process | {seconds:.1f} s | {mpix / seconds:.2f} MPix/s "
                    f"| {peak / 1024:.2f} GiB | |"
                )
            for n in args.workers:
                target = tmp / f"labels{size}-{n}.zarr"
                result = run_cluster(path, target, n, args.block)
                run, seconds = result["run"], result["seconds"]
                peaks = ", ".join(f"{v / 1024:.2f}" for v in result["peaks"])
                agree = ""
                if single is not None:
                    import zarr

                    labels = zarr.open_group(str(target), mode="r")["0"][:]
                    m = match_objects(single, labels, thresholds=(0.5,))["0.50"]
                    agree = f"accuracy {m['accuracy']:.4f} ({m['n_gt']} objects)"
                print(
                    f"| {size}² | {n} worker{'s' * (n > 1)} ({run.blocks} blocks) | "
                    f"{seconds:.1f} s | {mpix / seconds:.2f} MPix/s | {peaks} GiB | {agree} |"
                )
                print(f"    tasks: {describe_tasks(result['tasks'])}")
                blocks = result["tasks"].get("run_block", [])
                if n == 1 and blocks:
                    # one worker has all the cores as network threads: cost on one thread
                    threads = os.cpu_count() or 1
                    window = (args.block + 2 * run.halo) ** 2 / 1e6
                    per_mpix_thread = np.median(blocks) * threads / window
                    last_peak = max(result["peaks"])
                import shutil

                shutil.rmtree(target, ignore_errors=True)
    if per_mpix_thread:
        print(
            f"\nmeasured: {per_mpix_thread:.2f} s per megapixel of block window on one thread "
            "(1-worker runs' median block time x their threads)"
        )
        estimate_slide(per_mpix_thread, last_peak, args.block)


if __name__ == "__main__":
    main()
