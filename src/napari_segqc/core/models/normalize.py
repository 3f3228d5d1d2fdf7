"""How every model sees an image: per image and channel, the 1 % percentile goes to 0 and the
99.8 % percentile to 1 (no clipping), so that images of any bit depth and brightness look alike
to the network. Training (:mod:`napari_segqc.core.train.data`) and prediction
(:mod:`napari_segqc.core.predict.inference`, from percentiles of the whole image) use it alike.
"""

from __future__ import annotations

import numpy as np

from ..errors import SegQCError
from ..qc.similarity import percentile_normalize

LOW, HIGH = 1.0, 99.8  # normalisation percentiles


#: The median's place between the low and high percentiles above which the background counts
#: as bright (fluorescence: at most ~0.2 in DSB 2018's 460 training images).
BRIGHT_BACKGROUND = 0.5


def background_place(grey: np.ndarray) -> float:
    """Where the median of a grey image (or sample) lies between its 1 % and 99.8 %
    percentiles: near 0 for dark backgrounds (fluorescence), above :data:`BRIGHT_BACKGROUND`
    for bright ones (brightfield, stained tissue); 0 for a uniform image."""
    lo, hi = np.percentile(grey, [LOW, HIGH])
    return float((np.median(grey) - lo) / (hi - lo)) if hi > lo else 0.0


def _is_rgb(image: np.ndarray, rgb: bool | None) -> bool:
    return image.ndim == 3 and image.shape[-1] in (3, 4) if rgb is None else rgb


def normalize_image(image: np.ndarray, *, rgb: bool | None = None) -> np.ndarray:
    """A 2-D grey image ``(H, W)`` or RGB(A) image ``(H, W, 3|4)`` as normalised ``(C, H, W)``.

    ``C`` is 1 for grey and 3 for RGB (alpha dropped); ``rgb=None`` guesses from the shape.
    """
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.view(np.uint8)
    if image.dtype.kind not in "iuf":
        raise SegQCError(f"image has data type {image.dtype}; need a numeric image")
    if _is_rgb(image, rgb):
        if image.ndim != 3 or image.shape[-1] not in (3, 4):
            raise SegQCError(f"an RGB image must have shape (H, W, 3|4), got {image.shape}")
        channels = np.moveaxis(image[..., :3], -1, 0)
    elif image.ndim == 2:
        channels = image[None]
    else:
        raise SegQCError(f"need a 2-D grey or (H, W, 3|4) RGB image, got shape {image.shape}")
    if image.dtype.kind == "f" and not np.isfinite(channels).all():
        raise SegQCError("image contains NaN or infinite values; fix or mask them first")
    out = np.empty(channels.shape, np.float32)
    for c, channel in enumerate(channels):
        out[c] = percentile_normalize(channel, LOW, HIGH)
    return out
