"""Target channels from labels, and decoding them back into instances."""

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.instances.decoding import decode_instances
from napari_segqc.core.instances.targets import TARGET_CHANNELS, make_targets
from napari_segqc.core.qc.matching import match_objects
from napari_segqc.core.train.data import load_training_data


def _touching_discs(r=12, gap=20):
    """Two discs of radius r whose centres are ``gap`` apart (overlap given to the second)."""
    yy, xx = np.mgrid[:40, :60]
    labels = np.zeros((40, 60), np.int32)
    labels[(yy - 20) ** 2 + (xx - 18) ** 2 <= r * r] = 1
    labels[(yy - 20) ** 2 + (xx - 18 - gap) ** 2 <= r * r] = 2
    return labels


@pytest.mark.parametrize("mode", list(TARGET_CHANNELS))
def test_targets_range_and_foreground(sample_pair, mode):
    labels = sample_pair[1]
    t = make_targets(labels, mode)
    assert t.shape == (len(TARGET_CHANNELS[mode]), *labels.shape) and t.dtype == np.float32
    assert t.min() >= 0 and t.max() <= 1
    np.testing.assert_array_equal(t[0], labels > 0)
    assert not t[:, labels == 0].any()  # every channel is 0 on background


def test_instance_targets_boundary_and_distance():
    labels = _touching_discs()
    _, boundary, distance = make_targets(labels)
    # the line between the touching discs is a boundary on both sides
    touching = (labels[:, :-1] == 1) & (labels[:, 1:] == 2)
    assert touching.any()
    assert boundary[:, :-1][touching].all() and boundary[:, 1:][touching].all()
    for i in (1, 2):
        assert distance[labels == i].max() == pytest.approx(1.0)
        assert distance[boundary > 0].max() < 0.2
    assert distance[20, 6] < distance[20, 10] < distance[20, 14]  # rising inwards


def test_decode_splits_touching_discs():
    labels = _touching_discs()
    assert ndi.label(labels > 0)[1] == 1  # one connected blob
    inst = decode_instances(make_targets(labels))
    binary = decode_instances(make_targets(labels, "binary"), "binary")
    assert inst.max() == 2 and binary.max() == 1
    assert inst.dtype == binary.dtype == np.int32
    assert match_objects(labels, inst, (0.9,))["0.90"]["tp"] == 2


def test_decode_soft_output_still_splits():
    labels = _touching_discs()
    soft = np.stack([ndi.gaussian_filter(c, 1.5) for c in make_targets(labels)])
    assert decode_instances(soft).max() == 2


