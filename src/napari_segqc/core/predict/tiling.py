"""Tiles for prediction: where they start, how long they are, how overlaps are blended.

Tiles start on multiples of :data:`TILE_ALIGN`, so every tile sees the image on the same pixel
grid; the overlaps are blended with a raised-cosine window, so there are no seams.
"""

from __future__ import annotations

import numpy as np

#: Tile starts are multiples of this (the deepest encoder stage's stride): every tile then sees
#: the image on the same pixel grid, so the network's outputs agree where tiles overlap.
TILE_ALIGN = 32


def fit_tile(size: int, tile: int, overlap: int) -> int:
    """The tile length actually used along an axis of ``size`` pixels: at most ``tile``, a
    multiple of 32, and as small as the same number of tiles allows (less wasted overlap)."""
    if size <= tile:
        return min(tile, _ceil32(size))
    n = len(tile_starts(size, tile, overlap))
    for length in range(_ceil32(overlap + TILE_ALIGN), tile, 32):
        if len(tile_starts(size, length, overlap)) <= n:
            return length
    return tile


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``size``: multiples of
    :data:`TILE_ALIGN`, neighbours overlapping by at least ``overlap``; the last tile may run
    past the end (the image is mirrored into it)."""
    if size <= tile:
        return [0]
    step = max(TILE_ALIGN, (tile - overlap) // TILE_ALIGN * TILE_ALIGN)
    n = -(-(size - tile) // step) + 1
    return [i * step for i in range(n)]


def _ramp(n: int, overlap: int) -> np.ndarray:
    ramp = np.ones(n, np.float32)
    overlap = min(overlap, n // 2)  # a tile shorter than two overlaps (small images)
    if overlap > 0:
        t = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        edge = 0.5 - 0.5 * np.cos(np.pi * t)  # raised cosine, never exactly 0
        ramp[:overlap] = np.minimum(ramp[:overlap], edge)
        ramp[-overlap:] = np.minimum(ramp[-overlap:], edge[::-1])
    return ramp


def blend_window(height: int, width: int, overlap: int | tuple[int, int]) -> np.ndarray:
    """Tile weights: 1 inside, a raised-cosine ramp over ``overlap`` pixels at the borders
    (one value, or one per axis: 0 along an axis that one tile covers)."""
    oy, ox = (overlap, overlap) if isinstance(overlap, int) else overlap
    return np.outer(_ramp(height, oy), _ramp(width, ox))


def _ceil32(n: int) -> int:
    return -(-n // 32) * 32


def reflect_fill(tile: np.ndarray, th: int, tw: int) -> np.ndarray:
    """A ``(C, h, w)`` tile cut short by the image's end, padded to ``(C, th, tw)`` with its
    mirror image (edge values when a side is one pixel)."""
    _, h, w = tile.shape
    mode = "reflect" if h > 1 and w > 1 else "edge"
    return np.pad(tile, ((0, 0), (0, th - h), (0, tw - w)), mode=mode)
