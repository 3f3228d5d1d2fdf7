"""QC and evaluation on a local dask cluster (127.0.0.1): block tasks reading only their blocks
from TIFF / zarr files give the in-process report; whole pairs and (model, image) evaluations
give the single-process results."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from conftest import degrade
from napari_segqc.core.distributed.cluster import dask_client
from napari_segqc.core.distributed.qc_tasks import (
    ImageRef,
    LazyZarr,
    evaluate_runner,
    gather_in_order,
    submit_blocks,
    submit_pair,
)
from napari_segqc.core.errors import SegQCError
from napari_segqc.core.qc.blockwise import blockwise_qc_report
from napari_segqc.core.qc.evaluate import ModelSpec, QCPair, evaluate
from napari_segqc.core.qc.report import to_json
from napari_segqc.core.qc.run import qc_report


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2, threads=1) as c:
        assert c.scheduler.address.startswith("tcp://127.0.0.1:")
        assert all(a.startswith("tcp://127.0.0.1:") for a in c.scheduler_info()["workers"])
        yield c
    assert c.status == "closed"


@pytest.fixture(scope="module")
def big_pair(sample_dir):
    """A 300 x 400 pair of real ground truth (two images side by side) and a degraded copy."""
    a = tifffile.imread(sample_dir / "masks" / "nuclei_01.tif")
    b = tifffile.imread(sample_dir / "masks" / "nuclei_02.tif")
    gt = np.zeros((300, 400), np.uint16)
    gt[:256, :200] = a[:, :200]
    gt[40:296, 200:400] = np.where(b[:, :200] > 0, b[:, :200] + 100, 0)
    return gt, degrade(gt).astype(np.uint16)


def _zarr(path, data, chunks=(64, 64)):
    array = zarr.open_array(str(path), mode="w", shape=data.shape, chunks=chunks, dtype=data.dtype)
    array[:] = data
    return path


def test_image_refs_read_only_what_is_indexed(tmp_path, big_pair):
    gt, _ = big_pair
    tifffile.imwrite(tmp_path / "plain.tif", gt)
    tifffile.imwrite(tmp_path / "packed.tif", gt, compression="zlib")
    np.save(tmp_path / "array.npy", gt)
    _zarr(tmp_path / "labels.zarr", gt)
    _zarr(tmp_path / "stack.zarr", np.stack([gt, gt[::-1]]), chunks=(1, 64, 64))
    tifffile.imwrite(tmp_path / "small.png", gt[:50, :50].astype(np.uint8))  # read whole
    window = (slice(33, 170), slice(250, 399))
    for name, kind in [
        ("plain.tif", np.memmap),
        ("packed.tif", zarr.Array),
        ("array.npy", np.memmap),
        ("labels.zarr", LazyZarr),
    ]:
        ref = ImageRef.of(tmp_path / name)
        data = ref.open()
        assert ref.lazy and isinstance(data, kind), name
        assert data.shape == gt.shape and data.dtype == gt.dtype
        assert np.array_equal(np.asarray(data[window]), gt[window]), name
    stack = ImageRef.of(tmp_path / "stack.zarr").open()
    assert stack.shape == (2, 300, 400)
    assert np.array_equal(stack[(1, *window)], gt[::-1][window])
    assert np.array_equal(np.asarray(stack)[0], gt)
    assert not ImageRef.of(tmp_path / "small.png").lazy
    with pytest.raises(SegQCError, match="no such file"):
        ImageRef.of(tmp_path / "missing.tif").open()
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    with pytest.raises(SegQCError, match=r"broken\.tif: cannot be read as an image"):
        ImageRef.of(tmp_path / "broken.tif").open()


def test_blocks_on_the_cluster_give_the_in_process_report(client, tmp_path, big_pair):
    gt, pred = big_pair
    tifffile.imwrite(tmp_path / "gt.tif", gt, compression="zlib")  # read chunk by chunk
    _zarr(tmp_path / "pred.zarr", pred)
    refs = ImageRef.of(tmp_path / "gt.tif"), ImageRef.of(tmp_path / "pred.zarr")
    here = blockwise_qc_report(gt, pred, name="pair", threshold=0.7, block=64)
    there = submit_blocks(client, *refs, gt.shape, name="pair", threshold=0.7, block=64)
    assert len(there.futures) == 5 * 7
    assert to_json(there.result()) == to_json(here)  # the same blocks: the very same report
    whole = qc_report(gt, pred, name="pair", threshold=0.7)
    assert here["objects"] == whole["objects"] and here["pixel"] == whole["pixel"]
    assert here["image"]["ssim"] == pytest.approx(whole["image"]["ssim"], abs=1e-6)


def test_a_whole_pair_on_a_worker_and_errors_in_order(client, tmp_path, big_pair):
    gt, pred = big_pair
    futures = [
        submit_pair(client, qc_report, gt, p, name=f"p{i}") for i, p in enumerate([pred, gt])
    ]
    reports = list(gather_in_order(futures))
    assert to_json(reports[0]) == to_json(qc_report(gt, pred, name="p0"))
    assert reports[1]["objects"]["0.50"]["f1"] == 1.0
    bad = gt.astype(np.int32)
    bad[5, 5] = -3
    tifffile.imwrite(tmp_path / "bad.tif", bad)
    tifffile.imwrite(tmp_path / "pred.tif", pred)
    refs = ImageRef.of(tmp_path / "bad.tif"), ImageRef.of(tmp_path / "pred.tif")
    pending = [submit_blocks(client, *refs, gt.shape, name="bad", threshold=0.5, block=64)]
    with pytest.raises(SegQCError, match="'ground truth' is used as labels but holds negative"):
        list(gather_in_order(pending))


def test_evaluation_on_workers_gives_the_single_process_results(client, sample_pair):
    image, labels = sample_pair
    qc_set = [QCPair("nuclei_02", image, labels)]
    specs = [ModelSpec("nuclei", "nuclei"), ModelSpec("nuclei_2", "nuclei")]  # one model twice
    here = evaluate(specs, qc_set, threshold=0.6)
    asked = []
    remote = evaluate_runner(
        client, threshold=0.6, tta=False, device="cpu", precision="auto", backend="auto"
    )

    def runner(todo):
        asked.append([(spec.source, pair.name) for spec, pair in todo])
        return remote(todo)

    there = evaluate(specs, qc_set, threshold=0.6, runner=runner)
    assert asked == [[("nuclei", "nuclei_02")]]  # each model file and image once
    assert there.rows == here.rows
    assert to_json(there.reports) == to_json(here.reports)
