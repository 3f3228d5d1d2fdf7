"""What the network learns: target channels made from instance labels (decoding them back into
labels is :mod:`.decoding`).

Two target modes (:data:`TARGET_CHANNELS`):

* ``"binary"``: one channel, the foreground; touching nuclei decode as one object.
* ``"instance"``: foreground, boundary (the object's own border pixels, so the line between two
  touching nuclei is two pixels wide, one from each) and distance (per-object Euclidean
  distance to the nearest pixel outside the object, scaled to a maximum of 1 in each object).
  Decoding finds one seed per nucleus in the object cores (far from any border, off the
  boundary channel) and grows the seeds over the foreground by a seeded watershed on the
  distance map, so touching nuclei stay apart. A seed is a peak of the (lightly smoothed)
  core score that rises at least ``split_height`` above the saddle towards any higher peak
  (an h-maximum): two touching nuclei whose cores run into each other still get a seed each,
  while the small ripples of one nucleus's core do not split it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import SegQCError

TARGET_CHANNELS: dict[str, tuple[str, ...]] = {
    "binary": ("foreground",),
    "instance": ("foreground", "boundary", "distance"),
}


def check_target_mode(mode: str) -> tuple[str, ...]:
    if mode not in TARGET_CHANNELS:
        raise SegQCError(f"unknown target mode {mode!r}; use one of {list(TARGET_CHANNELS)}")
    return TARGET_CHANNELS[mode]


def inner_boundaries(labels: np.ndarray) -> np.ndarray:
    """Object pixels with a 4-neighbour of another label (background or another object).

    The image border is not a boundary: an object cut by the border is not split there.
    """
    out = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        diff = labels[tuple(lo)] != labels[tuple(hi)]
        out[tuple(lo)] |= diff
        out[tuple(hi)] |= diff
    return out & (labels > 0)


def object_distance(labels: np.ndarray) -> np.ndarray:
    """Per-object Euclidean distance to the nearest pixel outside the object, max 1 per object.

    Pixels beyond the image border count as outside.
    """
    out = np.zeros(labels.shape, np.float32)
    H, W = labels.shape
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        # the object's box grown by one pixel, so that every outline pixel sees "outside"
        y0, y1, x0, x1 = sl[0].start - 1, sl[0].stop + 1, sl[1].start - 1, sl[1].stop + 1
        cy, cx = max(y0, 0), max(x0, 0)
        sub = labels[cy : min(y1, H), cx : min(x1, W)] == i
        inner = (slice(cy - y0, cy - y0 + sub.shape[0]), slice(cx - x0, cx - x0 + sub.shape[1]))
        obj = np.zeros((y1 - y0, x1 - x0), bool)
        obj[inner] = sub
        d = ndi.distance_transform_edt(obj)[inner]
        out[cy : min(y1, H), cx : min(x1, W)][sub] = d[sub] * (1 / d.max())
    return out


def make_targets(labels: np.ndarray, mode: str = "instance") -> np.ndarray:
    """Target channels ``(K, H, W)`` float32 in [0, 1] for a 2-D instance label image.

    ``K`` and the channel order follow ``TARGET_CHANNELS[mode]``.
    """
    names = check_target_mode(mode)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise SegQCError(f"labels must be a 2-D image, got shape {labels.shape}")
    if labels.dtype.kind not in "biu":
        raise SegQCError(f"labels must be integers, got {labels.dtype}")
    labels = labels.astype(np.int64 if labels.dtype == np.uint64 else np.intp, copy=False)
    out = np.empty((len(names), *labels.shape), np.float32)
    out[0] = labels > 0
    if mode == "instance":
        out[1] = inner_boundaries(labels)
        out[2] = object_distance(labels)
    return out
