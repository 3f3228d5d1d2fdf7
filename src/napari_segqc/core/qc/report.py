"""The QC report: JSON-able dictionaries for one image pair, and their combination.

One entry (an image pair, or one slice of a stack) looks like::

    {"name": ..., "n_slices": 1,
     "pixel": {"iou", "dice", "precision", "recall", "accuracy", "balanced_accuracy",
               "tp", "fp", "fn", "tn"},
     "objects": {"0.50": {"tp", "fp", "fn", "precision", "recall", "f1", "accuracy",
                          "mean_matched_iou", "pq", "sum_matched_iou", "n_gt", "n_pred"},
                 ...},
     "image": {"ssim", "nrmse", "psnr"},
     "dsb_score": ...}

Entries are combined from their counts, never by averaging ratios: pixel and object counts are
summed over images (or slices) before precision, recall, accuracy... are taken, as StarDist's
``matching_dataset`` does. Image-similarity scores (SSIM, NRMSE, PSNR) have no counts; they are
averaged over slices. ``dsb_score`` is the mean object accuracy over the IoU sweep
0.50:0.05:0.95 (the Data Science Bowl 2018 score).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..io import csv_text
from .matching import THRESHOLD_SWEEP, object_scores_from_counts, threshold_key
from .pixel import pixel_scores_from_counts

PIXEL_COUNTS = ("tp", "fp", "fn", "tn")
IMAGE_SCORES = ("ssim", "nrmse", "psnr")


def dsb_score(objects: Mapping[str, Mapping[str, Any]]) -> float | None:
    """Mean object accuracy over the sweep 0.50:0.05:0.95; None if ``objects`` lacks a step."""
    keys = [threshold_key(t) for t in THRESHOLD_SWEEP]
    if any(k not in objects for k in keys):
        return None
    return float(sum(objects[k]["accuracy"] for k in keys) / len(keys))


def make_entry(
    name: str,
    pixel_counts: Mapping[str, int],
    objects: Mapping[str, Mapping[str, Any]],
    image: Mapping[str, float],
    *,
    n_slices: int = 1,
) -> dict[str, Any]:
    """Assemble one report entry from pixel counts, object scores and image scores."""
    pixel = pixel_scores_from_counts(pixel_counts)
    pixel.update({k: int(pixel_counts[k]) for k in PIXEL_COUNTS})
    return {
        "name": name,
        "n_slices": int(n_slices),
        "pixel": pixel,
        "objects": {k: dict(v) for k, v in objects.items()},
        "image": {k: float(image[k]) for k in IMAGE_SCORES if k in image},
        "dsb_score": dsb_score(objects),
    }


def combine_reports(entries: Iterable[Mapping[str, Any]], name: str = "summary") -> dict[str, Any]:
    """Combine report entries (images or slices) into one, summing counts before ratios.

    Works on entries read back from a JSON report as well, so reports of separate runs can be
    combined later.
    """
    entries = list(entries)
    if not entries:
        raise ValueError("combine_reports needs at least one entry")
    pixel_counts = {k: sum(int(e["pixel"][k]) for e in entries) for k in PIXEL_COUNTS}
    keys = list(entries[0]["objects"])
    objects = {}
    for key in keys:
        if any(key not in e["objects"] for e in entries):
            raise ValueError(f"entries were computed with different IoU thresholds ({key})")
        parts = [e["objects"][key] for e in entries]
        tp, fp, fn = (sum(int(p[c]) for p in parts) for c in ("tp", "fp", "fn"))
        sum_iou = sum(
            float(p.get("sum_matched_iou", p["mean_matched_iou"] * p["tp"])) for p in parts
        )
        scores = object_scores_from_counts(tp, fp, fn, sum_iou)
        scores.update(
            tp=tp,
            fp=fp,
            fn=fn,
            n_gt=sum(int(p.get("n_gt", p["tp"] + p["fn"])) for p in parts),
            n_pred=sum(int(p.get("n_pred", p["tp"] + p["fp"])) for p in parts),
            merges=sum(int(p.get("merges", 0)) for p in parts),  # reports before 0.2 lack them
            splits=sum(int(p.get("splits", 0)) for p in parts),
        )
        objects[key] = scores
    weights = [int(e.get("n_slices", 1)) for e in entries]
    image = {}
    for k in IMAGE_SCORES:
        values = [(e["image"].get(k), w) for e, w in zip(entries, weights, strict=True)]
        values = [(v, w) for v, w in values if v is not None]
        if values:
            image[k] = sum(v * w for v, w in values) / sum(w for _, w in values)
    return make_entry(name, pixel_counts, objects, image, n_slices=sum(weights))


def dataset_report(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The report of many image pairs: ``{"images": [...], "summary": {...}}`` (SPEC.md)."""
    entries = list(entries)
    summary = combine_reports(entries)
    summary.pop("name")
    return {"images": entries, "summary": summary}


def json_safe(obj: Any) -> Any:
    """Replace non-finite floats (e.g. the PSNR of identical images) with None for JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def to_json(report: Mapping[str, Any], **kwargs: Any) -> str:
    """The report as strict JSON text (infinite or NaN scores written as ``null``)."""
    return json.dumps(json_safe(report), allow_nan=False, **kwargs)


#: Columns of the score table and CSV: objects at τ first, then pixels, DSB score and image.
CSV_COLUMNS = (
    *("name", "f1", "accuracy", "precision", "recall", "mean_matched_iou", "pq", "tp", "fp"),
    *("fn", "merges", "splits", "pixel_iou", "pixel_dice", "dsb_score", "ssim", "nrmse", "psnr"),
)


def score_row(entry: Mapping[str, Any], threshold: float) -> dict[str, Any]:
    """One flat row of an entry's scores (keys :data:`CSV_COLUMNS`), objects at ``threshold``."""
    objects = entry["objects"][threshold_key(threshold)]
    values = {
        "merges": None,  # reports before 0.2 lack them
        "splits": None,
        **objects,
        "name": entry.get("name", ""),
        "pixel_iou": entry["pixel"]["iou"],
        "pixel_dice": entry["pixel"]["dice"],
        "dsb_score": entry["dsb_score"],
        **{k: entry["image"].get(k) for k in IMAGE_SCORES},
    }
    return {k: values[k] for k in CSV_COLUMNS}


def score_rows(entry: Mapping[str, Any], threshold: float) -> list[dict]:
    """Rows of an entry: the entry itself, then one per slice for stacks."""
    return [score_row(entry, threshold)] + [
        score_row(s, threshold) for s in entry.get("slices", [])
    ]


def rows_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """Score rows (see :func:`score_row`) as CSV text with a header."""
    return csv_text(rows, CSV_COLUMNS)


def scores_csv(report: Mapping[str, Any], threshold: float) -> str:
    """A dataset report as CSV: one row per image (and per slice of stacks), then the summary."""
    rows = [row for entry in report["images"] for row in score_rows(entry, threshold)]
    rows.append(score_row({"name": "summary", **report["summary"]}, threshold))
    return rows_csv(rows)
