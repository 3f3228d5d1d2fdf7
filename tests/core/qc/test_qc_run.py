"""The QC runner: one pair, stacks, grey-value inputs, bad inputs, stopping."""

import numpy as np
import pytest

from conftest import degrade
from napari_segqc.core.errors import SegQCError, Stopped
from napari_segqc.core.qc.inputs import looks_like_image, to_grayscale
from napari_segqc.core.qc.matching import THRESHOLD_SWEEP, match_objects, threshold_key
from napari_segqc.core.qc.pixel import pixel_scores
from napari_segqc.core.qc.run import iter_qc, qc_report, run_qc


def test_identical_labels_score_perfectly(sample_pair):
    _, gt = sample_pair
    result = run_qc(gt, gt.copy(), name="same")
    report = result.report
    assert report["name"] == "same"
    assert report["pixel"]["iou"] == 1.0
    assert report["dsb_score"] == 1.0
    assert report["image"]["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert report["image"]["nrmse"] == 0.0
    assert np.all(result.maps.rse == 0)
    assert set(np.unique(result.maps.error)) <= {0, 1}
    fg = gt > 0
    assert np.all(result.maps.object_iou[fg] == 1.0)
    assert np.all(np.isnan(result.maps.object_iou[~fg]))


def test_report_matches_the_metric_functions(sample_pair):
    _, gt = sample_pair
    pred = degrade(gt)
    report = qc_report(gt, pred, name="x", threshold=0.5)
    objects = match_objects(gt, pred, thresholds=THRESHOLD_SWEEP)
    assert list(report["objects"]) == [threshold_key(t) for t in THRESHOLD_SWEEP]
    assert report["objects"]["0.50"] == objects["0.50"]
    assert report["pixel"]["iou"] == pytest.approx(pixel_scores(gt, pred)["iou"])
    acc = [objects[threshold_key(t)]["accuracy"] for t in THRESHOLD_SWEEP]
    assert report["dsb_score"] == pytest.approx(np.mean(acc))
    assert 0 < report["image"]["ssim"] < 1


def test_threshold_outside_the_sweep_is_added_but_not_in_dsb_score(sample_pair):
    _, gt = sample_pair
    pred = degrade(gt)
    report = qc_report(gt, pred, threshold=0.3)
    assert "0.30" in report["objects"] and report["threshold"] == "0.30"
    acc = [report["objects"][threshold_key(t)]["accuracy"] for t in THRESHOLD_SWEEP]
    assert report["dsb_score"] == pytest.approx(np.mean(acc))


def test_stack_reports_slices_and_sums_counts(sample_pair):
    _, gt = sample_pair
    gts = np.stack([gt, gt, np.zeros_like(gt)])
    preds = np.stack([gt, degrade(gt), np.zeros_like(gt)])
    gen = iter_qc(gts, preds, name="stack")
    progress = []
    with pytest.raises(StopIteration) as done:
        while True:
            progress.append(next(gen))
    result = done.value.value
    assert [(p.done, p.total) for p in progress] == [(1, 3), (2, 3), (3, 3)]
    report = result.report
    assert [s["index"] for s in report["slices"]] == [[0], [1], [2]]
    assert report["slices"][2]["objects"]["0.50"]["f1"] == 1.0  # both empty: documented 1.0
    for key in ("tp", "fp", "fn"):
        total = sum(s["objects"]["0.50"][key] for s in report["slices"])
        assert report["objects"]["0.50"][key] == total
    tp, fp, fn = (report["objects"]["0.50"][k] for k in ("tp", "fp", "fn"))
    assert report["objects"]["0.50"]["accuracy"] == pytest.approx(tp / (tp + fp + fn))
    assert result.maps.error.shape == gts.shape
    # the maps of slice 1 equal those of the same pair computed alone
    alone = run_qc(gt, degrade(gt))
    assert np.array_equal(result.maps.error[1], alone.maps.error)
    np.testing.assert_allclose(result.maps.ssim[1], alone.maps.ssim, atol=1e-6)


def test_probability_image_prediction_against_labels(sample_pair):
    _, gt = sample_pair
    prob = (gt > 0).astype(np.float32) * 0.9 + 0.05
    report = qc_report(gt, prob, pred_is_labels=False)
    assert report["pixel"]["iou"] == 1.0
    # connected components of the thresholded map merge touching nuclei: never more objects
    assert report["objects"]["0.50"]["n_pred"] <= report["objects"]["0.50"]["n_gt"]
    assert report["image"]["ssim"] > 0.99


def test_grey_images_are_normalised_before_similarity(sample_pair):
    image, _ = sample_pair
    scaled = image.astype(np.float32) * 3.0 + 100.0
    report = qc_report(image.astype(np.float32), scaled, gt_is_labels=False, pred_is_labels=False)
    assert report["image"]["ssim"] == pytest.approx(1.0, abs=1e-4)
    assert report["image"]["nrmse"] == pytest.approx(0.0, abs=1e-4)


def test_rgb_to_grayscale():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 1] = 200
    grey = to_grayscale(rgb)
    assert grey.shape == (4, 5)
    assert grey[0, 0] == pytest.approx(200 * 0.7154, rel=1e-5)
    with pytest.raises(SegQCError, match="3 or 4 channels"):
        to_grayscale(np.zeros((4, 5)))


