"""Reading zarr and OME-Zarr images: layouts, lazy reads, windows, clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_image

from napari_segqc.core.distributed.zarr_io import (
    is_zarr,
    open_zarr_image,
    read_zarr_image,
    zarr_stem,
)
from napari_segqc.core.errors import SegQCError


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 4000, (150, 170)).astype(np.uint16)


def _ome(path, data, axes, fmt=None):
    fmt = fmt or FormatV05()
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    write_image(data, group, axes=axes, fmt=fmt, scale_factors=(2,))
    return path


def test_plain_arrays_grey_and_rgb(tmp_path, image):
    path = tmp_path / "plain.zarr"
    zarr.open_array(str(path), mode="w", shape=image.shape, chunks=(64, 64), dtype=image.dtype)[
        :
    ] = image
    src = open_zarr_image(path)
    assert src.axes == ("y", "x") and src.shape == image.shape and src.plane_shape == (150, 170)
    lazy = read_zarr_image(path)
    assert hasattr(lazy, "dask") and np.array_equal(np.asarray(lazy), image)
    assert np.array_equal(src.read((10, 90, 20, 150)), image[10:90, 20:150])
    rgb = np.stack([image, image // 2, image // 3], axis=-1)
    path = tmp_path / "rgb"  # no .zarr name: known by its metadata
    zarr.open_array(str(path), mode="w", shape=rgb.shape, dtype=rgb.dtype)[:] = rgb
    assert is_zarr(path)
    src = open_zarr_image(path)
    assert src.axes == ("y", "x", "c") and np.array_equal(src.read((5, 50, 0, 10)), rgb[5:50, :10])


def test_ome_05_full_resolution_level_with_singleton_axes_dropped(tmp_path, image):
    path = _ome(tmp_path / "img.ome.zarr", image[None, None, None], "tczyx")
    src = open_zarr_image(path)
    assert src.shape == image.shape and src.axes == ("y", "x")
    assert np.array_equal(np.asarray(src.lazy()), image)
    assert np.array_equal(src.read((0, 150, 100, 170)), image[:, 100:])
    assert zarr_stem(path) == "img.ome"


def test_ome_04_channels_become_rgb_and_stacks_stay_stacks(tmp_path, image):
    rgb = np.stack([image, image // 2, image // 3])  # (c, y, x) as OME stores it
    src = open_zarr_image(_ome(tmp_path / "c.zarr", rgb, "cyx", FormatV04()))
    assert src.axes == ("y", "x", "c") and src.shape == (150, 170, 3)
    assert np.array_equal(src.read((3, 9, 4, 8)), rgb[:, 3:9, 4:8].transpose(1, 2, 0))
    stack = np.stack([image, image[::-1]])
    src = open_zarr_image(_ome(tmp_path / "z.zarr", stack, "zyx"))
    assert src.axes == ("z", "y", "x") and np.array_equal(np.asarray(src.lazy()), stack)
    with pytest.raises(SegQCError, match="2-D images"):
        src.read((0, 10, 0, 10))


def test_bioformats2raw_layout_opens_its_first_series(tmp_path, image):
    root = tmp_path / "b2r.zarr"
    group = zarr.open_group(str(root), mode="w", zarr_format=3)
    group.attrs["ome"] = {"version": "0.5", "bioformats2raw.layout": 3}
    _ome(root / "0", image[None], "cyx")
    src = open_zarr_image(root)
    level = open_zarr_image(root / "0").array  # ome-zarr names levels "0" or "s0"
    assert src.array == f"0/{level}" and np.array_equal(np.asarray(src.lazy()), image)


def test_foreign_corrupt_and_incomplete_stores_are_clear_errors(tmp_path, image):
    with pytest.raises(SegQCError, match="no such zarr store"):
        open_zarr_image(tmp_path / "missing.zarr")
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(SegQCError, match="is a file"):
        open_zarr_image(tmp_path / "file.zarr")
    foreign = zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w")
    foreign.create_array("table", shape=(3,), dtype="f4")
    with pytest.raises(SegQCError, match=r"without OME-Zarr multiscales.*table"):
        open_zarr_image(tmp_path / "foreign.zarr")
    corrupt = tmp_path / "corrupt.zarr"
    corrupt.mkdir()
    (corrupt / "zarr.json").write_text("{not json")
    with pytest.raises(SegQCError, match="cannot be read as zarr"):
        open_zarr_image(corrupt)
    path = _ome(tmp_path / "gone.zarr", image, "yx")

    level = open_zarr_image(path).array
    shutil.rmtree(path / level)
    with pytest.raises(SegQCError, match=rf"full-resolution level '{level}'.*missing"):
        open_zarr_image(path)
    five = _ome(tmp_path / "five.zarr", np.zeros((5, 20, 20), np.uint8), "cyx")
    with pytest.raises(SegQCError, match="5 channels"):
        open_zarr_image(five)
    text = zarr.open_array(str(tmp_path / "text.zarr"), mode="w", shape=(4, 4), dtype=str)
    del text
    with pytest.raises(SegQCError, match="not an image"):
        open_zarr_image(tmp_path / "text.zarr")
