"""Block-wise QC of label pairs: the merged block tables are the whole image's overlaps, so the
report is the single-process one (SSIM within float32 rounding), whatever the block size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import degrade
from napari_segqc.core.errors import SegQCError
from napari_segqc.core.qc.blockwise import (
    BlockCounts,
    block_grid,
    block_jobs,
    blockwise_qc_report,
    merge_counts,
    needs_blocks,
    overlaps_of,
    report_from_counts,
    window_counts,
)
from napari_segqc.core.qc.matching import _overlaps, match_objects, objects_from_overlaps
from napari_segqc.core.qc.report import to_json
from napari_segqc.core.qc.run import qc_report

SSIM_TOL = 1e-6


def _crossing_pair(shape=(300, 400), seed=0):
    """Objects of many sizes (some spanning several 64-px blocks, some split or merged in the
    prediction), placed across block borders; the prediction shifted and partly relabelled."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for i in range(1, 60):
        cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        ry, rx = rng.integers(3, 40, size=2)
        gt[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = i
    gt[60:70, 10:390] = 77  # a long object across six blocks
    pred = np.roll(gt, (2, -3), axis=(0, 1)).copy()
    pred[pred == 77] = np.where(xx[pred == 77] < 200, 77, 78)  # split in two predictions
    pred[(pred == 5) | (pred == 6)] = 5  # two objects merged into one
    pred[150:160, 150:250] = 99  # a false positive crossing a border
    return gt, pred


def _without_ssim(report: dict) -> tuple[dict, list[float]]:
    report = json.loads(to_json(report))
    entries = [report, *report.get("slices", [])]
    return report, [e["image"].pop("ssim") for e in entries]


def _assert_same_report(a: dict, b: dict) -> None:
    a, ssim_a = _without_ssim(a)
    b, ssim_b = _without_ssim(b)
    assert a == b
    assert np.allclose(ssim_a, ssim_b, rtol=0, atol=SSIM_TOL)


@pytest.fixture(scope="module")
def crossing():
    """The 300 x 400 pair, its 64-px blocks' tables and its single-process report."""
    gt, pred = _crossing_pair()
    parts = [window_counts(gt, pred, (), w) for w in block_grid(gt.shape, 64)]
    return gt, pred, parts, qc_report(gt, pred, name="p", threshold=0.6)


def test_cut_into_blocks_the_report_is_the_whole_images(crossing):
    gt, _, parts, whole = crossing
    jobs = block_jobs(gt.shape, 64)
    assert len(jobs) == len(parts) == 5 * 7
    report = report_from_counts(gt.shape, jobs, parts, name="p", threshold=0.6)
    _assert_same_report(report, whole)
    assert whole["objects"]["0.50"]["merges"] >= 1 and whole["objects"]["0.50"]["splits"] >= 1
    assert whole["objects"]["0.60"]["tp"] > 0 and whole["objects"]["0.60"]["fp"] > 0


def test_merged_block_tables_are_the_whole_overlaps_table(crossing):
    gt, pred, parts, _ = crossing
    merged = overlaps_of(merge_counts(parts))
    whole = _overlaps(gt, pred)
    for field in whole.__dataclass_fields__:
        a, b = getattr(merged, field), getattr(whole, field)
        assert a.dtype == b.dtype and np.array_equal(a, b), field
    thresholds = (0.1, 0.3, 0.5, 0.75)
    assert objects_from_overlaps(merged, thresholds) == match_objects(gt, pred, thresholds)
    # the order of the blocks does not matter (but for the SSIM sum)
    shuffled = merge_counts(parts[::-1])
    for field in ("gt_ids", "gt_area", "pred_ids", "pred_area", "pair_gt", "pair_pred"):
        assert np.array_equal(getattr(shuffled, field), getattr(merge_counts(parts), field))


def test_real_ground_truth_against_a_degraded_copy_gives_the_single_process_report(sample_pair):
    gt = sample_pair[1]
    pred = degrade(gt).astype(np.uint16)
    whole = qc_report(gt, pred, name="nuclei_02")
    _assert_same_report(blockwise_qc_report(gt, pred, name="nuclei_02", block=100), whole)
    # a single block is the whole image: even the SSIM is identical
    one = blockwise_qc_report(gt, pred, name="nuclei_02", block=256)
    assert to_json(one) == to_json(whole)


def test_stacks_are_scored_slice_by_slice_and_combined():
    a, b = _crossing_pair((120, 150), seed=1), _crossing_pair((120, 150), seed=2)
    gt, pred = np.stack([a[0], b[0]]), np.stack([a[1], b[1]])
    whole = qc_report(gt, pred, name="stack")
    blocks = blockwise_qc_report(gt, pred, name="stack", block=64)
    _assert_same_report(blocks, whole)
    assert [s["name"] for s in blocks["slices"]] == ["stack[0]", "stack[1]"]


@pytest.mark.parametrize(
    "convert",
    [
        lambda x: x.astype(np.uint64) + np.uint64(2**40) * (x > 0),  # huge ids
        lambda x: x.astype(np.float32),  # integral floats
        lambda x: x > 0,  # bool: one object
    ],
)
def test_any_label_type_gives_the_whole_images_report(convert):
    gt, pred = (convert(x) for x in _crossing_pair((120, 150)))
    _assert_same_report(blockwise_qc_report(gt, pred, block=48), qc_report(gt, pred))


def test_empty_blocks_and_empty_images():
    gt, pred = _crossing_pair((120, 150))
    gt[:, :64] = 0
    pred[:, 96:] = 0
    _assert_same_report(blockwise_qc_report(gt, pred, block=32), qc_report(gt, pred))
    zeros = np.zeros((100, 90), np.uint8)
    _assert_same_report(blockwise_qc_report(zeros, zeros, block=32), qc_report(zeros, zeros))


class _Recording:
    """An array-like that records what is read."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, key):
        out = self.data[key]
        self.reads.append(out.shape)
        return out


def test_each_block_reads_only_its_block_and_the_ssim_halo():
    gt, pred = _crossing_pair((120, 150))
    g, p = _Recording(gt), _Recording(pred)
    report = blockwise_qc_report(g, p, block=48)
    _assert_same_report(report, qc_report(gt, pred))
    assert len(g.reads) == len(p.reads) == len(block_jobs(gt.shape, 48)) == 3 * 4
    assert max(max(shape) for shape in g.reads + p.reads) <= 48 + 2 * 5


def test_block_plan():
    assert block_grid((5, 7), 4) == [(0, 4, 0, 4), (0, 4, 4, 7), (4, 5, 0, 4), (4, 5, 4, 7)]
    assert needs_blocks((2, 100, 64), 64) and not needs_blocks((2, 64, 64), 64)
    assert len(block_jobs((3, 100, 64), 64)) == 6


def test_block_counts_are_small_tables(crossing):
    gt, _, parts, _ = crossing
    part = parts[0]  # the block (0, 64, 0, 64)
    assert isinstance(part, BlockCounts) and sum(part.pixel) == 64 * 64
    assert np.all(np.diff(part.gt_ids) > 0) and part.gt_area.sum() == np.count_nonzero(gt[:64, :64])
    assert part.ssim_pixels == (64 - 5) ** 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda g: g.astype(np.int32) - 1, "'ground truth' is used as labels but holds negative"),
        (lambda g: g + 0.5, "'ground truth' is used as labels but holds non-integer values"),
        (lambda g: np.where(g > 0, np.nan, 0.0), "'ground truth' contains NaN or infinite"),
    ],
)
def test_bad_labels_are_refused_as_in_one_process(change, message):
    gt, pred = _crossing_pair((120, 150))
    bad = change(gt)
    with pytest.raises(SegQCError, match=message):
        blockwise_qc_report(bad, pred, block=64)
    with pytest.raises(SegQCError, match=message):
        qc_report(bad, pred)


def test_bad_block_sizes_and_shapes():
    gt, pred = _crossing_pair((120, 150))
    with pytest.raises(SegQCError, match="block side must be an integer of at least 32, got 8"):
        blockwise_qc_report(gt, pred, block=8)
    with pytest.raises(SegQCError, match="has shape"):
        blockwise_qc_report(gt, pred[:-1], block=64)
