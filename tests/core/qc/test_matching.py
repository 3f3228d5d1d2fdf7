"""Object matching: hand-computed cases, invariances, the assignment, ties, ids and errors."""

import itertools
import json

import numpy as np
import pytest

from napari_segqc.core.qc.matching import (
    THRESHOLD_SWEEP,
    match_objects,
    match_pairs,
    object_scores_from_counts,
    threshold_key,
)

SCORES = ("precision", "recall", "f1", "accuracy", "mean_matched_iou", "pq")


def strips(gt_spans, pred_spans, width=60):
    """1-pixel-high label images from [start, stop) spans, labels 1, 2, ... in order."""
    gt, pred = np.zeros((1, width), np.uint16), np.zeros((1, width), np.uint16)
    for img, spans in ((gt, gt_spans), (pred, pred_spans)):
        for i, (a, b) in enumerate(spans, start=1):
            img[0, a:b] = i
    return gt, pred


def hand_case():
    """gt A (matched, IoU 80/120 = 2/3) and B (missed); pred A' and spurious C."""
    gt, pred = np.zeros((40, 40), np.uint8), np.zeros((40, 40), np.uint8)
    gt[0:10, 0:10] = 1
    gt[20:30, 20:30] = 2
    pred[2:12, 0:10] = 1  # A shifted 2 rows: intersection 80, union 120
    pred[0:5, 30:35] = 2  # spurious
    return gt, pred


