"""OME-Zarr label stores: pyramid by 2 x 2 mode, metadata readers understand, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_segqc.core.distributed import label_writer
from napari_segqc.core.distributed.label_writer import (
    LabelStoreWriter,
    check_target,
    downsample_labels,
    level_shapes,
    write_label_store,
)
from napari_segqc.core.errors import SegQCError


def _labels(shape=(1100, 700), n=60, seed=0) -> np.ndarray:
    from skimage.draw import disk

    rng = np.random.default_rng(seed)
    out = np.zeros(shape, np.int32)
    for i in range(1, n + 1):
        r = rng.integers(4, 25)
        cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        out[disk((cy, cx), r, shape=shape)] = i
    return out


def test_downsampling_takes_the_most_frequent_label_ties_to_the_top_left():
    labels = np.array(
        [
            [1, 2, 5, 0, 8],
            [2, 2, 0, 7, 8],
            [3, 3, 4, 6, 0],
            [3, 4, 6, 4, 0],
        ],
        np.uint32,
    )
    out = downsample_labels(labels)
    # 2 of 4 are 2; 5/0/0/7: 0 twice; 3 three times; 4/6/6/4 tie: top-left (4) first; odd
    # column: padded with its edge
    assert out.tolist() == [[2, 0, 8], [3, 4, 0]]
    assert set(np.unique(downsample_labels(_labels()))) <= set(np.unique(_labels()))


def test_store_has_every_level_lazily_readable_by_ome_zarr_and_napari(tmp_path):
    labels = _labels()
    path = write_label_store(tmp_path / "labels.zarr", labels)
    group = zarr.open_group(str(path), mode="r")
    ome = group.attrs["ome"]
    scales = ome["multiscales"][0]
    assert "image-label" in ome and [a["name"] for a in scales["axes"]] == ["y", "x"]
    shapes = level_shapes(labels.shape)
    assert shapes[:3] == [(1100, 700), (550, 350), (275, 175)] and len(shapes) == 3
    assert [d["path"] for d in scales["datasets"]] == ["0", "1", "2"]
    level = labels.astype(np.uint32)
    for i, shape in enumerate(shapes):
        array = group[str(i)]
        assert array.shape == shape and array.dtype == np.uint32
        assert np.array_equal(array[:], level)
        level = downsample_labels(level)
    assert group.attrs["napari_segqc"]["objects"] == labels.max()

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    node = next(iter(Reader(parse_url(str(path)))()))
    assert any(isinstance(s, Label) for s in node.specs)
    assert [tuple(d.shape) for d in node.data] == shapes
    from napari_builtins.io._read import magic_imread

    data = magic_imread(str(path))
    assert [tuple(d.shape) for d in data] == shapes and all(hasattr(d, "dask") for d in data)


def test_a_failed_write_leaves_nothing_and_keeps_the_older_store(tmp_path, monkeypatch):
    target = tmp_path / "out.zarr"
    write_label_store(target, _labels(seed=1))
    before = zarr.open_group(str(target), mode="r")["0"][:]

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(label_writer, "downsample_chunk", broken)
    with pytest.raises(OSError, match="disk full"):
        write_label_store(target, _labels(seed=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]  # no hidden leftovers
    assert np.array_equal(zarr.open_group(str(target), mode="r")["0"][:], before)
    with pytest.raises(RuntimeError), LabelStoreWriter(tmp_path / "new.zarr", (10, 10)):
        raise RuntimeError("stopped")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]
    monkeypatch.undo()
    second = _labels(seed=3)
    write_label_store(target, second)  # a good write replaces the store
    assert np.array_equal(zarr.open_group(str(target), mode="r")["0"][:], second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


def test_targets_that_are_not_stores_are_refused(tmp_path):
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(SegQCError, match="is a file"):
        check_target(tmp_path / "file.zarr")
    folder = tmp_path / "photos.zarr"
    folder.mkdir()
    (folder / "holiday.jpg").write_text("x")
    with pytest.raises(SegQCError, match="not a zarr store"):
        check_target(folder)
    with pytest.raises(SegQCError, match="2-D"):
        write_label_store(tmp_path / "stack.zarr", np.zeros((2, 8, 8), np.int32))
    assert check_target(tmp_path / "new" / "x.zarr") == tmp_path / "new" / "x.zarr"
