"""The inputs of quality control: checks, grey conversion, and each side as labels or as grey
values (see :mod:`.run`); and a warning sign for an image read as labels by mistake."""

from __future__ import annotations

import numpy as np

from ..errors import SegQCError
from .similarity import percentile_normalize

#: A label image is made of uniform regions: most foreground pixels share their right-hand
#: neighbour's value (>= 0.88 in the DSB 2018 masks), where raw images' noise makes them differ
#: (0.31-0.47 in the sample images). Below this share, with most pixels non-zero and many
#: values, "labels" look like a grey-value image.
LABELS_MIN_UNIFORM = 0.75
LABELS_IMAGE_MIN_VALUES = 20


def to_grayscale(data: np.ndarray) -> np.ndarray:
    """An RGB(A) image ``(..., Y, X, 3|4)`` as grey values (luminance, alpha dropped)."""
    if data.ndim < 3 or data.shape[-1] not in (3, 4):
        raise SegQCError(
            f"an RGB image needs a last axis of 3 or 4 channels, got shape {data.shape}"
        )
    rgb = np.asarray(data[..., :3], dtype=np.float32)
    return rgb @ np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)


def check_pair(gt, pred, gt_name: str = "ground truth", pred_name: str = "prediction") -> None:
    """Raise a :class:`SegQCError` naming both inputs if they cannot be compared.

    Only shapes and data types are checked, so lazy arrays (dask, zarr) are not read; values
    (NaN, infinities) are checked slice by slice as they are read.
    """
    if tuple(gt.shape) != tuple(pred.shape):
        raise SegQCError(
            f"{pred_name!r} has shape {tuple(pred.shape)} but {gt_name!r} has shape "
            f"{tuple(gt.shape)}: pick a prediction and a ground truth of the same size"
        )
    if len(gt.shape) < 2 or min(gt.shape[-2:]) < 1:
        raise SegQCError(f"{gt_name!r} has shape {tuple(gt.shape)}: need 2-D images or stacks")
    for data, what in ((gt, gt_name), (pred, pred_name)):
        if np.dtype(data.dtype).kind not in "biuf":
            raise SegQCError(f"{what!r} has data type {data.dtype}: need numbers")


def read_slice(data, index: tuple[int, ...], what: str) -> np.ndarray:
    """One 2-D slice as a numpy array (reads lazy arrays chunk by chunk), values checked."""
    out = np.asarray(data[index])
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        where = f" (slice {', '.join(map(str, index))})" if index else ""
        raise SegQCError(f"{what!r} contains NaN or infinite values{where}: fix or mask them first")
    return out


def as_labels(
    data: np.ndarray,
    *,
    is_labels: bool,
    foreground_threshold: float | None = None,
    name: str = "input",
) -> np.ndarray:
    """One 2-D slice as an instance label image (grey values: threshold + connected components)."""
    if is_labels:
        if data.dtype.kind == "f":
            if not np.array_equal(data, np.round(data)):
                raise SegQCError(f"{name!r} is used as labels but holds non-integer values")
            data = data.astype(np.int64)
        if data.dtype.kind == "i" and data.size and data.min() < 0:
            raise SegQCError(f"{name!r} is used as labels but holds negative values")
        return data
    from skimage.filters import threshold_otsu
    from skimage.measure import label

    t = foreground_threshold
    if t is None:
        t = float(threshold_otsu(data)) if data.min() < data.max() else np.inf
    return label(data > t).astype(np.int32)


def as_intensity(data: np.ndarray, labels: np.ndarray, *, is_labels: bool) -> np.ndarray:
    """One 2-D slice as the grey values SSIM and RSE compare (see the module docstring)."""
    if is_labels:
        return (labels > 0).astype(np.float32)
    return percentile_normalize(data)


def looks_like_image(data, max_side: int = 1024) -> bool:
    """True if ``data`` (read as labels) looks like a grey-value image instead: most pixels
    non-zero, many distinct values, and few uniform regions (see :data:`LABELS_MIN_UNIFORM`).

    Only a central crop of at most ``max_side`` pixels of the first 2-D slice is read.
    """
    shape = tuple(data.shape)
    if len(shape) < 2:
        return False
    lead = (0,) * (len(shape) - 2)
    crops = tuple(
        slice(max(0, (n - max_side) // 2), (n - max_side) // 2 + max_side) for n in shape[-2:]
    )
    plane = np.asarray(data[(*lead, *crops)])
    if plane.dtype.kind not in "biuf" or plane.size < 2 or plane.shape[-1] < 2:
        return False
    foreground = plane != 0
    if foreground.mean() <= 0.5 or len(np.unique(plane)) < LABELS_IMAGE_MIN_VALUES:
        return False
    pairs = foreground[:, 1:]
    uniform = np.count_nonzero((plane[:, 1:] == plane[:, :-1]) & pairs) / np.count_nonzero(pairs)
    return uniform < LABELS_MIN_UNIFORM
