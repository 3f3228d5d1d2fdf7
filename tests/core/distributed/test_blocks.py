"""Block plans and stitching, on synthetic labels where every block sees the truth."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segqc.core.distributed.blocks import (
    bands_of,
    check_block,
    halo_for,
    match_labels,
    neighbour_pairs,
    neighbours_of,
    plan_blocks,
    stitch,
)
from napari_segqc.core.errors import SegQCError


def _truth(shape=(700, 900), n=250, seed=0) -> np.ndarray:
    """Disks (radius 3-20), some touching, many across any block border."""
    from skimage.draw import disk

    rng = np.random.default_rng(seed)
    out = np.zeros(shape, np.int32)
    for i in range(1, n + 1):
        r = rng.integers(3, 21)
        cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        out[disk((cy, cx), r, shape=shape)] = i
    ids = np.unique(out)[1:]
    lut = np.zeros(n + 1, np.int32)
    lut[ids] = np.arange(1, len(ids) + 1)
    return lut[out]


def test_cores_tile_the_image_once_and_windows_add_the_halo():
    shape, block, halo = (700, 900), 256, 64
    blocks = plan_blocks(shape, block, halo)
    assert len(blocks) == 3 * 4
    cover = np.zeros(shape, np.int32)
    for b in blocks:
        y0, y1, x0, x1 = b.core
        cover[y0:y1, x0:x1] += 1
        wy0, wy1, wx0, wx1 = b.window
        assert (wy0, wx0) == (max(0, y0 - halo), max(0, x0 - halo))
        assert (wy1, wx1) == (min(700, y1 + halo), min(900, x1 + halo))
        assert wy0 % 32 == 0 and wx0 % 32 == 0  # tiles see the image on one pixel grid
    assert (cover == 1).all()
    # 3 x 4 grid: 3*3 + 2*4 side neighbours, 2 * 2*3 diagonal ones
    assert len(neighbour_pairs(blocks)) == 9 + 8 + 12
    assert len(neighbours_of(blocks[5], blocks)) == 8


def test_block_and_halo_settings():
    for bad in (100, 300, 0):
        with pytest.raises(SegQCError, match="multiple of 64"):
            check_block(bad)
    assert check_block(4096) == 4096
    assert halo_for(14.0) == 128  # small nuclei: the minimum
    assert halo_for(100.0) == 288  # 2 diameters + 64 px of context, on the 32 grid
    assert halo_for(100.0, factor=0.5) == 352  # context is 64 px at the network's scale
    assert halo_for(None, 1.0, model_diameter=50.0) == 192  # unknown: the model's largest


def test_match_labels_pairs_objects_by_iou_within_the_region():
    a = np.zeros((20, 20), np.int32)
    b = np.zeros_like(a)
    a[2:8, 2:8], b[2:8, 3:8] = 4, 9  # IoU 30/36: one object
    a[10:18, 10:18], b[10:18, 10:12] = 5, 2  # IoU 16/64: a different cut, not paired
    assert match_labels(a, b).tolist() == [[4, 9]]
    assert match_labels(a, np.zeros_like(a)).shape == (0, 2)


def _simulate(truth: np.ndarray, block: int, halo: int, seed: int = 1) -> np.ndarray:
    """What the block pipeline makes when every block segments its window perfectly, with
    its own (shuffled) local ids."""
    rng = np.random.default_rng(seed)
    blocks = plan_blocks(truth.shape, block, halo)
    local = []
    for b in blocks:
        y0, y1, x0, x1 = b.window
        crop = truth[y0:y1, x0:x1]
        ids = np.unique(crop)[1:]
        lut = np.zeros(truth.max() + 1, np.int32)
        lut[ids] = rng.permutation(len(ids)) + 1
        local.append(lut[crop])
    results = []
    for b, labels in zip(blocks, local, strict=True):
        core = labels[b.core_in_window()]
        ids = np.unique(core)
        results.append(
            (int(labels.max()), ids[ids > 0], bands_of(b, neighbours_of(b, blocks), labels))
        )
    matches = [
        (i, j, match_labels(results[i][2][j], results[j][2][i])) for i, j in neighbour_pairs(blocks)
    ]
    luts, count = stitch([r[0] for r in results], [r[1] for r in results], matches)
    out = np.zeros(truth.shape, np.int64)
    for b, labels, lut in zip(blocks, local, luts, strict=True):
        y0, y1, x0, x1 = b.core
        out[y0:y1, x0:x1] = lut[labels[b.core_in_window()]]
    assert count == int(out.max())
    return out


@pytest.mark.parametrize(("block", "halo"), [(128, 64), (256, 96), (1024, 64)])
def test_stitching_gives_back_the_truth_with_consecutive_ids(block, halo):
    truth = _truth()
    out = _simulate(truth, block, halo)
    ids = np.unique(out)[1:]
    assert ids.tolist() == list(range(1, len(ids) + 1))  # globally unique and consecutive
    assert len(ids) == len(np.unique(truth)) - 1  # no object split at a border, none merged
    # one-to-one: every truth object is exactly one output object
    pairs = np.unique(np.stack([truth.ravel(), out.ravel()]), axis=1)
    assert pairs.shape[1] == len(ids) + 1
    if block < truth.shape[1]:  # the test does cross borders
        across = np.intersect1d(truth[:, block - 1], truth[:, block])
        assert len(across[across > 0]) > 3


def test_a_block_that_disagrees_at_the_border_is_not_merged():
    truth = np.zeros((256, 512), np.int32)
    truth[100:140, 236:276] = 1  # one object across the border at x = 256
    blocks = plan_blocks(truth.shape, 256, 64)
    a, b = blocks
    la = truth[:, : a.window[3]].copy()
    lb = truth[:, b.window[2] :].copy()
    lb[100:140, 256 - b.window[2] : 276 - b.window[2]] = 3  # b sees only its own half ...
    lb[100:140, 236 - b.window[2] : 256 - b.window[2]] = 2  # ... and another object beside
    pairs = match_labels(bands_of(a, [b], la)[1], bands_of(b, [a], lb)[0])
    assert pairs.shape == (0, 2)  # halves of IoU 0.5 are not one object
    luts, count = stitch([1, 3], [np.array([1]), np.array([3])], [(0, 1, pairs)])
    assert count == 2 and luts[0][1] != luts[1][3]
