"""One-to-one matching of predicted to ground-truth objects by IoU, and the object scores.

A predicted and a ground-truth object are matched when their intersection over union (IoU) is
at least the threshold τ; each object is matched at most once. Among all such matchings the one
with the most pairs is taken, ties broken by the largest total IoU (as StarDist's ``matching``).
For τ >= 0.5 an object has at most one partner with IoU > 0.5, so the matching is the set of
candidate pairs (only IoU exactly 0.5 can tie, handled by the assignment like any τ < 0.5).

Overlaps are counted sparsely (run-length encoding of the flattened label pair, then
``np.unique``), so label images with many thousands of objects and arbitrary label ids are fast
and never need a dense n_gt x n_pred matrix. Works on n-D label images; the caller slices stacks.

Merges and splits (independent of τ): a *merge* is a predicted object that overlaps two or more
ground-truth objects, each by more than :data:`MERGE_SPLIT_FRACTION` of that ground-truth
object's area (one prediction for several nuclei); a *split* is a ground-truth object that two
or more predicted objects overlap, each with more than that fraction of its own area (one
nucleus cut into several predictions). A slight overlap with a neighbour is neither.

Zero denominators: a ratio whose denominator is 0 is 1.0 when both inputs are empty
(tp = fp = fn = 0: nothing to find, nothing found) and 0.0 otherwise. E.g. precision with no
predicted objects is 1.0 if the ground truth is empty too, else 0.0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components

from ..errors import SegQCError

THRESHOLD_SWEEP: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
#: An overlap counts towards a merge or a split when it holds more than this share of the
#: object on the other side (see the module docstring).
MERGE_SPLIT_FRACTION = 0.1


def threshold_key(threshold: float) -> str:
    """Report key of a threshold, two decimals: ``0.5 -> "0.50"``."""
    return f"{threshold:.2f}"


@dataclass(frozen=True)
class ObjectMatch:
    """Result of :func:`match_pairs`; ids are the original label values."""

    gt_ids: np.ndarray  # matched ground-truth ids
    pred_ids: np.ndarray  # matched predicted ids, pairwise with gt_ids
    ious: np.ndarray  # IoU of each matched pair
    unmatched_gt: np.ndarray  # missed ground-truth objects (false negatives)
    unmatched_pred: np.ndarray  # false-positive predicted objects
    n_gt: int
    n_pred: int
    threshold: float
    merged_pred: np.ndarray  # predicted ids that merge two or more ground-truth objects
    split_gt: np.ndarray  # ground-truth ids split into two or more predicted objects

    @property
    def tp(self) -> int:
        return len(self.gt_ids)


@dataclass(frozen=True)
class _Overlaps:
    """Object ids and areas of both images and every overlapping pair (indices into ids)."""

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    pair_gt: np.ndarray
    pair_pred: np.ndarray
    pair_iou: np.ndarray
    pair_inter: np.ndarray  # pixels shared by each pair
    gt_area: np.ndarray
    pred_area: np.ndarray


def as_label_array(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """Check a label image: integers >= 0 (bool is one object); integral floats are accepted."""
    arr = np.asarray(labels)
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise SegQCError(f"{name} must hold integer labels, got non-integer {arr.dtype} values")
        if arr.size and arr.min() < 0:
            raise SegQCError(f"{name} must not hold negative labels (min {arr.min():g})")
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise SegQCError(f"{name} must be an integer label image, got dtype {arr.dtype}")
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise SegQCError(f"{name} must not hold negative labels (min {arr.min()})")
    return arr


def check_label_pair(gt_labels: np.ndarray, pred_labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Validate both label images and that their shapes agree."""
    gt = as_label_array(gt_labels, "gt_labels")
    pred = as_label_array(pred_labels, "pred_labels")
    if gt.shape != pred.shape:
        raise SegQCError(
            f"gt_labels and pred_labels must have the same shape, got {gt.shape} and {pred.shape}"
        )
    return gt, pred


