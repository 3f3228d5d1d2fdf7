"""Quality control of a huge label pair block by block, with the single-process report.

Every 2-D slice is cut into a grid of blocks (:func:`block_jobs`); each block gives a small
table (:class:`BlockCounts`, :func:`window_counts`): the ids and pixel areas of the ground-truth
and predicted objects in it, the pixels shared by each overlapping (gt id, pred id) pair, the
pixel tp/fp/fn/tn and the SSIM map summed over it. Areas and intersections are sums of pixels,
so the tables of all blocks added up (:func:`merge_counts`) hold exactly what the whole image
gives: an object that crosses block borders is one id whose pieces add up. The merged table
becomes the overlaps table of :mod:`.matching` (:func:`overlaps_of`), in the same order and with
the same values, so the one-to-one assignment, merges and splits, the scores over the IoU sweep,
the DSB score and panoptic quality are those of :func:`.run.run_qc` on the whole, bit for bit.
Pixel scores come from summed counts, NRMSE and PSNR of the foreground masks from the
mismatched pixels (fp + fn): identical too.

SSIM: each block's map is computed on the block plus a halo of the Gaussian window's radius
(5 px, clipped at the image border, where the map mirrors as on the whole image), so every
pixel sees the same window as on the whole image; the score is the mean of the map without its
5-px border, as on the whole. This is exact up to float32 rounding: the map is computed around
other local references than on the whole image, and the score differs from the single-process
one in its last digits (|difference| < 1e-6; measured ~1e-9). Everything else is identical.

Only label pairs (integer, or integral float, ids; 0 = background) go block by block: grey-value
images are thresholded and normalised over the whole image (Otsu's threshold, percentiles, the
affine fit), which blocks cannot reproduce. Pure numpy; the dask side is
:mod:`napari_segqc.core.distributed.qc_tasks`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SegQCError
from .inputs import as_labels, check_pair, read_slice
from .matching import _Overlaps, _overlaps, check_label_pair, objects_from_overlaps
from .pixel import pixel_counts
from .run import pair_report, report_thresholds, slice_entry
from .similarity import _RADIUS, _WIN, ssim

#: Default block side (pixels) of block-wise QC.
DEFAULT_BLOCK = 4096
#: The smallest block side accepted.
MIN_BLOCK = 32
_PIXEL = ("tp", "fp", "fn", "tn")

Window = tuple[int, int, int, int]  # y0, y1, x0, x1
Job = tuple[tuple[int, ...], Window]  # (index of the 2-D slice, window of the block)


@dataclass(frozen=True)
class BlockCounts:
    """What a block (or several blocks, merged) adds to the report of its 2-D slice.

    Ids are sorted, without background; the pairs are sorted by (gt id, pred id) and give the
    pixels each pair shares. ``pixel``: tp, fp, fn, tn of the foreground masks; ``ssim_sum``:
    the SSIM map summed over the block's pixels outside the slice's 5-px border
    (``ssim_pixels`` of them)."""

    gt_ids: np.ndarray
    gt_area: np.ndarray
    pred_ids: np.ndarray
    pred_area: np.ndarray
    pair_gt: np.ndarray
    pair_pred: np.ndarray
    pair_inter: np.ndarray
    pixel: tuple[int, int, int, int]
    ssim_sum: float
    ssim_pixels: int


def check_block(block: int) -> int:
    """A valid block side, or a one-line error."""
    if int(block) != block or block < MIN_BLOCK:
        raise SegQCError(f"block side must be an integer of at least {MIN_BLOCK}, got {block}")
    return int(block)


def needs_blocks(shape: Sequence[int], block: int) -> bool:
    """Whether a pair of this shape is larger than one block (on either side of its slices)."""
    return len(shape) >= 2 and max(shape[-2:]) > block


def block_grid(plane: tuple[int, int], block: int) -> list[Window]:
    """The blocks of a 2-D plane, row by row: ``(y0, y1, x0, x1)``, ``block`` pixels a side
    (the last ones of a row or column smaller)."""
    h, w = plane
    return [
        (y, min(y + block, h), x, min(x + block, w))
        for y in range(0, h, block)
        for x in range(0, w, block)
    ]


def block_jobs(shape: Sequence[int], block: int) -> list[Job]:
    """Every (slice index, block window) of a pair of ``shape`` ``(..., Y, X)``, in order."""
    check_block(block)
    grid = block_grid(tuple(shape[-2:]), block)
    return [(index, window) for index in np.ndindex(*shape[:-2]) for window in grid]


def _haloed(lo: int, hi: int, n: int) -> tuple[int, int]:
    """The rows (or columns) read for the block [lo, hi): a halo of the SSIM window's radius,
    clipped to the image, and at least one window wide where the image is."""
    a, b = max(0, lo - _RADIUS), min(n, hi + _RADIUS)
    return max(0, min(a, b - _WIN)), b


def window_counts(gt, pred, index: tuple[int, ...], window: Window) -> BlockCounts:
    """The :class:`BlockCounts` of one block of a label pair.

    ``gt`` and ``pred`` are array-likes ``(..., Y, X)`` (numpy, memory maps, zarr...): only the
    block and its halo are read. Values are checked as :func:`.run.iter_qc` checks them.
    """
    h, w = gt.shape[-2:]
    y0, y1, x0, x1 = window
    (a, b), (c, d) = _haloed(y0, y1, h), _haloed(x0, x1, w)
    key = (*index, slice(a, b), slice(c, d))
    labels = []
    for data, what in ((gt, "ground truth"), (pred, "prediction")):
        values = read_slice(np.asarray(data[key]), (), what)
        labels.append(as_labels(values, is_labels=True, name=what))
    core = (slice(y0 - a, y1 - a), slice(x0 - c, x1 - c))
    g, p = check_label_pair(labels[0][core], labels[1][core])
    ov = _overlaps(g, p)
    counts = pixel_counts(g, p)
    # the SSIM of the foreground masks, as run_qc compares label images
    gi, pi = ((v > 0).astype(np.float32) for v in labels)
    smap = ssim(gi, pi, data_range=1.0, normalize=False, full=True)[1]
    rows = slice(max(y0, _RADIUS) - a, min(y1, h - _RADIUS) - a)
    cols = slice(max(x0, _RADIUS) - c, min(x1, w - _RADIUS) - c)
    inner = smap[rows, cols] if rows.start < rows.stop and cols.start < cols.stop else smap[:0]
    return BlockCounts(
        gt_ids=ov.gt_ids,
        gt_area=ov.gt_area,
        pred_ids=ov.pred_ids,
        pred_area=ov.pred_area,
        pair_gt=ov.gt_ids[ov.pair_gt],
        pair_pred=ov.pred_ids[ov.pair_pred],
        pair_inter=ov.pair_inter,
        pixel=tuple(counts[k] for k in _PIXEL),
        ssim_sum=float(inner.sum(dtype=np.float64)),
        ssim_pixels=int(inner.size),
    )


def _sum_by_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys and the integer sum of the values of each."""
    unique, inverse = np.unique(keys, return_inverse=True)
    sums = np.zeros(len(unique), np.int64)
    np.add.at(sums, inverse.ravel(), values)
    return unique, sums


