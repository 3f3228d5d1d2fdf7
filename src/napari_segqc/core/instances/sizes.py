"""Object sizes: the diameter of nuclei, from instance labels or from a foreground map.

The diameter of an object is its equivalent diameter, ``2 sqrt(area / pi)``. Training stores
the median diameter of its objects in the model's config (:func:`training_diameters`);
prediction estimates the diameter of an image's objects from the network's foreground map
(:func:`diameter_from_maps`) to bring the image to the model's scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "diameter_from_maps",
    "diameter_of_mean_distance",
    "object_diameters",
    "training_diameters",
]

#: Objects smaller than this many pixels are ignored when estimating a diameter (specks).
MIN_OBJECT_PIXELS = 9
#: At most this many regions (a seeded random sample) measure the diameter of an image.
MAX_REGIONS = 500


def object_diameters(labels: np.ndarray) -> np.ndarray:
    """Equivalent diameters (pixels) of the objects of an instance label image."""
    areas = np.bincount(np.asarray(labels).ravel())[1:]
    areas = areas[areas > 0]
    return 2.0 * np.sqrt(areas / np.pi)


def training_diameters(labels: Sequence[np.ndarray]) -> tuple[float, tuple[float, float]]:
    """The median diameter over all objects of the label images, and the range (5th and 95th
    percentiles) of the images' own median diameters: the sizes a model trained on them saw."""
    per_image, every = [], []
    for lab in labels:
        d = object_diameters(lab)
        if d.size:
            per_image.append(float(np.median(d)))
            every.append(d)
    if not every:
        return 0.0, (0.0, 0.0)
    lo, hi = np.percentile(per_image, [5, 95])
    return float(np.median(np.concatenate(every))), (float(lo), float(hi))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``ndi.binary_fill_holes(mask)`` of a 2-D mask: background regions (4-connected) that do
    not touch the image's edge become foreground. One labelling instead of an iterated
    dilation: ~10x faster on a 2048² foreground map."""
    background, n = ndi.label(~mask)
    if n == 0:
        return mask.copy()
    edge = np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
    open_ = np.zeros(n + 1, bool)
    open_[edge] = True
    open_[0] = True  # the foreground itself
    return ~open_[background] | mask


def diameter_from_maps(foreground: np.ndarray, threshold: float = 0.5) -> float | None:
    """Median object diameter from a foreground probability map, or None when there is no
    object.

    Holes are filled; each connected region's diameter is that of the pixel disc with the
    same mean distance to the background (:func:`diameter_of_mean_distance`; for a large
    disc, 6 x the mean distance: the mean distance in a disc of radius r is r / 3). Touching
    objects barely change it: two touching discs have about the mean distance of one (cutting
    them apart along the network's boundary map made the estimate ~15 % too low on DSB 2018
    validation images; without it the median estimate / true median is 0.98). Each region's
    distances are computed in its bounding box, for at most :data:`MAX_REGIONS` regions.
    """
    mask = fill_holes(np.asarray(foreground) > threshold)
    labels, n = ndi.label(mask)
    if n == 0:
        return None
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    ids = np.flatnonzero(area >= MIN_OBJECT_PIXELS) + 1
    if not ids.size:
        return None
    if ids.size > MAX_REGIONS:  # the median of a seeded sample: time bounded on huge images
        ids = np.sort(np.random.default_rng(0).choice(ids, MAX_REGIONS, replace=False))
    boxes = ndi.find_objects(labels)
    h, w = mask.shape
    means = np.empty(ids.size)  # each region's mean distance to the background
    for k, i in enumerate(ids):
        (y0, y1), (x0, x1) = ((b.start, b.stop) for b in boxes[i - 1])
        inside = labels[y0:y1, x0:x1] == i
        region = np.zeros((y1 - y0 + 2, x1 - x0 + 2), bool)  # a ring of background around
        region[1:-1, 1:-1] = inside
        # the image's edge is not background (as for an EDT of the whole image)
        region[0, :] |= y0 == 0
        region[-1, :] |= y1 == h
        region[:, 0] |= x0 == 0
        region[:, -1] |= x1 == w
        means[k] = ndi.distance_transform_edt(region)[1:-1, 1:-1][inside].mean()
    return float(np.median(diameter_of_mean_distance(means)))


def _mean_distance(mask: np.ndarray) -> float:
    """Mean Euclidean distance of a mask's pixels to the nearest pixel outside it."""
    return float(ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1][mask].mean())


@lru_cache(maxsize=1)
def _disc_table() -> tuple[np.ndarray, np.ndarray]:
    """Mean distance to the background of pixel discs of 2-128 px across (averaged over
    sub-pixel centres), with their equivalent diameters: both increasing, for interpolation."""
    means, diameters = [], []
    for d in np.geomspace(2.0, 128.0, 40):
        r, size = d / 2, int(np.ceil(d)) + 3
        yy, xx = np.mgrid[:size, :size]
        m, e = [], []
        for oy, ox in ((0.0, 0.0), (0.5, 0.5), (0.25, 0.0), (0.5, 0.125)):
            disc = (yy - size / 2 - oy) ** 2 + (xx - size / 2 - ox) ** 2 <= r * r
            m.append(_mean_distance(disc))
            e.append(2.0 * np.sqrt(disc.sum() / np.pi))
        means.append(np.mean(m))
        diameters.append(np.mean(e))
    means, first = np.unique(np.round(means, 6), return_index=True)
    return means, np.maximum.accumulate(np.asarray(diameters)[first])


def diameter_of_mean_distance(mean: np.ndarray | float) -> np.ndarray:
    """The equivalent diameter of a pixel disc whose pixels lie ``mean`` pixels from the
    background on average (interpolated between discs of 2-128 px; beyond, 6 x the mean
    distance, as for a continuous disc). The plain ``6 x mean`` rule over-estimates small pixel
    discs: +11 % at 6 px, +5 % at 8 px."""
    means, diameters = _disc_table()
    mean = np.asarray(mean, float)
    # the continuous rule, shifted to meet the table at its largest disc
    far = diameters[-1] + 6.0 * (mean - means[-1])
    return np.where(mean > means[-1], far, np.interp(mean, means, diameters))
