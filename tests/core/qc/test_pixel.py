"""Pixel scores, the error map and the per-object IoU map."""

import re

import numpy as np
import pytest

from napari_segqc.core.qc.matching import match_pairs
from napari_segqc.core.qc.pixel import (
    ERROR_CLASSES,
    ERROR_COLORS,
    error_map,
    object_iou_map,
    pixel_counts,
    pixel_scores,
    pixel_scores_from_counts,
)

SCORES = ("iou", "dice", "precision", "recall", "accuracy", "balanced_accuracy")


def test_pixel_counts_and_scores_by_hand():
    gt, pred = np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint16)
    gt[0:4, 0:5] = 3  # 20 pixels
    pred[2:6, 0:5] = 9  # 20 pixels, 10 shared
    counts = pixel_counts(gt, pred)
    assert counts == {"tp": 10, "fp": 10, "fn": 10, "tn": 70}
    assert all(type(v) is int for v in counts.values())
    scores = pixel_scores(gt, pred)
    expected = (10 / 30, 20 / 40, 0.5, 0.5, 80 / 100, (0.5 + 70 / 80) / 2)
    assert [scores[k] for k in SCORES] == pytest.approx(expected)
    assert {k: scores[k] for k in counts} == counts


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"tp": 0, "fp": 0, "fn": 0, "tn": 9}, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ({"tp": 0, "fp": 0, "fn": 0, "tn": 0}, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ({"tp": 0, "fp": 3, "fn": 0, "tn": 6}, (0.0, 0.0, 0.0, 0.0, 6 / 9, (0 + 6 / 9) / 2)),
        ({"tp": 0, "fp": 0, "fn": 3, "tn": 6}, (0.0, 0.0, 0.0, 0.0, 6 / 9, (0 + 1) / 2)),
        # no ground-truth background: specificity 1
        (
            {"tp": 6, "fp": 0, "fn": 3, "tn": 0},
            (6 / 9, 12 / 15, 1.0, 6 / 9, 6 / 9, (6 / 9 + 1) / 2),
        ),
    ],
)
def test_zero_denominators(counts, expected):
    scores = pixel_scores_from_counts(counts)
    assert [scores[k] for k in SCORES] == pytest.approx(expected)
    assert all(type(scores[k]) is float for k in SCORES)


def test_identical_and_swapped():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, (32, 32)), rng.integers(0, 3, (32, 32))
    assert all(v == 1.0 for k, v in pixel_scores(a, a).items() if k in SCORES)
    ab, ba = pixel_scores(a, b), pixel_scores(b, a)
    assert (ab["fp"], ab["fn"]) == (ba["fn"], ba["fp"])
    assert ab["precision"] == pytest.approx(ba["recall"])
    assert ab["iou"] == pytest.approx(ba["iou"]) and ab["dice"] == pytest.approx(ba["dice"])


def test_pixel_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(3, 3\) and \(3, 4\)"):
        pixel_counts(np.zeros((3, 3)), np.zeros((3, 4)))


def maps_case():
    """A matched pair (shifted), a missed object, a spurious one, a weakly overlapping pair."""
    gt, pred = np.zeros((6, 14), np.uint8), np.zeros((6, 14), np.uint8)
    gt[0:3, 0:3] = 1  # matched with pred 5: IoU 6 / 12 = 0.5
    pred[1:4, 0:3] = 5
    gt[0:2, 5:7] = 2  # missed
    pred[4:6, 5:7] = 6  # false positive
    gt[0:2, 9:11] = 3  # overlaps pred 7 with IoU 2 / 8: matched only below 0.25
    pred[0:3, 10:12] = 7
    return gt, pred


EXPECTED_ERRORS = np.array(  # at threshold 0.5
    [
        [3, 3, 3, 0, 0, 5, 5, 0, 0, 5, 1, 4, 0, 0],
        [1, 1, 1, 0, 0, 5, 5, 0, 0, 5, 1, 4, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 4, 4, 0, 0],
        [2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 4, 4, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 4, 4, 0, 0, 0, 0, 0, 0, 0],
    ]
)


