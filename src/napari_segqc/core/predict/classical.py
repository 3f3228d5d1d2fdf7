"""A classical nuclei segmentation (no training): Gaussian smoothing, Otsu threshold, split by
a seeded watershed on the distance transform.

It is the reference a learned model must beat, and a prediction to check with the
quality-control tools before any model has been trained.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import SegQCError


def classical_segmentation(
    image: np.ndarray, *, sigma: float = 1.0, min_size: int = 15, min_distance: int = 4
) -> np.ndarray:
    """Segment bright blobs of a 2-D grey image into instance labels (uint16).

    Parameters
    ----------
    image : ndarray
        2-D grey image (fluorescence: bright nuclei on a dark background).
    sigma : float
        Gaussian smoothing before thresholding, in pixels.
    min_size : int
        Objects (and holes) smaller than this many pixels are removed (filled).
    min_distance : int
        Minimum distance between two nucleus centres (watershed seeds), in pixels.
    """
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.segmentation import watershed

    image = np.asarray(image)
    if image.ndim != 2:
        raise SegQCError(f"classical segmentation needs a 2-D grey image, got shape {image.shape}")
    if not np.isfinite(image).all():
        raise SegQCError("the image contains NaN or infinite values")
    smooth = gaussian(image.astype(np.float32), sigma=sigma, preserve_range=True)
    if smooth.min() == smooth.max():
        return np.zeros(image.shape, np.uint16)
    mask = smooth > threshold_otsu(smooth)
    mask = _drop_small(mask, min_size)
    mask = ~_drop_small(~mask, min_size)  # fill small holes
    distance = ndi.distance_transform_edt(mask)
    components, _ = ndi.label(mask)
    peaks = peak_local_max(
        distance, min_distance=min_distance, labels=components, exclude_border=False
    )
    markers = np.zeros(image.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-distance, markers, mask=mask)
    return labels.astype(np.uint16)


def _drop_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    """``mask`` without its connected components smaller than ``min_size`` pixels."""
    components, _ = ndi.label(mask)
    sizes = np.bincount(components.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[components]