def merge_counts(parts: Iterable[BlockCounts]) -> BlockCounts:
    """The tables of several blocks as one: areas, intersections and pixel counts added up,
    SSIM sums added in the order given."""
    parts = list(parts)
    if not parts:
        raise ValueError("merge_counts needs at least one block")
    if len(parts) == 1:
        return parts[0]

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    gt_ids, gt_area = _sum_by_key(cat("gt_ids"), cat("gt_area"))
    pred_ids, pred_area = _sum_by_key(cat("pred_ids"), cat("pred_area"))
    n_pred = max(len(pred_ids), 1)
    codes = np.searchsorted(gt_ids, cat("pair_gt")) * n_pred + np.searchsorted(
        pred_ids, cat("pair_pred")
    )
    codes, inter = _sum_by_key(codes.astype(np.int64), cat("pair_inter"))
    pg, pp = np.divmod(codes, n_pred)
    ssim_sum = 0.0
    for p in parts:
        ssim_sum += p.ssim_sum
    return BlockCounts(
        gt_ids=gt_ids,
        gt_area=gt_area,
        pred_ids=pred_ids,
        pred_area=pred_area,
        pair_gt=gt_ids[pg],
        pair_pred=pred_ids[pp],
        pair_inter=inter,
        pixel=tuple(int(sum(p.pixel[i] for p in parts)) for i in range(4)),
        ssim_sum=ssim_sum,
        ssim_pixels=sum(p.ssim_pixels for p in parts),
    )


