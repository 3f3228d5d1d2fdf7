"""Pixel scores (foreground = label > 0) and the QC maps: error map and per-object IoU map.

Zero denominators follow the rule of :mod:`napari_segqc.core.qc.matching`: a ratio whose
denominator is 0 is 1.0 when both inputs are empty and 0.0 otherwise (e.g. recall with no
ground-truth foreground is 1.0 if the prediction is empty too, else 0.0; specificity with no
ground-truth background is 1.0).

Error map classes (``ERROR_CLASSES``), one value per pixel:

- 0 background: foreground in neither image;
- 1 true positive: foreground in both (whatever the objects, and matched or not);
- 2 false positive: predicted-only pixel of a *matched* predicted object (boundary too wide);
- 3 false negative: ground-truth-only pixel of a *matched* ground-truth object (too narrow);
- 4 false-positive object: predicted-only pixel of an unmatched predicted object;
- 5 missed object: ground-truth-only pixel of an unmatched ground-truth object;
- 6 merge: pixel of a predicted object that merges two or more ground-truth objects;
- 7 split: pixel of a ground-truth object split into two or more predicted objects (drawn
  over a merge where both meet).

Merges and splits are defined in :mod:`napari_segqc.core.qc.matching`; their classes cover the
whole object, so the objects to fix first stand out.

Objects are matched as in :func:`~napari_segqc.core.qc.matching.match_pairs` at IoU >= threshold.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import SegQCError
from .matching import ObjectMatch, check_label_pair, match_pairs, ratio

ERROR_CLASSES: dict[int, str] = {
    0: "background",
    1: "true positive",
    2: "false positive",
    3: "false negative",
    4: "false-positive object",
    5: "missed object",
    6: "merge",
    7: "split",
}

# RGBA, readable on napari's dark canvas; background transparent
ERROR_COLORS: dict[int, str] = {
    0: "#00000000",
    1: "#66c26eff",  # soft green
    2: "#ff7f2aff",  # orange
    3: "#2fb8ffff",  # cyan-blue
    4: "#ff3df2ff",  # magenta
    5: "#ffe033ff",  # yellow
    6: "#b266ffff",  # violet
    7: "#ffffffff",  # white
}


def _pair_shape(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise SegQCError(f"gt and pred must have the same shape, got {gt.shape} and {pred.shape}")
    return gt, pred


def pixel_counts(gt: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """Confusion counts of the foreground masks (label > 0): ``tp``, ``fp``, ``fn``, ``tn``."""
    gt, pred = _pair_shape(gt, pred)
    g, p = gt > 0, pred > 0
    tp = int(np.count_nonzero(g & p))
    n_g, n_p = int(np.count_nonzero(g)), int(np.count_nonzero(p))
    fp, fn = n_p - tp, n_g - tp
    return {"tp": tp, "fp": fp, "fn": fn, "tn": int(g.size) - tp - fp - fn}


def pixel_scores_from_counts(counts: Mapping[str, int]) -> dict[str, float]:
    """IoU (Jaccard), Dice, precision, recall, accuracy and balanced accuracy from counts.

    Counts of many images may be summed first to score them together.
    """
    tp, fp, fn, tn = (int(counts[k]) for k in ("tp", "fp", "fn", "tn"))
    empty = tp + fp + fn == 0  # no foreground in either image
    recall = ratio(tp, tp + fn, empty)
    specificity = ratio(tn, tn + fp, True)  # tn + fp == 0 implies fp == 0
    return {
        "iou": ratio(tp, tp + fp + fn, empty),
        "dice": ratio(2 * tp, 2 * tp + fp + fn, empty),
        "precision": ratio(tp, tp + fp, empty),
        "recall": recall,
        "accuracy": ratio(tp + tn, tp + fp + fn + tn, True),
        "balanced_accuracy": (recall + specificity) / 2,
    }


def pixel_scores(gt: np.ndarray, pred: np.ndarray) -> dict[str, float | int]:
    """Pixel counts and scores of two label (or mask) images, foreground = label > 0."""
    counts = pixel_counts(gt, pred)
    return {**pixel_scores_from_counts(counts), **counts}


def _is_in(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Boolean mask of the pixels whose label is in ``ids`` (ids > 0)."""
    if len(ids) == 0:
        return np.zeros(labels.shape, bool)
    return np.isin(labels, ids)


def _checked_match(gt: np.ndarray, pred: np.ndarray, threshold: float, match: ObjectMatch | None):
    gt, pred = check_label_pair(gt, pred)
    if match is None:
        match = match_pairs(gt, pred, threshold)
    return gt, pred, match


def error_map(
    gt_labels: np.ndarray,
    pred_labels: np.ndarray,
    *,
    threshold: float = 0.5,
    match: ObjectMatch | None = None,
) -> np.ndarray:
    """Per-pixel error classes (uint8, see ``ERROR_CLASSES`` and the module docstring).

    Parameters
    ----------
    gt_labels, pred_labels : ndarray
        Instance label images of the same shape.
    threshold : float
        IoU threshold of the object matching; ignored when ``match`` is given.
    match : ObjectMatch, optional
        A precomputed :func:`match_pairs` result of these two images, to match only once.
    """
    gt, pred, match = _checked_match(gt_labels, pred_labels, threshold, match)
    g, p = gt > 0, pred > 0
    out = np.zeros(gt.shape, np.uint8)
    out[g & p] = 1
    pred_only = p & ~g
    out[pred_only] = 2
    out[pred_only & _is_in(pred, match.unmatched_pred)] = 4
    gt_only = g & ~p
    out[gt_only] = 3
    out[gt_only & _is_in(gt, match.unmatched_gt)] = 5
    out[_is_in(pred, match.merged_pred)] = 6
    out[_is_in(gt, match.split_gt)] = 7
    return out


def object_iou_map(
    gt_labels: np.ndarray,
    pred_labels: np.ndarray,
    *,
    threshold: float = 0.5,
    match: ObjectMatch | None = None,
) -> np.ndarray:
    """Each ground-truth object painted with its matched IoU (0.0 if missed); background NaN.

    ``threshold`` and ``match`` as in :func:`error_map`. Returns float32.
    """
    gt, _, match = _checked_match(gt_labels, pred_labels, threshold, match)
    out = np.full(gt.shape, np.nan, np.float32)
    fg = gt > 0
    out[fg] = 0.0
    if len(match.gt_ids):
        values = gt[fg]
        order = np.argsort(match.gt_ids)
        ids, ious = match.gt_ids[order], match.ious[order]
        pos = np.minimum(np.searchsorted(ids, values), len(ids) - 1)
        out[fg] = np.where(ids[pos] == values, ious[pos], 0.0)
    return out
