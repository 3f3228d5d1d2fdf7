"""Object sizes: the diameter of nuclei, from instance labels or from a foreground map.

The diameter of an object is its equivalent diameter, ``2 sqrt(area / pi)``. Training stores
the median diameter of its objects in the model's config (:func:`training_diameters`);
prediction estimates the diameter of an image's objects from the network's foreground map
(:func:`diameter_from_maps`) to bring the image to the model's scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

__all__ = ["diameter_from_maps", "object_diameters", "training_diameters"]

#: Objects smaller than this many pixels are ignored when estimating a diameter (specks).
MIN_OBJECT_PIXELS = 9


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


def diameter_from_maps(foreground: np.ndarray, threshold: float = 0.5) -> float | None:
    """Median object diameter from a foreground probability map, or None when there is no
    object.

    Holes are filled; each connected region's diameter is 6 x its mean distance to the
    background (exact for a disc: the mean distance in a disc of radius r is r / 3). Touching
    objects barely change it: two touching discs have about the mean distance of one (cutting
    them apart along the network's boundary map made the estimate ~15 % too low on DSB 2018
    validation images; without it the median estimate / true median is 0.98).
    """
    mask = ndi.binary_fill_holes(np.asarray(foreground) > threshold)
    labels, n = ndi.label(mask)
    if n == 0:
        return None
    dist = ndi.distance_transform_edt(mask)
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    total = np.bincount(labels.ravel(), weights=dist.ravel(), minlength=n + 1)[1:]
    keep = area >= MIN_OBJECT_PIXELS
    if not keep.any():
        return None
    # EDT counts the distance to the nearest background pixel centre: + 0.5 to the edge
    return float(np.median(6.0 * (total[keep] / area[keep] - 0.5) + 1.0))
