"""The per-object table: every object with its area, match, IoU and error class."""

import numpy as np

from napari_segqc.core.qc.matching import match_objects
from napari_segqc.core.qc.objects import OBJECT_COLUMNS, error_rows, object_rows, objects_csv


def _scene():
    gt = np.zeros((40, 60), np.int32)
    gt[2:12, 2:12] = 1  # matched
    gt[2:12, 14:24], gt[2:12, 25:35] = 2, 3  # merged by one prediction
    gt[20:36, 2:18] = 4  # split in two
    gt[20:26, 40:46] = 5  # missed
    pred = np.zeros_like(gt)
    pred[2:12, 2:11] = 10
    pred[2:12, 14:35] = 20
    pred[20:28, 2:18], pred[28:36, 2:18] = 30, 31
    pred[30:34, 50:54] = 40  # false positive
    return gt, pred


def test_every_object_once_with_its_class_and_match():
    gt, pred = _scene()
    rows = object_rows(gt, pred)
    by = {(r["side"], r["id"]): r for r in rows}
    assert len(rows) == 5 + 5 and all(tuple(r) == OBJECT_COLUMNS for r in rows)
    assert by["gt", 1]["class"] == "TP" and by["gt", 1]["matched_id"] == 10
    assert by["gt", 1]["iou"] == 0.9 and by["pred", 10]["iou"] == 0.9
    assert by["pred", 20]["class"] == "merge"
    assert by["gt", 4]["class"] == "split"
    assert by["gt", 5]["class"] == "FN" and by["gt", 5]["matched_id"] == 0
    assert by["pred", 40]["class"] == "FP" and by["pred", 40]["iou"] == 0.0
    assert by["gt", 5]["area"] == 36 and (by["gt", 5]["y"], by["gt", 5]["x"]) == (22.5, 42.5)
    box = [by["pred", 40][k] for k in ("min_y", "min_x", "max_y", "max_x")]
    assert box == [30, 50, 34, 54]
    counts = match_objects(gt, pred)["0.50"]  # the table agrees with the scores
    assert sum(r["class"] == "merge" for r in rows) == counts["merges"] == 1
    assert sum(r["class"] == "split" for r in rows) == counts["splits"] == 1


def test_errors_walk_merges_and_splits_first():
    gt, pred = _scene()
    order = [(r["class"], r["side"], r["id"]) for r in error_rows(object_rows(gt, pred))]
    assert order[:2] == [("merge", "pred", 20), ("split", "gt", 4)]
    assert {o[0] for o in order[2:]} == {"FN", "FP"}
    assert ("TP", "gt", 1) not in order


def test_csv_and_empty_images():
    gt, pred = _scene()
    text = objects_csv(object_rows(gt, pred))
    assert text.splitlines()[0] == ",".join(OBJECT_COLUMNS) and len(text.splitlines()) == 11
    assert object_rows(np.zeros((5, 5), int), np.zeros((5, 5), int)) == []