def _overlaps(gt: np.ndarray, pred: np.ndarray) -> _Overlaps:
    """Count areas and pairwise intersections on runs of equal (gt, pred) pixels."""
    g, p = gt.ravel(), pred.ravel()
    if g.size == 0:
        empty = np.zeros(0, np.int64)
        return _Overlaps(empty, empty, empty, empty, np.zeros(0), empty, empty, empty)
    change = g[1:] != g[:-1]
    change |= p[1:] != p[:-1]
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    lengths = np.diff(np.append(starts, g.size))
    run_g, run_p = g[starts], p[starts]

    gt_ids, inv_g = np.unique(run_g, return_inverse=True)
    pred_ids, inv_p = np.unique(run_p, return_inverse=True)
    gt_area = np.bincount(inv_g, weights=lengths).astype(np.int64)
    pred_area = np.bincount(inv_p, weights=lengths).astype(np.int64)
    # drop background (label 0 sorts first); indices become 0-based object indices
    g0, p0 = int(gt_ids[0] == 0), int(pred_ids[0] == 0)
    gt_ids, gt_area, inv_g = gt_ids[g0:], gt_area[g0:], inv_g - g0
    pred_ids, pred_area, inv_p = pred_ids[p0:], pred_area[p0:], inv_p - p0

    both = (inv_g >= 0) & (inv_p >= 0)
    codes = inv_g[both].astype(np.int64) * len(pred_ids) + inv_p[both]
    pair_codes, inv_pair = np.unique(codes, return_inverse=True)
    inter = np.bincount(inv_pair, weights=lengths[both]).astype(np.int64)
    pair_gt, pair_pred = np.divmod(pair_codes, len(pred_ids) or 1)
    iou = inter / (gt_area[pair_gt] + pred_area[pair_pred] - inter)
    return _Overlaps(
        _id_array(gt_ids), _id_array(pred_ids), pair_gt, pair_pred, iou, inter, gt_area, pred_area
    )


def _merges_splits(ov: _Overlaps, fraction: float = MERGE_SPLIT_FRACTION):
    """Indices of the merging predicted objects and of the split ground-truth objects."""
    into_gt = ov.pair_inter > fraction * ov.gt_area[ov.pair_gt]  # a good part of the gt object
    into_pred = ov.pair_inter > fraction * ov.pred_area[ov.pair_pred]
    merged = np.flatnonzero(np.bincount(ov.pair_pred[into_gt], minlength=len(ov.pred_ids)) >= 2)
    split = np.flatnonzero(np.bincount(ov.pair_gt[into_pred], minlength=len(ov.gt_ids)) >= 2)
    return merged, split


def _id_array(ids: np.ndarray) -> np.ndarray:
    """Ids as int64 (uint64 kept, its large values do not fit)."""
    return ids if ids.dtype == np.uint64 else ids.astype(np.int64)


