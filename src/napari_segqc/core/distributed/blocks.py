"""Big images in blocks: the plan, and stitching the blocks' labels into one label image.

* :func:`plan_blocks`: the image is cut into square **cores** of ``block`` pixels (the last row
  and column shorter); each block is segmented over its **window**, the core widened by
  ``halo`` pixels on every side (clipped to the image), so objects near the core's border are
  seen whole and with the network's context. Every output pixel comes from the block whose core
  holds it.
* :func:`match_labels`: two neighbouring blocks (8-neighbourhood) both segment the region where
  their windows overlap, which holds the border between their cores. An object there that both
  see (intersection over union above :data:`MATCH_IOU` within that region) is one object: its
  two local ids are paired.
* :func:`stitch`: local ids are made global (each block's ids offset by the counts of the
  blocks before it), the pairs merged with union-find (connected components, so chains across
  corners of four blocks collapse too), and the ids present in the output renumbered 1..n: ids
  are globally unique and consecutive, and an object that crosses a core border is one id.
  Returns one lookup table per block, applied when its core is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import SegQCError

#: Objects seen by two blocks are one object above this IoU (within the shared region).
MATCH_IOU = 0.5
#: Halo (pixels at the image's scale) at least this wide: network context plus a margin.
MIN_HALO = 128
#: The network's own context at its scale (pixels): predictions closer than this to a
#: window's edge differ from those inside a bigger image.
NETWORK_CONTEXT = 64
#: Block sides are multiples of this (tiles start on the network's 32-pixel grid, and label
#: chunks divide the block).
BLOCK_ALIGN = 64
#: Smallest block side accepted.
MIN_BLOCK = 256


@dataclass(frozen=True)
class Block:
    """One block: its place in the grid, its ``core`` and ``window`` as (y0, y1, x0, x1)."""

    index: int
    row: int
    col: int
    core: tuple[int, int, int, int]
    window: tuple[int, int, int, int]

    def core_in_window(self) -> tuple[slice, slice]:
        """The core as slices of the window's array."""
        y0, y1, x0, x1 = self.core
        wy, _, wx, _ = self.window
        return slice(y0 - wy, y1 - wy), slice(x0 - wx, x1 - wx)

    def in_window(self, region: tuple[int, int, int, int]) -> tuple[slice, slice]:
        """``region`` (image coordinates, inside the window) as slices of the window's array."""
        y0, y1, x0, x1 = region
        wy, _, wx, _ = self.window
        return slice(y0 - wy, y1 - wy), slice(x0 - wx, x1 - wx)


def check_block(block: int) -> int:
    """A valid block side, or a one-line error."""
    if block < MIN_BLOCK or block % BLOCK_ALIGN:
        raise SegQCError(
            f"block side must be a multiple of {BLOCK_ALIGN} of at least {MIN_BLOCK} pixels, "
            f"got {block}"
        )
    return int(block)


def halo_for(diameter: float | None, factor: float = 1.0, model_diameter: float = 0.0) -> int:
    """Halo in image pixels: two object diameters plus the network's context (at the scale
    the network runs: ``factor``), at least :data:`MIN_HALO`, on the 32-pixel grid. Unknown
    objects count as the model's largest (``model_diameter`` at the network's scale)."""
    size = diameter if diameter else model_diameter / max(factor, 1e-6)
    halo = max(MIN_HALO, 2 * size + NETWORK_CONTEXT / max(factor, 1e-6))
    return int(math.ceil(halo / 32) * 32)


def plan_blocks(shape: tuple[int, int], block: int, halo: int) -> list[Block]:
    """Blocks covering an image of ``shape`` (H, W): cores of ``block`` pixels, windows
    widened by ``halo``; row by row."""
    h, w = (int(n) for n in shape)
    blocks = []
    for row, y0 in enumerate(range(0, h, block)):
        for col, x0 in enumerate(range(0, w, block)):
            y1, x1 = min(y0 + block, h), min(x0 + block, w)
            window = (max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo))
            blocks.append(Block(len(blocks), row, col, (y0, y1, x0, x1), window))
    return blocks


def shared_region(a: Block, b: Block) -> tuple[int, int, int, int] | None:
    """Where the windows of ``a`` and ``b`` overlap (None if they do not)."""
    y0, y1 = max(a.window[0], b.window[0]), min(a.window[1], b.window[1])
    x0, x1 = max(a.window[2], b.window[2]), min(a.window[3], b.window[3])
    return (y0, y1, x0, x1) if y0 < y1 and x0 < x1 else None