def overlaps_of(counts: BlockCounts) -> _Overlaps:
    """The overlaps table of :mod:`.matching` that the whole slice gives (same order, same
    values) from its merged block tables."""
    pg = np.searchsorted(counts.gt_ids, counts.pair_gt).astype(np.int64)
    pp = np.searchsorted(counts.pred_ids, counts.pair_pred).astype(np.int64)
    inter = counts.pair_inter.astype(np.int64)
    gt_area, pred_area = counts.gt_area.astype(np.int64), counts.pred_area.astype(np.int64)
    iou = inter / (gt_area[pg] + pred_area[pp] - inter)
    return _Overlaps(counts.gt_ids, counts.pred_ids, pg, pp, iou, inter, gt_area, pred_area)


def image_scores(counts: BlockCounts, pixels: int) -> dict[str, float]:
    """SSIM, NRMSE and PSNR of the foreground masks of a slice of ``pixels`` pixels, as
    :func:`.run.iter_qc` reports them for label images (data range 1)."""
    _, fp, fn, _ = counts.pixel
    mse = (fp + fn) / pixels  # the squared differences of two masks are 0 or 1
    return {
        "nrmse": float(math.sqrt(mse) / 1.0),
        "psnr": math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse),
        "ssim": counts.ssim_sum / counts.ssim_pixels if counts.ssim_pixels else math.nan,
    }


def slice_report(
    counts: BlockCounts, *, name: str, index: tuple[int, ...], plane: tuple[int, int], thresholds
) -> dict[str, Any]:
    """The report entry of one 2-D slice from its merged block tables."""
    objects = objects_from_overlaps(overlaps_of(counts), thresholds)
    pixel = dict(zip(_PIXEL, counts.pixel, strict=True))
    image = image_scores(counts, plane[0] * plane[1])
    return slice_entry(name, index, pixel, objects, image)


def report_from_counts(
    shape: Sequence[int],
    jobs: Sequence[Job],
    counts: Iterable[BlockCounts],
    *,
    name: str = "",
    threshold: float = 0.5,
) -> dict[str, Any]:
    """The report of a pair (as :func:`.run.qc_report` makes it) from the tables of its blocks,
    ``counts[i]`` being the table of ``jobs[i]``."""
    thresholds = report_thresholds(threshold)
    by_slice: dict[tuple[int, ...], list[BlockCounts]] = {}
    for (index, _), part in zip(jobs, counts, strict=True):
        by_slice.setdefault(index, []).append(part)
    plane = (int(shape[-2]), int(shape[-1]))
    entries = [
        slice_report(
            merge_counts(parts), name=name, index=index, plane=plane, thresholds=thresholds
        )
        for index, parts in by_slice.items()
    ]
    return pair_report(entries, name, threshold)


def blockwise_qc_report(
    gt,
    pred,
    *,
    name: str = "",
    threshold: float = 0.5,
    block: int = DEFAULT_BLOCK,
    run: Callable[[Sequence[Job]], Iterable[BlockCounts]] | None = None,
) -> dict[str, Any]:
    """:func:`.run.qc_report` of a label pair, block by block (see the module docstring).

    ``gt`` and ``pred``: label images ``(..., Y, X)``, numpy or array-likes read one block at
    a time (memory maps, zarr arrays). ``run``: computes the :class:`BlockCounts` of the jobs,
    in order (default: one after the other in this process, with :func:`window_counts`).
    """
    check_pair(gt, pred)
    report_thresholds(threshold)
    jobs = block_jobs(tuple(gt.shape), block)
    if run is None:
        counts: Iterable[BlockCounts] = (window_counts(gt, pred, i, w) for i, w in jobs)
    else:
        counts = run(jobs)
    return report_from_counts(gt.shape, jobs, counts, name=name, threshold=threshold)
