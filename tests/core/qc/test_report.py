"""Combining report entries: counts are summed before ratios; JSON stays strict."""

import json
import math

import numpy as np
import pytest

from conftest import degrade
from napari_segqc.core.qc.report import combine_reports, dataset_report, json_safe, to_json
from napari_segqc.core.qc.run import qc_report


@pytest.fixture(scope="module")
def two_entries(sample_pair):
    _, gt = sample_pair
    a = qc_report(gt, degrade(gt, drop_every=3), name="a")
    b = qc_report(gt[:128], degrade(gt[:128], drop_every=7, seed=1), name="b")
    return a, b


def test_counts_are_summed_before_ratios(two_entries):
    a, b = two_entries
    summary = combine_reports([a, b])
    for key in a["objects"]:
        tp, fp, fn = (a["objects"][key][k] + b["objects"][key][k] for k in ("tp", "fp", "fn"))
        s = summary["objects"][key]
        assert (s["tp"], s["fp"], s["fn"]) == (tp, fp, fn)
        assert s["accuracy"] == pytest.approx(tp / (tp + fp + fn) if tp + fp + fn else 1.0)
        sum_iou = sum(
            e["objects"][key]["mean_matched_iou"] * e["objects"][key]["tp"] for e in (a, b)
        )
        if tp:
            assert s["mean_matched_iou"] == pytest.approx(sum_iou / tp)
            assert s["pq"] == pytest.approx(sum_iou / (tp + fp / 2 + fn / 2))
    px = {k: a["pixel"][k] + b["pixel"][k] for k in ("tp", "fp", "fn", "tn")}
    assert summary["pixel"]["iou"] == pytest.approx(px["tp"] / (px["tp"] + px["fp"] + px["fn"]))
    # the summary is not the mean of the per-image ratios (unless by accident)
    mean_f1 = (a["objects"]["0.50"]["f1"] + b["objects"]["0.50"]["f1"]) / 2
    assert summary["objects"]["0.50"]["f1"] != pytest.approx(mean_f1, abs=1e-9)
    assert summary["image"]["ssim"] == pytest.approx((a["image"]["ssim"] + b["image"]["ssim"]) / 2)


def test_combining_survives_a_json_round_trip(two_entries):
    a, b = two_entries
    report = dataset_report([a, b])
    back = json.loads(to_json(report))
    assert back["images"][0]["name"] == "a"
    again = combine_reports(back["images"])
    assert again["dsb_score"] == pytest.approx(report["summary"]["dsb_score"])


def test_spec_keys_present(two_entries):
    report = dataset_report(list(two_entries))
    assert set(report) == {"images", "summary"}
    entry = report["images"][0]
    assert {"iou", "dice", "precision", "recall", "accuracy", "balanced_accuracy"} <= set(
        entry["pixel"]
    )
    assert list(entry["objects"])[:2] == ["0.50", "0.55"] and "0.95" in entry["objects"]
    assert {
        "tp",
        "fp",
        "fn",
        "precision",
        "recall",
        "f1",
        "accuracy",
        "mean_matched_iou",
        "pq",
    } <= set(entry["objects"]["0.75"])
    assert {"ssim", "nrmse", "psnr"} <= set(entry["image"])
    assert {"pixel", "objects", "dsb_score"} <= set(report["summary"])


def test_infinite_psnr_becomes_null():
    gt = np.zeros((32, 32), int)
    gt[8:16, 8:16] = 1
    report = dataset_report([qc_report(gt, gt, name="same")])
    assert math.isinf(report["images"][0]["image"]["psnr"])
    text = to_json(report)
    assert json.loads(text)["images"][0]["image"]["psnr"] is None
    assert json_safe([float("nan"), 1.0]) == [None, 1.0]


def test_mismatched_thresholds_refused(two_entries):
    a, b = two_entries
    b = {**b, "objects": {k: v for k, v in b["objects"].items() if k != "0.50"}}
    with pytest.raises(ValueError, match="different IoU thresholds"):
        combine_reports([a, b])


def test_merges_and_splits_are_summed_and_in_the_csv():
    gt = np.zeros((20, 40), np.int32)
    gt[5:15, 5:15], gt[5:15, 16:26] = 1, 2
    merged = np.zeros_like(gt)
    merged[5:15, 5:26] = 1
    split = gt.copy()
    split[10:15, 5:15] = 3
    report = dataset_report([qc_report(gt, merged, name="a"), qc_report(gt, split, name="b")])
    for key in ("0.50", "0.90"):
        s = report["summary"]["objects"][key]
        assert (s["merges"], s["splits"]) == (1, 1)
    from napari_segqc.core.qc.report import scores_csv

    lines = scores_csv(report, 0.5).splitlines()
    header = lines[0].split(",")
    assert header.index("merges") == header.index("fn") + 1
    row = dict(zip(header, lines[1].split(","), strict=True))
    assert (row["merges"], row["splits"]) == ("1", "0")
    old = json.loads(to_json(report))  # a report of 0.1 has neither: summed as 0
    for entry in old["images"]:
        for v in entry["objects"].values():
            del v["merges"], v["splits"]
    assert combine_reports(old["images"])["objects"]["0.50"]["merges"] == 0
