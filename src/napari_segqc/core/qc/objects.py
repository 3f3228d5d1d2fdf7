"""Object by object: every ground-truth and predicted object of one 2-D image with its area,
match, IoU and error class, for walking through the errors one at a time.

Classes: a ground-truth object is ``TP`` (matched at IoU >= τ), ``FN`` (missed) or ``split``
(cut into two or more predictions); a predicted object is ``TP``, ``FP`` or ``merge`` (over
two or more ground-truth objects). Merges and splits take precedence over TP/FP/FN (see
:mod:`.matching` for their definition).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .matching import check_label_pair, match_pairs

#: Columns of the per-object table (and its CSV).
OBJECT_COLUMNS = (
    *("side", "id", "class", "area", "matched_id", "iou"),
    *("y", "x", "min_y", "min_x", "max_y", "max_x"),
)
#: The classes that are errors, in the order "next error" walks them: merges and splits (the
#: errors fixed first), then missed and false-positive objects.
ERROR_ORDER = ("merge", "split", "FN", "FP")


def object_rows(
    gt_labels: np.ndarray, pred_labels: np.ndarray, *, threshold: float = 0.5
) -> list[dict[str, Any]]:
    """One row per ground-truth object, then one per predicted object, of a 2-D pair.

    Each row: ``side`` (``"gt"`` / ``"pred"``), ``id``, ``class``, ``area`` (pixels),
    ``matched_id`` (its partner at IoU >= ``threshold``, 0 if none), ``iou`` (with that partner,
    0.0 if none), the centroid ``y``, ``x`` and the bounding box ``min_y``, ``min_x``,
    ``max_y``, ``max_x`` (max exclusive), in pixels of the image.
    """
    gt, pred = check_label_pair(gt_labels, pred_labels)
    if gt.ndim != 2:
        raise ValueError(f"object_rows takes one 2-D image pair, got shape {gt.shape}")
    match = match_pairs(gt, pred, threshold)
    rows = []
    for side, labels, ids, partners, special, special_class, miss_class in (
        ("gt", gt, match.gt_ids, match.pred_ids, match.split_gt, "split", "FN"),
        ("pred", pred, match.pred_ids, match.gt_ids, match.merged_pred, "merge", "FP"),
    ):
        partner = dict(zip(ids.tolist(), partners.tolist(), strict=True))
        iou = dict(zip(ids.tolist(), match.ious.tolist(), strict=True))
        special = set(special.tolist())
        for obj in _regions(labels):
            oid = obj["id"]
            kind = special_class if oid in special else "TP" if oid in partner else miss_class
            rows.append(
                {
                    "side": side,
                    "id": oid,
                    "class": kind,
                    "area": obj["area"],
                    "matched_id": int(partner.get(oid, 0)),
                    "iou": float(iou.get(oid, 0.0)),
                    **{k: obj[k] for k in ("y", "x", "min_y", "min_x", "max_y", "max_x")},
                }
            )
    return rows


def _regions(labels: np.ndarray) -> list[dict[str, Any]]:
    """Id, area, centroid and bounding box of every object (any ids, sparse or not)."""
    flat = labels.ravel()
    fg = np.flatnonzero(flat)
    if fg.size == 0:
        return []
    ids, inverse = np.unique(flat[fg], return_inverse=True)
    ys, xs = np.divmod(fg, labels.shape[1])
    area = np.bincount(inverse)
    out = []
    cy = np.bincount(inverse, weights=ys) / area
    cx = np.bincount(inverse, weights=xs) / area
    lo_y = np.full(len(ids), labels.shape[0])
    lo_x = np.full(len(ids), labels.shape[1])
    hi_y = np.zeros(len(ids), np.int64)
    hi_x = np.zeros(len(ids), np.int64)
    np.minimum.at(lo_y, inverse, ys)
    np.minimum.at(lo_x, inverse, xs)
    np.maximum.at(hi_y, inverse, ys + 1)
    np.maximum.at(hi_x, inverse, xs + 1)
    for i, oid in enumerate(ids.tolist()):
        out.append(
            {
                "id": int(oid),
                "area": int(area[i]),
                "y": float(cy[i]),
                "x": float(cx[i]),
                "min_y": int(lo_y[i]),
                "min_x": int(lo_x[i]),
                "max_y": int(hi_y[i]),
                "max_x": int(hi_x[i]),
            }
        )
    return out


def error_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows that are errors, in :data:`ERROR_ORDER` (then largest first): the order in
    which "next error" walks them."""
    rank = {kind: i for i, kind in enumerate(ERROR_ORDER)}
    errors = [r for r in rows if r["class"] in rank]
    return sorted(errors, key=lambda r: (rank[r["class"]], -r["area"], r["side"], r["id"]))


def objects_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """Per-object rows as CSV text with a header (:data:`OBJECT_COLUMNS`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=OBJECT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: r[k] for k in OBJECT_COLUMNS} for r in rows)
    return buf.getvalue()