def random_labels(seed, shape=(64, 64), n=12):
    """Random overlapping rectangles and a perturbed copy: realistic small pairs."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.int32)
    for i in range(1, n + 1):
        r, c = rng.integers(0, shape[0] - 8), rng.integers(0, shape[1] - 8)
        gt[r : r + rng.integers(3, 12), c : c + rng.integers(3, 12)] = i
    pred = np.roll(gt, (rng.integers(-2, 3), rng.integers(-2, 3)), axis=(0, 1))
    pred[rng.random(shape) < 0.05] = 0
    return gt, pred


@pytest.mark.parametrize(
    ("threshold", "tp", "fp", "fn"), [(0.5, 1, 1, 1), (0.65, 1, 1, 1), (0.7, 0, 2, 2)]
)
def test_hand_case_counts_and_scores(threshold, tp, fp, fn):
    res = match_objects(*hand_case(), thresholds=(threshold,))[threshold_key(threshold)]
    assert (res["tp"], res["fp"], res["fn"], res["n_gt"], res["n_pred"]) == (tp, fp, fn, 2, 2)
    s = tp * 2 / 3
    assert res["precision"] == pytest.approx(tp / 2)
    assert res["recall"] == pytest.approx(tp / 2)
    assert res["accuracy"] == pytest.approx(tp / (tp + fp + fn))
    assert res["mean_matched_iou"] == pytest.approx(2 / 3 if tp else 0.0)
    assert res["pq"] == pytest.approx(s / (tp + fp / 2 + fn / 2))
    assert res["sum_matched_iou"] == pytest.approx(s)


def test_match_pairs_reports_ids():
    m = match_pairs(*hand_case(), threshold=0.5)
    assert m.gt_ids.tolist() == [1] and m.pred_ids.tolist() == [1]
    assert m.ious == pytest.approx([2 / 3])
    assert m.unmatched_gt.tolist() == [2] and m.unmatched_pred.tolist() == [2]
    assert (m.n_gt, m.n_pred, m.threshold, m.tp) == (2, 2, 0.5, 1)


def test_identical_scores_one():
    gt, _ = random_labels(0)
    res = match_objects(gt, gt.copy(), THRESHOLD_SWEEP)
    n = len(np.unique(gt)) - 1
    assert list(res) == [threshold_key(t) for t in THRESHOLD_SWEEP]
    for r in res.values():
        assert (r["tp"], r["fp"], r["fn"]) == (n, 0, 0)
        assert all(r[k] == pytest.approx(1.0) for k in SCORES)


def test_disjoint_has_no_match():
    gt, pred = strips([(0, 10), (20, 30)], [(10, 20), (30, 40), (45, 50)])
    r = match_objects(gt, pred, (0.1,))["0.10"]
    assert (r["tp"], r["fp"], r["fn"]) == (0, 3, 2)
    assert all(r[k] == 0.0 for k in SCORES)


def test_both_empty_scores_one():
    z = np.zeros((8, 8), np.uint16)
    r = match_objects(z, z)["0.50"]
    assert (r["tp"], r["fp"], r["fn"], r["n_gt"], r["n_pred"]) == (0, 0, 0, 0, 0)
    assert all(r[k] == 1.0 for k in SCORES)


@pytest.mark.parametrize("empty_side", ["gt", "pred"])
def test_one_side_empty_scores_zero(empty_side):
    labels, z = hand_case()[0], np.zeros((40, 40), np.uint8)
    gt, pred = (z, labels) if empty_side == "gt" else (labels, z)
    r = match_objects(gt, pred)["0.50"]
    assert (r["fp"], r["fn"]) == ((2, 0) if empty_side == "gt" else (0, 2))
    assert all(r[k] == 0.0 for k in SCORES)


@pytest.mark.parametrize("seed", range(5))
def test_label_permutation_invariance(seed):
    gt, pred = random_labels(seed)
    rng = np.random.default_rng(100 + seed)
    perm_g = np.concatenate(([0], rng.permutation(np.arange(1, 10**6))[: gt.max()]))
    perm_p = np.concatenate(([0], rng.permutation(np.arange(1, 10**6))[: pred.max()]))
    thresholds = (0.1, 0.3, *THRESHOLD_SWEEP)
    a = match_objects(gt, pred, thresholds)
    b = match_objects(perm_g[gt], perm_p[pred], thresholds)
    assert a.keys() == b.keys()
    assert all(a[k] == pytest.approx(b[k]) for k in a)
    m, mp = match_pairs(gt, pred, 0.3), match_pairs(perm_g[gt], perm_p[pred], 0.3)
    pairs = sorted(zip(perm_g[m.gt_ids], perm_p[m.pred_ids], strict=True))
    assert pairs == sorted(zip(mp.gt_ids, mp.pred_ids, strict=True))


@pytest.mark.parametrize("seed", range(5))
def test_swap_symmetry(seed):
    gt, pred = random_labels(seed)
    thresholds = (0.2, *THRESHOLD_SWEEP)
    a, b = match_objects(gt, pred, thresholds), match_objects(pred, gt, thresholds)
    for key in a:
        assert (a[key]["tp"], a[key]["fp"], a[key]["fn"]) == (
            b[key]["tp"],
            b[key]["fn"],
            b[key]["fp"],
        )
        assert a[key]["precision"] == pytest.approx(b[key]["recall"])
        for k in ("f1", "accuracy", "mean_matched_iou", "pq"):
            assert a[key][k] == pytest.approx(b[key][k])


def brute_force(gt, pred, threshold):
    """Most pairs, then largest IoU sum, over every matching of the candidate pairs."""
    g_ids, p_ids = np.unique(gt[gt > 0]), np.unique(pred[pred > 0])
    cands = []
    for g in g_ids:
        for p in p_ids:
            inter = np.sum((gt == g) & (pred == p))
            iou = inter / np.sum((gt == g) | (pred == p))
            if inter and iou >= threshold:
                cands.append((g, p, iou))
    best = (0, 0.0)
    for k in range(len(cands), 0, -1):
        for combo in itertools.combinations(cands, k):
            if len({c[0] for c in combo}) == k and len({c[1] for c in combo}) == k:
                best = max(best, (k, sum(c[2] for c in combo)))
        if best[0]:
            break
    return best


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5])
@pytest.mark.parametrize("seed", range(8))
def test_assignment_matches_brute_force(seed, threshold):
    gt, pred = random_labels(seed, shape=(24, 24), n=6)
    tp, s = brute_force(gt, pred, threshold)
    r = match_objects(gt, pred, (threshold,))[threshold_key(threshold)]
    assert r["tp"] == tp
    assert r["sum_matched_iou"] == pytest.approx(s)


def test_assignment_beats_greedy():
    # g1-p1 has the best IoU (12/30), but taking it leaves g2 and p2 without a partner;
    # the assignment matches g1-p2 (7/20) and g2-p1 (10/32) instead.
    gt, pred = strips([(0, 20), (20, 40)], [(8, 30), (0, 7)])
    r = match_objects(gt, pred, (0.3, 0.38, 0.5))
    assert (r["0.30"]["tp"], r["0.30"]["fp"], r["0.30"]["fn"]) == (2, 0, 0)
    assert r["0.30"]["sum_matched_iou"] == pytest.approx(7 / 20 + 10 / 32)
    m = match_pairs(gt, pred, 0.3)
    assert sorted(zip(m.gt_ids.tolist(), m.pred_ids.tolist(), strict=True)) == [(1, 2), (2, 1)]
    # above 10/32 only the best pair is a candidate
    assert r["0.38"]["tp"] == 1 and r["0.38"]["mean_matched_iou"] == pytest.approx(0.4)
    assert r["0.50"]["tp"] == 0


@pytest.mark.parametrize("swap", [False, True])
def test_tie_at_exactly_half(swap):
    # one 4x4 object against its two 4x2 halves: IoU exactly 0.5 each, only one may match
    a, b = np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)
    a[:, :] = 1
    b[:, :2], b[:, 2:] = 3, 9
    gt, pred = (b, a) if swap else (a, b)
    r = match_objects(gt, pred, (0.5, 0.55))
    assert r["0.50"]["tp"] == 1 and r["0.50"]["mean_matched_iou"] == 0.5
    assert (r["0.50"]["fp"], r["0.50"]["fn"]) == ((0, 1) if swap else (1, 0))
    assert r["0.55"]["tp"] == 0
    m = match_pairs(gt, pred, 0.5)
    assert len(m.gt_ids) == 1 and m.ious.tolist() == [0.5]


@pytest.mark.parametrize("threshold", THRESHOLD_SWEEP)
def test_iou_exactly_at_threshold_matches(threshold):
    # a 100-pixel object and a prediction inside it with round(100 t) pixels: IoU exactly t
    gt, pred = np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8)
    gt[:] = 1
    pred.ravel()[: round(100 * threshold)] = 1
    r = match_objects(gt, pred, (threshold, threshold + 0.01))
    assert r[threshold_key(threshold)]["tp"] == 1
    assert r[threshold_key(threshold)]["mean_matched_iou"] == threshold
    assert r[threshold_key(threshold + 0.01)]["tp"] == 0


@pytest.mark.parametrize(
    ("dtype", "ids"),
    [
        (np.uint16, (7, 1000, 65535)),
        (np.int32, (5, 2**31 - 1, 123456)),
        (np.uint32, (4_000_000_000, 1, 2)),
        (np.int64, (2**40, 2**50, 3)),
        (np.uint64, (2**63 + 5, 2**64 - 1, 11)),
        (np.int8, (127, 1, 64)),
    ],
)
def test_non_sequential_and_large_ids(dtype, ids):
    seq_gt, seq_pred = strips([(0, 10), (20, 30), (40, 50)], [(1, 10), (25, 35), (52, 58)])
    lut = np.array((0, *ids), dtype=dtype)
    ref = match_objects(seq_gt, seq_pred, (0.3, 0.5))
    assert match_objects(lut[seq_gt], lut[seq_pred], (0.3, 0.5)) == ref
    m = match_pairs(lut[seq_gt], lut[seq_pred], 0.5)
    assert m.gt_ids.tolist() == [ids[0]] and m.pred_ids.tolist() == [ids[0]]
    assert sorted(m.unmatched_gt.tolist()) == sorted(ids[1:])


def test_bool_is_one_object():
    gt, pred = hand_case()
    r = match_objects(gt > 0, pred > 0, (0.1,))["0.10"]
    assert (r["n_gt"], r["n_pred"], r["tp"]) == (1, 1, 1)
    assert r["mean_matched_iou"] == pytest.approx(80 / (200 + 125 - 80))


def test_integral_float_labels_accepted():
    gt, pred = hand_case()
    assert match_objects(gt.astype(np.float32), pred.astype(float)) == match_objects(gt, pred)


def test_3d_objects():
    gt, pred = np.zeros((8, 8, 8), np.uint8), np.zeros((8, 8, 8), np.uint8)
    gt[0:4, 0:4, 0:4] = 1
    pred[1:5, 0:4, 0:4] = 1  # intersection 48, union 80
    m = match_pairs(gt, pred, 0.5)
    assert m.ious == pytest.approx([0.6])


@pytest.mark.parametrize(
    ("gt", "pred", "match"),
    [
        (np.zeros((4, 4), int), np.zeros((4, 5), int), r"\(4, 4\) and \(4, 5\)"),
        (np.full((3, 3), -1), np.zeros((3, 3), int), "negative"),
        (np.zeros((3, 3)), np.full((3, 3), 0.5), "non-integer"),
        (np.full((3, 3), np.nan), np.zeros((3, 3)), "non-integer"),
        (np.zeros((3, 3), complex), np.zeros((3, 3), int), "integer label image"),
    ],
)
def test_bad_input_raises(gt, pred, match):
    with pytest.raises(ValueError, match=match):
        match_objects(gt, pred)
    with pytest.raises(ValueError, match=match):
        match_pairs(gt, pred)


def test_threshold_sweep_and_keys():
    assert THRESHOLD_SWEEP == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    assert [threshold_key(t) for t in (0.5, 0.55, 0.95, 0.1)] == ["0.50", "0.55", "0.95", "0.10"]


def test_results_are_plain_python():
    res = match_objects(*random_labels(1), THRESHOLD_SWEEP)
    for r in res.values():
        assert all(type(v) in (int, float) for v in r.values())
    assert json.loads(json.dumps(res)) == res


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((3, 1, 2, 2.4), (3 / 4, 3 / 5, 6 / 9, 3 / 6, 0.8, 2.4 / 4.5)),
        ((0, 0, 0, 0.0), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
        ((0, 2, 0, 0.0), (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
        ((0, 0, 2, 0.0), (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
    ],
)
def test_object_scores_from_counts(counts, expected):
    scores = object_scores_from_counts(*counts)
    assert [scores[k] for k in SCORES] == pytest.approx(expected)


def test_combining_counts_is_not_averaging():
    a = match_objects(*hand_case())["0.50"]
    z = np.zeros((40, 40), np.uint8)
    b = match_objects(z, z)["0.50"]  # an empty pair adds nothing to the counts
    summed = object_scores_from_counts(
        *(a[k] + b[k] for k in ("tp", "fp", "fn", "sum_matched_iou"))
    )
    assert summed == pytest.approx({k: a[k] for k in SCORES})
    assert summed["precision"] != pytest.approx((a["precision"] + b["precision"]) / 2)


def _two_nuclei() -> np.ndarray:
    gt = np.zeros((20, 40), np.int32)
    gt[5:15, 5:15] = 1
    gt[5:15, 16:26] = 2
    return gt


def test_one_prediction_over_two_nuclei_is_a_merge():
    gt = _two_nuclei()
    pred = np.zeros_like(gt)
    pred[5:15, 5:26] = 7
    m = match_objects(gt, pred, thresholds=(0.5,))["0.50"]
    assert (m["merges"], m["splits"]) == (1, 0)
    match = match_pairs(gt, pred)
    assert match.merged_pred.tolist() == [7] and match.split_gt.tolist() == []


def test_one_nucleus_cut_in_two_predictions_is_a_split():
    gt = _two_nuclei()
    pred = np.zeros_like(gt)
    pred[5:10, 5:15] = 3
    pred[10:15, 5:15] = 4
    pred[5:15, 16:26] = 5
    m = match_objects(gt, pred, thresholds=(0.5, 0.9))
    assert all((v["merges"], v["splits"]) == (0, 1) for v in m.values())  # the same at any τ
    assert match_pairs(gt, pred).split_gt.tolist() == [1]


def test_a_slight_overlap_with_a_neighbour_is_neither():
    gt = _two_nuclei()
    pred = np.zeros_like(gt)
    pred[5:15, 5:17] = 1  # one column (10 of nucleus 2's 100 pixels: 10 %, not more)
    pred[5:15, 17:26] = 2
    m = match_objects(gt, pred)["0.50"]
    assert (m["merges"], m["splits"]) == (0, 0)
    pred[5:15, 5:18] = 1  # two columns: 20 % of nucleus 2, and nucleus 2 is now split too
    m = match_objects(gt, pred)["0.50"]
    assert (m["merges"], m["splits"]) == (1, 1)


def test_empty_images_have_no_merges_or_splits():
    empty = np.zeros((8, 8), np.int32)
    m = match_objects(empty, empty)["0.50"]
    assert (m["merges"], m["splits"]) == (0, 0)