@pytest.mark.parametrize(
    ("gt", "pred", "message"),
    [
        (np.zeros((8, 8), int), np.zeros((8, 9), int), "shape"),
        (np.zeros((8, 8), int), np.full((8, 8), np.nan), "NaN"),
        (np.zeros((8, 8), int), np.full((8, 8), 0.5), "non-integer"),
        (np.zeros((8, 8), int), -np.ones((8, 8), int), "negative"),
        (np.zeros(8, int), np.zeros(8, int), "2-D"),
    ],
)
def test_bad_inputs_give_clear_errors(gt, pred, message):
    with pytest.raises(SegQCError, match=message):
        qc_report(gt, pred)


def test_bad_threshold():
    with pytest.raises(SegQCError, match="IoU threshold"):
        qc_report(np.zeros((16, 16), int), np.zeros((16, 16), int), threshold=0.0)


def test_stop_flag_stops_between_slices(sample_pair):
    _, gt = sample_pair
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Stopped):
        run_qc(np.stack([gt] * 4), np.stack([gt] * 4), stop=stop)
    assert len(calls) == 2


def test_lazy_dask_stack_is_read_slice_by_slice(sample_pair):
    import dask.array as da

    _, gt = sample_pair
    stack = np.stack([gt, degrade(gt), gt])
    lazy_gt = da.from_array(stack, chunks=(1, *gt.shape))
    lazy_pred = da.from_array(np.stack([gt, gt, degrade(gt)]), chunks=(1, *gt.shape))
    lazy = qc_report(lazy_gt, lazy_pred, name="lazy")
    eager = qc_report(stack, np.stack([gt, gt, degrade(gt)]), name="lazy")
    assert lazy["objects"] == eager["objects"]
    assert lazy["image"]["ssim"] == pytest.approx(eager["image"]["ssim"])


def test_nan_error_names_the_slice():
    gt = np.zeros((2, 16, 16), int)
    pred = np.zeros((2, 16, 16), np.float32)
    pred[1, 3, 3] = np.nan
    with pytest.raises(SegQCError, match=r"NaN or infinite values \(slice 1\)"):
        qc_report(gt, pred, pred_is_labels=False)


def test_raw_images_read_as_labels_look_like_images(sample_dir):
    import tifffile

    for f in sorted((sample_dir / "images").glob("*.tif")):
        image = tifffile.imread(f)
        assert looks_like_image(image), f.name  # grey values, not labels
        assert not looks_like_image(tifffile.imread(sample_dir / "masks" / f.name)), f.name
    dense = np.repeat(np.repeat(np.arange(1, 401).reshape(20, 20), 8, 0), 8, 1)
    assert not looks_like_image(dense)  # every pixel labelled, 400 objects: still labels
    assert not looks_like_image(np.zeros((64, 64), np.uint8))
    assert looks_like_image(np.random.default_rng(0).integers(1, 255, (3, 64, 64)))  # stack