def _cones(centres, radius=12.0, shape=(64, 96)) -> np.ndarray:
    """Network-like maps of touching discs: foreground, no boundary, distance falling
    linearly from each centre (the second peak 0.95 high: real peaks are never tied)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = [np.hypot(yy - cy, xx - cx) for cy, cx in centres]
    cones = [np.clip(1 - ri / radius, 0, 1) * (1.0 if i == 0 else 0.95) for i, ri in enumerate(r)]
    foreground = (np.min(r, axis=0) < radius) * 0.95
    return np.stack([foreground, np.zeros(shape), np.max(cones, axis=0)])


def test_split_height_splits_cores_that_touch():
    """Two nuclei whose cores run into each other (dip ~0.32 > seed threshold 0.3): one seed
    region, but two peaks each rising ~0.6 above the dip."""
    probs = _cones([(32, 40), (32, 56)])
    assert decode_instances(probs, split_height=0.0).max() == 1
    two = decode_instances(probs, split_height=0.2)
    assert two.max() == 2
    assert two[32, 40] != two[32, 56] and two[32, 40] > 0 and two[32, 56] > 0
    assert decode_instances(probs, split_height=0.7).max() == 1  # more than the peaks rise


def test_split_height_keeps_a_rippled_core_whole():
    """One nucleus whose core has two peaks with a shallow dip between them stays one."""
    probs = _cones([(32, 44), (32, 52)], radius=14)  # dip ~0.69, peaks 1.0 and 0.95
    assert decode_instances(probs, split_height=0.35).max() == 1
    assert decode_instances(probs, split_height=0.1).max() == 2  # a low height splits it


def test_min_object_prob_drops_objects_the_network_is_unsure_of():
    probs = _cones([(20, 20), (44, 70)], radius=10)
    probs[0][probs[0] > 0] = 0.95
    probs[0][34:, 60:] *= 0.7  # the second object: mean foreground probability 0.665
    for mode in TARGET_CHANNELS:
        maps = probs[:1] if mode == "binary" else probs
        assert decode_instances(maps, mode, threshold=0.5, min_object_prob=0.0).max() == 2
        one = decode_instances(maps, mode, threshold=0.5, min_object_prob=0.8)
        assert one.max() == 1 and one[20, 20] == 1 and one[44, 70] == 0
    blocks = decode_instances(probs, threshold=0.5, min_object_prob=0.8, block=32, margin=16)
    assert blocks.max() == 1 and blocks[20, 20] == 1


def test_decode_drops_small_objects_and_relabels():
    labels = np.zeros((30, 30), np.int32)
    labels[2:4, 2:4] = 7  # 4 px
    labels[10:20, 10:20] = 9
    for mode in TARGET_CHANNELS:
        out = decode_instances(make_targets(labels, mode), mode, min_size=5)
        assert out.max() == 1 and (out == 1).sum() == 100
        assert decode_instances(make_targets(labels, mode), mode, min_size=1).max() == 2


def test_round_trip_sample_data(sample_dir):
    counts = np.zeros(3, int)
    for s in load_training_data(sample_dir):
        r = match_objects(s.labels, decode_instances(make_targets(s.labels)))["0.50"]
        counts += (r["tp"], r["fp"], r["fn"])
    assert counts[0] / counts.sum() >= 0.95


def test_round_trip_shared_data(shared_data):
    files = sorted((shared_data / "dsb2018" / "train" / "masks").glob("*.tif"))[:20]
    tp = total = 0
    for f in files:
        gt = tifffile.imread(f)
        soft = np.stack([ndi.gaussian_filter(c, 1.5) for c in make_targets(gt)])
        r = match_objects(gt, decode_instances(soft))["0.50"]
        tp, total = tp + r["tp"], total + r["tp"] + r["fp"] + r["fn"]
    assert tp / total >= 0.95


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_targets(np.zeros((4, 4), int), "stardist"), "unknown target mode"),
        (lambda: make_targets(np.zeros((2, 4, 4), int)), "2-D"),
        (lambda: make_targets(np.zeros((4, 4))), "integers"),
        (lambda: decode_instances(np.zeros((1, 4, 4))), r"\(3, H, W\)"),
        (lambda: decode_instances(np.zeros((3, 4, 4)), "binary"), r"\(1, H, W\)"),
    ],
)
def test_errors(call, match):
    with pytest.raises(SegQCError, match=match):
        call()


def test_big_images_are_decoded_in_blocks_like_a_whole():
    """Block decoding (for images larger than the block) gives the same objects."""
    rng = np.random.default_rng(1)
    labels = np.zeros((300, 420), np.int32)
    yy, xx = np.mgrid[:300, :420]
    for i, (cy, cx) in enumerate(rng.integers(8, [292, 412], (120, 2)), start=1):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(16, 50)
        labels[disc & (labels == 0)] = i
    probs = ndi.gaussian_filter(make_targets(labels, "instance"), (0, 1, 1))  # network-like
    whole = decode_instances(probs, "instance", min_size=1)
    blocks = decode_instances(probs, "instance", min_size=1, block=128, margin=24)
    assert blocks.max() == whole.max() > 60  # 64-pixel cores: many objects cross a border
    result = match_objects(whole, blocks, thresholds=(0.95,))["0.95"]
    assert result["accuracy"] == 1.0
    assert ((whole > 0) == (blocks > 0)).all()
