"""Block-wise and image-by-image prediction on a dask cluster equal single-process prediction,
on real nuclei; blocks read only their windows; a failure leaves nothing behind."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_segqc.core.distributed import zarr_io
from napari_segqc.core.distributed.cluster import PLUGIN, ModelPlugin
from napari_segqc.core.distributed.images import predict_file, segment_image
from napari_segqc.core.distributed.models import ModelCache
from napari_segqc.core.distributed.predict import predict_blocks, predict_paths
from napari_segqc.core.distributed.settings import PredictSettings
from napari_segqc.core.errors import SegQCError
from napari_segqc.core.qc.matching import match_objects

BLOCK = 320  # core borders at 320, 640, 960: inside the mosaic's 256-pixel crops


@pytest.fixture(scope="module")
def client():
    """Two single-threaded in-process workers (inproc transport: no network port), with the
    model plugin; closed at the end."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(ModelPlugin(), name=PLUGIN)
        yield client


def nuclei_mosaic(size: int, seed: int, shared_data) -> np.ndarray:
    """uint8 mosaic of 256 x 256 crops of real DSB 2018 nuclei images, each scaled to its
    range (as ``benchmarks/bench_ssim.real_mosaic`` makes them)."""
    import tifffile

    files = sorted((shared_data / "dsb2018" / "train" / "images").glob("*.tif"))
    rng = np.random.default_rng(seed)
    n = -(-size // 256)
    rows = []
    for _ in range(n):
        row = []
        for f in rng.choice(files, n):
            img = tifffile.imread(f)
            img = (img[..., 0] if img.ndim == 3 else img).astype(np.float32)
            r = rng.integers(0, img.shape[0] - 255)
            c = rng.integers(0, img.shape[1] - 255)
            crop = img[r : r + 256, c : c + 256]
            row.append((crop - crop.min()) / max(float(np.ptp(crop)), 1.0))
        rows.append(np.concatenate(row, axis=1))
    return (np.concatenate(rows)[:size, :size] * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def mosaic(shared_data, tmp_path_factory):
    """A 1024 x 1024 real nuclei mosaic, as numpy and as a zarr array (chunks of 256)."""
    image = nuclei_mosaic(1024, 3, shared_data)
    path = tmp_path_factory.mktemp("mosaic") / "mosaic.zarr"
    array = zarr.open_array(str(path), mode="w", shape=image.shape, chunks=(256, 256), dtype="u1")
    array[:] = image
    return path, image


def test_blocks_equal_single_process_and_read_only_their_windows(
    client, mosaic, tmp_path, monkeypatch
):
    path, image = mosaic
    settings = PredictSettings(model="nuclei", block=BLOCK)
    single, _, _ = segment_image(image, settings, ModelCache())

    reads = []
    read = zarr_io.ZarrImage.read

    def counted(self, window):  # the workers run in this process: they call this
        out = read(self, window)
        reads.append(out.shape)
        return out

    monkeypatch.setattr(zarr_io.ZarrImage, "read", counted)
    run = predict_blocks(client, path, tmp_path / "labels.zarr", settings)
    labels = zarr.open_group(str(run.path), mode="r")["0"][:].astype(np.int64)

    assert run.blocks == 16 and run.halo == 128 and labels.shape == image.shape
    result = match_objects(single, labels, thresholds=(0.5,))["0.50"]
    assert result["accuracy"] >= 0.99, result
    ids = np.unique(labels)[1:]
    assert ids.tolist() == list(range(1, run.objects + 1))  # unique, consecutive
    # objects across a core border are one object, with one id on both sides
    for edge in (BLOCK, 2 * BLOCK, 3 * BLOCK):
        both = (labels[:, edge - 1] > 0) & (labels[:, edge - 1] == labels[:, edge])
        assert both.sum() > 10
        both = (labels[edge - 1] > 0) & (labels[edge - 1] == labels[edge])
        assert both.sum() > 10
    # memory: every read is a block's window (or the smaller estimate crop), never the image
    side = BLOCK + 2 * run.halo
    assert len(reads) == 16 + 1 and all(h <= side and w <= side for h, w in reads), reads
    assert sum(h * w for h, w in reads) < 4 * image.size
    # each worker loaded the model once, however many blocks it ran
    loads = client.run(lambda dask_worker: dask_worker.plugins[PLUGIN].cache.loads)
    assert set(loads.values()) <= {0, 1} and sum(loads.values()) >= 1


def test_a_folder_goes_image_by_image_with_the_same_labels(client, sample_dir, tmp_path):
    images = sorted((sample_dir / "images").glob("*.tif"))[:3]
    settings = PredictSettings(model="nuclei")
    items = [(p, tmp_path / "cluster" / p.name) for p in images]
    lines = []
    assert predict_paths(client, items, settings, report=lines.append) == []
    assert len(lines) == 3 and all("objects ->" in line for line in lines)
    import tifffile

    for p, target in items:
        here = tmp_path / "here" / p.name
        predict_file(p, here, settings, ModelCache())
        assert np.array_equal(tifffile.imread(target), tifffile.imread(here))


def test_a_failing_block_leaves_no_store_behind(client, mosaic, tmp_path, monkeypatch):
    from napari_segqc.core.instances import decoding

    path, _ = mosaic
    calls = []
    decode = decoding.decode_labels

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise OSError("disk went away")
        return decode(*args, **kwargs)

    monkeypatch.setattr(decoding, "decode_labels", flaky)
    settings = PredictSettings(model="nuclei", block=BLOCK, diameter=16.0)
    with pytest.raises(OSError, match="disk went away"):
        predict_blocks(client, path, tmp_path / "labels.zarr", settings)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SegQCError, match="is the input"):
        predict_blocks(client, path, path, settings)