def test_error_map_classes_by_hand():
    gt, pred = maps_case()
    em = error_map(gt, pred)
    assert em.dtype == np.uint8 and em.shape == gt.shape
    np.testing.assert_array_equal(em, EXPECTED_ERRORS)
    # at 0.2 the weak pair is matched too: its one-sided pixels are boundary errors
    low = EXPECTED_ERRORS.copy()
    low[0:2, 9], low[0:3, 11], low[2, 10] = 3, 2, 2
    np.testing.assert_array_equal(error_map(gt, pred, threshold=0.2), low)
    # above 0.5 the shifted pair is unmatched: its one-sided pixels become object errors
    high = EXPECTED_ERRORS.copy()
    high[0, 0:3], high[3, 0:3] = 5, 4
    np.testing.assert_array_equal(error_map(gt, pred, threshold=0.55), high)


def test_error_map_precomputed_match_and_bool():
    gt, pred = maps_case()
    np.testing.assert_array_equal(error_map(gt, pred), EXPECTED_ERRORS)
    np.testing.assert_array_equal(
        error_map(gt, pred, match=match_pairs(gt, pred, 0.5)), EXPECTED_ERRORS
    )
    # a one-object bool prediction against itself: only true positives
    assert set(np.unique(error_map(pred > 0, pred > 0))) == {0, 1}


def test_object_iou_map():
    gt, pred = maps_case()
    im = object_iou_map(gt, pred)
    assert im.dtype == np.float32
    assert np.all(np.isnan(im[gt == 0]))
    assert np.all(im[gt == 1] == 0.5)
    assert np.all(im[gt == 2] == 0.0) and np.all(im[gt == 3] == 0.0)
    low = object_iou_map(gt, pred, threshold=0.2)
    assert np.allclose(low[gt == 3], 0.25) and np.all(low[gt == 1] == 0.5)
    np.testing.assert_array_equal(object_iou_map(gt, pred, match=match_pairs(gt, pred, 0.2)), low)


def test_object_iou_map_nothing_matched():
    gt, pred = maps_case()
    im = object_iou_map(gt, np.zeros_like(pred))
    assert np.all(im[gt > 0] == 0.0) and np.all(np.isnan(im[gt == 0]))


@pytest.mark.parametrize("fn", [error_map, object_iou_map])
def test_maps_check_inputs(fn):
    with pytest.raises(ValueError, match=r"\(4, 4\) and \(4, 5\)"):
        fn(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(ValueError, match="negative"):
        fn(np.full((4, 4), -2), np.zeros((4, 4), int))


def test_error_classes_and_colors():
    assert list(ERROR_CLASSES) == [0, 1, 2, 3, 4, 5, 6, 7]
    assert ERROR_COLORS.keys() == ERROR_CLASSES.keys()
    assert all(re.fullmatch(r"#[0-9a-f]{8}", c) for c in ERROR_COLORS.values())
    assert ERROR_COLORS[0].endswith("00")  # background transparent
    assert all(c.endswith("ff") for k, c in ERROR_COLORS.items() if k)
    assert len(set(ERROR_COLORS.values())) == len(ERROR_COLORS)


def test_error_map_paints_merges_and_splits():
    gt = np.zeros((20, 40), np.int32)
    gt[5:15, 5:15], gt[5:15, 16:26], gt[2:18, 28:38] = 1, 2, 3
    pred = np.zeros_like(gt)
    pred[5:15, 5:26] = 1  # merges gt 1 and 2
    pred[2:10, 28:38], pred[10:18, 28:38] = 2, 3  # split gt 3
    out = error_map(gt, pred)
    assert ERROR_CLASSES[6] == "merge" and ERROR_CLASSES[7] == "split"
    assert (out[pred == 1] == 6).all()
    assert (out[gt == 3] == 7).all()
    assert set(np.unique(out)) == {0, 6, 7}