def neighbour_pairs(blocks: list[Block]) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of blocks that touch (sides and corners)."""
    at = {(b.row, b.col): b.index for b in blocks}
    pairs = []
    for b in blocks:
        for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
            j = at.get((b.row + dr, b.col + dc))
            if j is not None:
                pairs.append((b.index, j))
    return pairs


def bands_of(block: Block, neighbours: list[Block], labels: np.ndarray) -> dict[int, np.ndarray]:
    """The block's ``labels`` (its window's) over each region it shares with a neighbour, by
    the neighbour's index (copies: the window's labels can be freed)."""
    kind = np.min_scalar_type(max(int(labels.max()), 1)) if labels.size else np.uint8
    bands = {}
    for other in neighbours:
        region = shared_region(block, other)
        if region is not None:
            bands[other.index] = labels[block.in_window(region)].astype(kind)
    return bands


def neighbours_of(block: Block, blocks: list[Block]) -> list[Block]:
    """The blocks that touch ``block`` (sides and corners)."""
    return [
        b
        for b in blocks
        if b.index != block.index and abs(b.row - block.row) <= 1 and abs(b.col - block.col) <= 1
    ]


def match_labels(a: np.ndarray, b: np.ndarray, min_iou: float = MATCH_IOU) -> np.ndarray:
    """Pairs ``(id_a, id_b)`` (int64, shape (k, 2)) of objects of two label images of one
    region whose IoU within it is above ``min_iou`` (above 0.5: each object pairs once)."""
    if a.shape != b.shape:
        raise ValueError(f"label regions differ in shape: {a.shape} and {b.shape}")
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.zeros((0, 2), np.int64)
    key = (a[both].astype(np.int64) << 32) | b[both].astype(np.int64)
    pairs, inter = np.unique(key, return_counts=True)
    ia, ib = pairs >> 32, pairs & 0xFFFFFFFF
    size_a = _sizes(a, ia)
    size_b = _sizes(b, ib)
    iou = inter / (size_a + size_b - inter)
    keep = iou > min_iou
    return np.stack([ia[keep], ib[keep]], axis=1)


def _sizes(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Pixel counts of ``ids`` in ``labels``."""
    present, counts = np.unique(labels[labels > 0], return_counts=True)
    return counts[np.searchsorted(present, ids)]


def stitch(
    counts: list[int],
    core_ids: list[np.ndarray],
    matches: list[tuple[int, int, np.ndarray]],
) -> tuple[list[np.ndarray], int]:
    """Global, consecutive ids for blocks segmented on their own.

    ``counts[b]``: block ``b``'s largest local id; ``core_ids[b]``: the local ids present in
    its core (what the output shows); ``matches``: ``(i, j, pairs)`` with pairs of local ids
    of blocks ``i`` and ``j`` that are one object. Returns a lookup table per block (local id
    -> final id, 0 -> 0; uint32) and the number of objects.
    """
    offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)[:-1]]).astype(np.int64)
    present = [np.asarray(ids, np.int64) + off for ids, off in zip(core_ids, offsets, strict=True)]
    everything = np.concatenate(present) if present else np.zeros(0, np.int64)
    edges = [
        np.stack([pairs[:, 0] + offsets[i], pairs[:, 1] + offsets[j]], axis=1)
        for i, j, pairs in matches
        if len(pairs)
    ]
    canonical = everything.copy()
    if edges:
        canonical = _merge(everything, np.concatenate(edges))
    unique, final = np.unique(canonical, return_inverse=True)
    final = final.reshape(-1).astype(np.int64) + 1
    if len(unique) > np.iinfo(np.uint32).max:
        raise SegQCError("more objects than uint32 ids can number")
    luts, start = [], 0
    for b, ids in enumerate(core_ids):
        lut = np.zeros(int(counts[b]) + 1, np.uint32)
        lut[np.asarray(ids, np.int64)] = final[start : start + len(ids)]
        start += len(ids)
        luts.append(lut)
    return luts, len(unique)


def _merge(nodes: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each of ``nodes`` replaced by the smallest id of its connected component under
    ``edges`` (union-find over the ids that take part in a merge)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    involved, inverse = np.unique(edges.reshape(-1), return_inverse=True)
    inverse = inverse.reshape(-1, 2)
    n = len(involved)
    graph = coo_matrix((np.ones(len(inverse), np.int8), (inverse[:, 0], inverse[:, 1])), (n, n))
    _, component = connected_components(graph, directed=False)
    smallest = np.full(component.max() + 1, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(smallest, component, involved)
    out = nodes.copy()
    where = np.searchsorted(involved, nodes)
    where = np.clip(where, 0, n - 1)
    hit = involved[where] == nodes
    out[hit] = smallest[component[where[hit]]]
    return out