def _assign(pair_gt: np.ndarray, pair_pred: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """Indices of the chosen candidate pairs: most pairs first, then largest total IoU."""
    if len(iou) == 0:
        return np.zeros(0, np.int64)
    deg_g = np.bincount(pair_gt)[pair_gt]
    deg_p = np.bincount(pair_pred)[pair_pred]
    lone = (deg_g == 1) & (deg_p == 1)  # an isolated edge is always matched
    chosen = [np.flatnonzero(lone)]
    rest = np.flatnonzero(~lone)
    if len(rest):
        # connected components of the remaining bipartite graph, each solved on its own
        _, g_idx = np.unique(pair_gt[rest], return_inverse=True)
        _, p_idx = np.unique(pair_pred[rest], return_inverse=True)
        n_g = g_idx.max() + 1
        n = n_g + p_idx.max() + 1
        graph = sparse.coo_matrix((np.ones(len(rest)), (g_idx, n_g + p_idx)), shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        edge_comp = comp[g_idx]
        order = np.argsort(edge_comp, kind="stable")
        bounds = np.flatnonzero(np.diff(edge_comp[order])) + 1
        for edges in np.split(rest[order], bounds):
            chosen.append(edges[_assign_component(pair_gt[edges], pair_pred[edges], iou[edges])])
    return np.sort(np.concatenate(chosen))


def _assign_component(pg: np.ndarray, pp: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """Maximum-cardinality, then maximum-IoU matching of one small component (dense LSA)."""
    rows, r = np.unique(pg, return_inverse=True)
    cols, c = np.unique(pp, return_inverse=True)
    n_max = min(len(rows), len(cols))
    # each candidate is worth 1 plus a tie-break bounded by 0.5 in total, so cardinality wins
    cost = np.zeros((len(rows), len(cols)))
    cost[r, c] = -1.0 - iou / (2 * n_max)
    edge = np.full((len(rows), len(cols)), -1)
    edge[r, c] = np.arange(len(iou))
    ri, ci = linear_sum_assignment(cost)
    picked = edge[ri, ci]
    return picked[picked >= 0]


def _match(ov: _Overlaps, threshold: float) -> np.ndarray:
    """Indices into the overlap pairs of the matched pairs at ``threshold``."""
    cand = np.flatnonzero(ov.pair_iou >= threshold)
    if threshold > 0.5:  # IoU > 0.5 is unique per object: no conflicts possible
        return cand
    return cand[_assign(ov.pair_gt[cand], ov.pair_pred[cand], ov.pair_iou[cand])]


def match_pairs(
    gt_labels: np.ndarray, pred_labels: np.ndarray, threshold: float = 0.5
) -> ObjectMatch:
    """Match predicted to ground-truth objects one to one at IoU >= ``threshold``.

    Parameters
    ----------
    gt_labels, pred_labels : ndarray
        Instance label images of the same shape (0 is background; any non-negative integer ids,
        bool is one object).
    threshold : float
        Minimum IoU of a matched pair; objects that do not overlap are never matched, even at 0.

    Returns
    -------
    ObjectMatch
        Matched id pairs with their IoU, and the unmatched ids of both sides.
    """
    gt, pred = check_label_pair(gt_labels, pred_labels)
    return _object_match(_overlaps(gt, pred), threshold)


def _object_match(ov: _Overlaps, threshold: float) -> ObjectMatch:
    sel = _match(ov, threshold)
    mg, mp = ov.pair_gt[sel], ov.pair_pred[sel]
    merged, split = _merges_splits(ov)
    return ObjectMatch(
        gt_ids=ov.gt_ids[mg],
        pred_ids=ov.pred_ids[mp],
        ious=ov.pair_iou[sel],
        unmatched_gt=np.delete(ov.gt_ids, mg),
        unmatched_pred=np.delete(ov.pred_ids, mp),
        n_gt=len(ov.gt_ids),
        n_pred=len(ov.pred_ids),
        threshold=float(threshold),
        merged_pred=ov.pred_ids[merged],
        split_gt=ov.gt_ids[split],
    )


def ratio(num: float, den: float, both_empty: bool) -> float:
    """``num / den``, or the documented value for a zero denominator (1.0 if both empty)."""
    if den == 0:
        return 1.0 if both_empty else 0.0
    return float(num / den)


def object_scores_from_counts(tp: int, fp: int, fn: int, sum_matched_iou: float) -> dict:
    """Object scores from match counts; sum the counts of many images first to combine them."""
    tp, fp, fn = int(tp), int(fp), int(fn)
    empty = tp + fp + fn == 0
    s = float(sum_matched_iou)
    return {
        "precision": ratio(tp, tp + fp, empty),
        "recall": ratio(tp, tp + fn, empty),
        "f1": ratio(2 * tp, 2 * tp + fp + fn, empty),
        "accuracy": ratio(tp, tp + fp + fn, empty),
        "mean_matched_iou": ratio(s, tp, empty),
        "pq": ratio(s, tp + fp / 2 + fn / 2, empty),
    }


def match_objects(
    gt_labels: np.ndarray, pred_labels: np.ndarray, thresholds: Iterable[float] = (0.5,)
) -> dict[str, dict]:
    """Object scores at each IoU threshold, keyed ``threshold_key(t)``.

    Each entry holds ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1``, ``accuracy``
    (TP / (TP + FP + FN), StarDist's and the DSB 2018 "AP"), ``mean_matched_iou``, ``pq``
    (panoptic quality), ``sum_matched_iou`` (to combine images), ``n_gt`` and ``n_pred``.
    Overlaps are computed once for all thresholds.

    References
    ----------
    .. [1] Schmidt et al., "Cell Detection with Star-convex Polygons", MICCAI 2018.
    .. [2] Kirillov et al., "Panoptic Segmentation", CVPR 2019.
    """
    gt, pred = check_label_pair(gt_labels, pred_labels)
    return objects_from_overlaps(_overlaps(gt, pred), thresholds)


def objects_from_overlaps(ov: _Overlaps, thresholds: Iterable[float] = (0.5,)) -> dict[str, dict]:
    """:func:`match_objects` from an overlaps table (e.g. one merged from image blocks)."""
    n_gt, n_pred = len(ov.gt_ids), len(ov.pred_ids)
    merged, split = _merges_splits(ov)
    out = {}
    for t in thresholds:
        sel = _match(ov, t)
        tp = len(sel)
        s = float(ov.pair_iou[sel].sum())
        fp, fn = n_pred - tp, n_gt - tp
        scores = object_scores_from_counts(tp, fp, fn, s)
        out[threshold_key(t)] = {"tp": tp, "fp": fp, "fn": fn, **scores, "sum_matched_iou": s}
        out[threshold_key(t)].update(
            n_gt=n_gt, n_pred=n_pred, merges=len(merged), splits=len(split)
        )
    return out
