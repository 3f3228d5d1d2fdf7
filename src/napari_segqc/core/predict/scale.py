"""Object size: bringing an image to the scale its model learnt, and enough context per tile.

Every model knows the median diameter of the objects it was trained on and the range of
per-image medians it saw (``config.diameter``, ``config.diameter_range``). The user gives the
diameter of the image's objects in pixels, or ``"auto"``: the network runs once at the image's
own scale and the diameter is measured on its foreground map
(:func:`napari_segqc.core.instances.sizes.diameter_from_maps`). Near the model's diameter
(at most :data:`SHRINK_TOLERANCE` larger or :data:`SCALE_TOLERANCE` smaller) nothing changes
(and with ``auto`` that first pass is the result: no extra network pass). Otherwise the image
is resized so that its objects get the model's median diameter, the network runs at that scale,
and its maps are resized back to the image's size (bilinear) and decoded there: the labels
always have the input's shape, with smooth outlines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import SegQCError
from ..instances.sizes import diameter_from_maps

#: A tile spans at least this many object diameters (at the network's scale).
TILE_DIAMETERS = 6
#: Neighbouring tiles overlap by at least this many object diameters.
OVERLAP_DIAMETERS = 1.5
#: Objects up to this factor smaller than the model's median diameter are segmented as they
#: are (enlarging costs time: 1.4 would gain 4 points on DSB 2018 validation images at x0.5
#: but enlarge a third of the images at their own scale); smaller ones are enlarged.
SCALE_TOLERANCE = 1.7
#: Objects more than this factor larger than the model's median diameter are shrunk to it
#: (shrinking saves time; on the DSB 2018 validation images at x2 it gave 0.820 instead of
#: 0.685 with 1.7, and the same at their own scale: ``scripts/choose_scale_policy.py``).
SHRINK_TOLERANCE = 1.4
#: With ``auto``, the estimate is made again on the maps at the new scale, at most this many
#: times, while it moves the scale by more than :data:`REFINE_TOLERANCE` (x or /).
REFINE_PASSES = 2
REFINE_TOLERANCE = 1.25
#: The most an image is shrunk or enlarged (memory and time stay bounded).
MIN_FACTOR, MAX_FACTOR = 0.05, 4.0
#: Diameters (pixels) accepted from the user.
DIAMETER_LIMITS = (2.0, 2000.0)


@dataclass(frozen=True)
class ScaleInfo:
    """How an image was scaled: its objects' ``diameter`` (pixels; None when unknown),
    whether it was ``estimated``, the resize ``factor`` applied before the network (1: none)
    and the model's own median diameter."""

    diameter: float | None
    estimated: bool
    factor: float
    model_diameter: float

    def describe(self) -> str:
        if self.diameter is None:
            return "object size unknown: not rescaled"
        how = "estimated" if self.estimated else "given"
        text = f"diameter {self.diameter:.0f} px ({how})"
        if not self.model_diameter:
            return text + ": the model's object size is unknown, not rescaled"
        if self.factor == 1.0:
            return text + ": the model's scale, not rescaled"
        return text + f", rescaled ×{self.factor:.2f} to the model's {self.model_diameter:.0f} px"


def parse_diameter(value) -> float | str | None:
    """``"auto"``, None (no scaling) or a positive number of pixels; a clear error otherwise."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None if value is None else "auto"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SegQCError(f"diameter must be 'auto' or a number of pixels, got {value!r}") from None
    lo, hi = DIAMETER_LIMITS
    if not math.isfinite(number) or not lo <= number <= hi:
        raise SegQCError(f"diameter must be between {lo:g} and {hi:g} pixels, got {value!r}")
    return number


def scale_factor(diameter: float | None, config) -> float:
    """Resize factor that brings objects of ``diameter`` pixels to the model's median
    diameter: 1 when either size is unknown or the objects are at most
    :data:`SHRINK_TOLERANCE` larger or :data:`SCALE_TOLERANCE` smaller."""
    if not diameter or not config.diameter:
        return 1.0
    ratio = config.diameter / diameter
    if 1 / SHRINK_TOLERANCE <= ratio <= SCALE_TOLERANCE:
        return 1.0
    return clamp_factor(snap_factor(ratio))


#: Resize factors are rounded to powers of 2 ** (1 / FACTOR_STEPS) (4.4 % apart), so that
#: estimates a little apart (from different tile sizes, say) give the same resampling grid:
#: on nuclei enlarged x4, estimates of 80.1 and 80.6 px gave foreground IoU 0.978 between
#: --tile 256 and 1024 unrounded, 0.995 with the same factor.
FACTOR_STEPS = 16


def snap_factor(factor: float) -> float:
    """``factor`` rounded to the nearest power of 2 ** (1 / :data:`FACTOR_STEPS`)."""
    return float(2.0 ** (round(FACTOR_STEPS * math.log2(factor)) / FACTOR_STEPS))


def looks_small(diameter: float | None, config) -> bool:
    """Whether objects of ``diameter`` pixels would be enlarged for the model."""
    return bool(diameter and config.diameter and diameter < config.diameter / SCALE_TOLERANCE)


def clamp_factor(factor: float) -> float:
    """A resize factor within [:data:`MIN_FACTOR`, :data:`MAX_FACTOR`]."""
    return float(min(max(factor, MIN_FACTOR), MAX_FACTOR))


def context_tiles(tile: int, overlap: int, diameter: float | None, config) -> tuple[int, int]:
    """Tile and overlap raised, if needed, so that tiles give each object enough context:
    at least :data:`TILE_DIAMETERS` and :data:`OVERLAP_DIAMETERS` object diameters at the
    network's scale (``diameter``; when unknown, the largest size the model learnt)."""
    d = diameter or (config.diameter_range[1] if config.diameter else 0.0)
    if not d:
        return tile, overlap
    tile = max(tile, _ceil32(TILE_DIAMETERS * d))
    overlap = max(overlap, _ceil32(OVERLAP_DIAMETERS * d))
    return tile, min(overlap, tile // 2 - 32)


def resize_plane(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A 2-D plane ``(H, W)`` or ``(H, W, C)`` resized to ``shape`` (bilinear; antialiased
    when shrinking), as float32."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    shrink = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
    y = F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=shrink)
    y = y[0, 0] if plane.ndim == 2 else y[0].permute(1, 2, 0)
    return y.numpy()


def resize_maps(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Maps ``(K, h, w)`` resized to ``(K, *shape)`` (bilinear), as float32."""
    return np.stack([resize_plane(m, shape) for m in maps])


def scaled_shape(h: int, w: int, factor: float) -> tuple[int, int]:
    return max(1, round(h * factor)), max(1, round(w * factor))


def estimate_diameter(maps: np.ndarray) -> float | None:
    """Median object diameter (pixels) from maps ``(K, H, W)`` or a stack ``(..., K, H, W)``
    (the median of the slices' estimates); None when nothing is found."""
    maps = np.asarray(maps)
    planes = maps.reshape(-1, *maps.shape[-3:])
    found = [d for plane in planes if (d := diameter_from_maps(plane[0])) is not None]
    return float(np.median(found)) if found else None


def _ceil32(n: float) -> int:
    return int(-(-math.ceil(n) // 32) * 32)
