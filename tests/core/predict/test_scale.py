"""Object size: diameter estimates, rescaling to the model's scale, tile context."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from skimage.draw import disk, ellipse

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.instances.decoding import decode_labels, min_size_at
from napari_segqc.core.instances.sizes import (
    _disc_table,
    diameter_from_maps,
    diameter_of_mean_distance,
    object_diameters,
    training_diameters,
)
from napari_segqc.core.instances.targets import make_targets
from napari_segqc.core.predict.loading import load_model
from napari_segqc.core.predict.scale import (
    SCALE_TOLERANCE,
    SHRINK_TOLERANCE,
    ScaleInfo,
    context_tiles,
    parse_diameter,
    resize_plane,
    scale_factor,
)
from napari_segqc.core.predict.segmentation import quarter_overrides, segment
from napari_segqc.core.qc.matching import match_objects
from napari_segqc.core.train.config import TrainConfig


def discs(diameter: float, size: int | None = None, seed: int = 0, texture: bool = False):
    """A noisy image of bright discs of one diameter on a grid, and their labels."""
    rng = np.random.default_rng(seed)
    size = size or max(192, int(7 * diameter))
    labels = np.zeros((size, size), np.int32)
    step = int(1.6 * diameter) + 2
    n = 0
    for cy in range(int(diameter), size - int(diameter // 2) - 1, step):
        for cx in range(int(diameter), size - int(diameter // 2) - 1, step):
            n += 1
            rr, cc = disk((cy, cx), diameter / 2, shape=labels.shape)
            labels[rr, cc] = n
    image = (labels > 0) * 180.0 + rng.normal(20, 6, labels.shape)
    if texture:  # chromatin-like speckles inside the nuclei
        speckles = rng.random(labels.shape) < 0.08
        image[(labels > 0) & speckles] -= 110
    return image.astype(np.float32), labels


@pytest.fixture(scope="module")
def nuclei():
    return load_model("nuclei")


@pytest.mark.parametrize("d", [5, 6, 7, 8, 10, 15, 30, 60, 120])
def test_diameter_of_perfect_masks_is_exact(d):
    _, labels = discs(d)
    true = float(np.median(object_diameters(labels)))
    # small pixel discs too (6 x the mean distance said +7 to +19 % at 5-10 px)
    assert diameter_from_maps((labels > 0).astype(np.float32)) == pytest.approx(true, rel=0.05)
    rr, cc = ellipse(100, 100, 20, 10)  # an ellipse: between its axes
    mask = np.zeros((200, 200), np.float32)
    mask[rr, cc] = 1
    assert 20 < diameter_from_maps(mask) < 40
    assert diameter_from_maps(np.zeros((50, 50))) is None


def test_disc_table_inverts_the_mean_distance():
    means, diameters = _disc_table()
    assert np.all(np.diff(means) > 0) and np.all(np.diff(diameters) >= 0)
    # beyond the table: a continuous disc, 6 x the mean distance, continuing the table
    assert diameter_of_mean_distance(means[-1] + 10.0) == pytest.approx(diameters[-1] + 60.0)
    big = np.zeros((700, 700), bool)
    rr, cc = disk((350, 350), 300, shape=big.shape)
    big[rr, cc] = True
    assert diameter_from_maps(big.astype(np.float32)) == pytest.approx(600, rel=0.01)


def test_quarter_pass_overrides_only_objects_it_can_measure(nuclei):
    config = nuclei.config  # median diameter ~21 px
    assert quarter_overrides(20.0, 90.0, config)  # big nuclei split at full size
    assert not quarter_overrides(20.0, 25.0, config)  # not much larger
    # small nuclei: 20-px blobs at full size are 5 px at a quarter: not measurable there
    assert not quarter_overrides(8.0, 20.0, config)
    assert not quarter_overrides(20.0, None, config)


@pytest.mark.parametrize("d", [8, 16, 30, 60, 120])
def test_estimated_diameter_within_25_percent_on_synthetic_discs(nuclei, d):
    image, _ = discs(d)
    _, _, info = segment(nuclei, image, return_scale=True)
    assert info.estimated
    assert info.diameter == pytest.approx(d, rel=0.25), info


@pytest.mark.parametrize("texture", [False, True])
def test_synthetic_discs_of_8_to_120_px_are_segmented(nuclei, texture):
    """``auto`` segments discs from 8 to 120 px across, plain and with chromatin-like
    speckles: accuracy >= 0.9 at IoU 0.5 for each size (2026-12-05: 1.0 everywhere but the
    textured 120-px discs, 0.94 - unscaled they give 1.0: such clean discs do not need the
    rescaling that real big nuclei do, see the real-image tests below)."""
    for d in (8, 15, 30, 60, 120):
        image, gt = discs(d, texture=texture)
        labels = segment(nuclei, image)[0]
        assert match_objects(gt, labels)["0.50"]["accuracy"] >= 0.9, (d, texture)


def test_training_diameters_and_scale_factor():
    small, big = discs(10)[1], discs(40)[1]
    median, (lo, hi) = training_diameters([small, small, big])
    assert 9 < median < 11 and 9 < lo < hi < 41
    config = replace(TrainConfig(), diameter=20.0, diameter_range=(10.0, 45.0))
    assert scale_factor(27, config) == 1.0 and scale_factor(None, config) == 1.0
    assert scale_factor(20 * SHRINK_TOLERANCE * 1.01, config) < 1.0  # shrinks sooner
    assert scale_factor(20 / SCALE_TOLERANCE * 1.01, config) == 1.0
    assert scale_factor(20 / SCALE_TOLERANCE / 1.01, config) > 1.0
    assert scale_factor(100, config) == pytest.approx(0.2, rel=0.025)  # snapped
    assert scale_factor(100, config) == scale_factor(101, config)
    assert scale_factor(5, config) == pytest.approx(4.0)
    assert scale_factor(100, TrainConfig()) == 1.0  # the model's size unknown
    for bad in ("big", "-3", 0, float("nan"), 10_000):
        with pytest.raises(SegQCError, match="diameter"):
            parse_diameter(bad)
    assert parse_diameter(" Auto ") == "auto" and parse_diameter("17.5") == 17.5
    text = ScaleInfo(100.0, True, 0.2, 20.0).describe()
    assert "100 px (estimated)" in text and "×0.20" in text


def test_tiles_give_objects_context():
    config = replace(TrainConfig(), diameter=20.0, diameter_range=(10.0, 50.0))
    assert context_tiles(256, 64, 20, config) == (256, 64)
    tile, overlap = context_tiles(128, 16, 50, config)
    assert tile >= 300 and tile % 32 == 0 and overlap >= 75 and overlap < tile // 2
    assert context_tiles(128, 16, None, config) == (tile, overlap)  # unknown: the largest
    assert context_tiles(128, 16, None, TrainConfig()) == (128, 16)  # nothing known


@pytest.mark.parametrize("shape", [(301, 257), (2, 120, 97)])
def test_rescaled_segmentation_keeps_the_input_shape(nuclei, shape):
    rng = np.random.default_rng(1)
    image = rng.normal(10, 2, shape).astype(np.float32)
    image[..., 30:60, 30:60] += 200
    for diameter in (6.0, 150.0):  # upscaled x3.4, downscaled x0.14
        labels, maps, info = segment(nuclei, image, diameter=diameter, return_scale=True)
        assert info.factor != 1.0
        assert labels.shape == shape and maps.shape[-2:] == shape[-2:]
        assert labels.dtype == np.int32


def test_the_models_min_size_follows_the_rescaling(nuclei):
    """``min_size`` is in pixels at the model's scale: an image enlarged x2 for the network
    keeps objects of a quarter of it in its own pixels (and a shrunk one needs bigger ones)."""
    assert min_size_at(20, 1.0) == 20 and min_size_at(20, 2.0) == 5 and min_size_at(20, 0.5) == 80
    with pytest.raises(SegQCError, match="positive"):
        min_size_at(20, 0.0)
    _, labels = discs(6, size=120)  # ~28-px discs
    maps = np.stack(make_targets(labels, "instance")).astype(np.float32)
    config = TrainConfig(min_size=60)
    assert decode_labels(maps, config).max() == 0  # at the model's own scale: all too small
    assert decode_labels(maps, config, scale=2.0).max() == labels.max()  # 15 px here: kept
    assert decode_labels(maps, config, scale=2.0, min_size=200).max() == 0  # 50 px here
    image, _ = discs(6, size=160)
    out, maps, info = segment(nuclei, image, return_scale=True)  # small: enlarged
    assert info.factor > 1.0
    assert np.array_equal(out, decode_labels(maps, nuclei.config, scale=info.factor))


def test_resize_plane_grey_and_colour():
    grey = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert resize_plane(grey, (6, 8)).shape == (6, 8)
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 1] = 100
    out = resize_plane(rgb, (5, 6))
    assert out.shape == (5, 6, 3) and np.allclose(out[..., 1], 100) and np.allclose(out[..., 0], 0)


def _accuracy(gt_list, pred_list) -> float:
    counts = np.zeros(3)
    for gt, pred in zip(gt_list, pred_list, strict=True):
        r = match_objects(gt, pred)["0.50"]
        counts += [r["tp"], r["fp"], r["fn"]]
    return counts[0] / counts.sum()


def test_real_images_rescaled_by_half_and_two(nuclei):
    """The sample images at x2: with ``auto`` the accuracy stays within a few points of the
    native scale. At x0.5 (nuclei_01's ~11-px nuclei left out: 5 px is below the 6 px the
    models are made for) small nuclei stay hard - the README gives the numbers - but ``auto``
    never does worse than segmenting the image as it is."""
    from skimage.transform import rescale

    from napari_segqc._sample_data import load_sample, sample_names

    results = {}
    for factor, diameter in ((1.0, "auto"), (0.5, "auto"), (0.5, None), (2.0, "auto")):
        gts, preds = [], []
        for name in sample_names():
            if factor == 0.5 and name == "nuclei_01":
                continue
            image, gt = load_sample(name)
            if factor != 1.0:
                image = rescale(image.astype(np.float32), factor, order=1, anti_aliasing=True)
                gt = rescale(gt, factor, order=0, anti_aliasing=False, preserve_range=True)
                gt = gt.astype(np.int32)
            gts.append(gt)
            preds.append(segment(nuclei, image, diameter=diameter)[0])
        results[factor, diameter] = _accuracy(gts, preds)
    assert results[2.0, "auto"] > results[1.0, "auto"] - 0.05, results
    assert results[0.5, "auto"] >= results[0.5, None] - 0.01, results


def test_tile_size_does_not_change_big_nuclei(nuclei):
    """~100-px textured nuclei: --tile 256 and --tile 1024 agree (foreground IoU >= 0.99)."""
    image, _ = discs(100, size=900, texture=True)
    fg = []
    for tile in (256, 1024):
        out, _ = segment(nuclei, image, tile=tile)
        fg.append(out > 0)
    iou = (fg[0] & fg[1]).sum() / (fg[0] | fg[1]).sum()
    assert iou >= 0.99, iou
    found = np.median(object_diameters(out))
    assert found == pytest.approx(100, rel=0.2)
