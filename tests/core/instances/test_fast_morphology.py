"""The decoding's and size estimate's fast paths give exactly what scikit-image / scipy give."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import h_maxima

from napari_segqc.core.instances.decoding import dilate_cross, region_h_maxima
from napari_segqc.core.instances.sizes import fill_holes


def _landscape(rng, shape, plateaus: bool) -> np.ndarray:
    """Noise, or one to three nucleus-like bumps with a little noise (mostly one maximum)."""
    image = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.5, 4))
    if rng.random() < 0.7:
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        bumps = sum(
            np.exp(
                -((yy - rng.uniform(0, shape[0])) ** 2 + (xx - rng.uniform(0, shape[1])) ** 2)
                / (2 * rng.uniform(2, 10) ** 2)
            )
            for _ in range(rng.integers(1, 4))
        )
        image = bumps + 0.01 * image
    if plateaus:  # quantised values: flat tops and flat slopes, as an int8 network gives
        image = np.round(image * rng.integers(5, 50)) / 10
    return image.astype(np.float32)


@pytest.mark.parametrize("plateaus", [False, True])
def test_region_h_maxima_is_scikit_image_h_maxima(plateaus):
    rng = np.random.default_rng(1 + plateaus)
    fast = 0
    for _ in range(400):
        shape = tuple(rng.integers(5, 50, 2))
        image = _landscape(rng, shape, plateaus)
        if rng.random() < 0.5:
            inside = np.ones(shape, bool)
        else:
            grown = ndi.binary_dilation(rng.random(shape) < 0.3, iterations=int(rng.integers(1, 4)))
            labels, n = ndi.label(grown)
            if n == 0:
                continue
            inside = labels == 1
        crop = np.where(inside, image + 0.001, 0).astype(np.float32)
        h = float(rng.choice([0.2, 0.05, 0.01, 0.001]))
        expected = h_maxima(crop, h).astype(bool) & inside
        got = region_h_maxima(crop, inside, h)
        np.testing.assert_array_equal(got, expected)
        peaks = crop >= ndi.maximum_filter(crop, size=3)
        fast += ndi.label(peaks & inside, structure=np.ones((3, 3)))[1] == 1
    assert fast > 20  # the single-peak path was taken (and checked) often


def test_region_h_maxima_single_cone_and_low_peak():
    yy, xx = np.mgrid[:31, :31]
    cone = np.clip(1 - np.hypot(yy - 15, xx - 15) / 15, 0.01, None).astype(np.float32)
    inside = np.ones(cone.shape, bool)
    got = region_h_maxima(cone, inside, 0.2)
    assert got.sum() == 1 and got[15, 15]
    # a peak lower than h: no seed, as scikit-image says
    flat = (cone * 0.1).astype(np.float32)
    np.testing.assert_array_equal(
        region_h_maxima(flat, inside, 0.2), h_maxima(flat, 0.2).astype(bool)
    )


def test_dilate_cross_is_binary_dilation():
    rng = np.random.default_rng(3)
    for shape in [(1, 7), (9, 1), (40, 53), (128, 96)]:
        mask = rng.random(shape) < 0.2
        for iterations in (1, 2, 3):
            np.testing.assert_array_equal(
                dilate_cross(mask, iterations), ndi.binary_dilation(mask, iterations=iterations)
            )


def test_fill_holes_is_binary_fill_holes():
    rng = np.random.default_rng(4)
    for _ in range(200):
        shape = tuple(rng.integers(1, 70, 2))
        mask = ndi.binary_dilation(rng.random(shape) < rng.uniform(0.02, 0.5))
        np.testing.assert_array_equal(fill_holes(mask), ndi.binary_fill_holes(mask))
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[4, 4] = False
    assert fill_holes(ring)[4, 4] and not fill_holes(ring)[0, 0]
    assert not fill_holes(np.zeros((5, 5), bool)).any()
    assert fill_holes(np.ones((5, 5), bool)).all()


def test_h_maxima_by_levels_with_near_ties_and_exact_drops():
    # two peaks whose saddle is exactly h below the lower one, a neighbour higher by less
    # than the float resolution scikit-image allows for, and flat tops
    from napari_segqc.core.instances.decoding import _h_maxima_by_levels

    line = np.array([0.1, 0.5, 0.3, 0.7, 0.7, 0.2, 0.6, 0.6000001, 0.1], np.float32)
    rng = np.random.default_rng(5)
    for h in (0.2, 0.4, 0.1, 0.5):
        image = np.tile(line, (3, 1))
        np.testing.assert_array_equal(
            _h_maxima_by_levels(image, h), h_maxima(image, h).astype(bool)
        )
    for _ in range(300):
        shape = tuple(rng.integers(3, 30, 2))
        image = np.round(rng.random(shape) * 10).astype(np.float32) / 10
        image += (rng.random(shape) < 0.1) * np.float32(1e-7)
        h = float(rng.choice([0.1, 0.2, 0.3]))
        np.testing.assert_array_equal(
            _h_maxima_by_levels(image, h), h_maxima(image, h).astype(bool)
        )
