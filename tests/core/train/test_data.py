"""Training data: layouts, pairing, DSB masks merged, errors, split, random patches."""

import numpy as np
import pytest
import skimage.io
import tifffile

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.instances.targets import make_targets
from napari_segqc.core.models.normalize import normalize_image
from napari_segqc.core.train.data import (
    PatchSampler,
    Sample,
    check_samples,
    load_dsb,
    load_folder,
    load_training_data,
    samples_from_arrays,
    split_samples,
)


def _sample(name="s", shape=(8, 8), channels=1, labels=None) -> Sample:
    lab = np.zeros(shape, np.int32) if labels is None else labels
    return Sample(np.zeros((channels, *shape), np.float32), lab, name)


def _write_dsb(root, ids=("a1", "b2"), shape=(20, 24)):
    """A tiny DSB folder: RGBA images, one binary PNG per nucleus (two overlap in a1)."""
    for k, i in enumerate(ids):
        (root / i / "images").mkdir(parents=True)
        (root / i / "masks").mkdir()
        img = np.full((*shape, 4), 255, np.uint8)
        img[..., :3] = np.arange(shape[1], dtype=np.uint8)[None, :, None] * (k + 1)
        skimage.io.imsave(root / i / "images" / f"{i}.png", img, check_contrast=False)
        for j, (y, x) in enumerate([(2, 2), (4, 4), (12, 14)]):
            m = np.zeros(shape, np.uint8)
            m[y : y + 5, x : x + 5] = 255
            skimage.io.imsave(root / i / "masks" / f"m{j}.png", m, check_contrast=False)


@pytest.mark.parametrize(
    ("shape", "rgb", "channels"),
    [((10, 12), None, 1), ((10, 12, 3), None, 3), ((10, 12, 4), None, 3), ((10, 12, 3), True, 3)],
)
def test_normalize_image_shapes_and_percentiles(shape, rgb, channels):
    rng = np.random.default_rng(0)
    out = normalize_image(rng.integers(0, 4000, shape).astype(np.uint16), rgb=rgb)
    assert out.shape == (channels, 10, 12) and out.dtype == np.float32
    for c in out:
        lo, hi = np.percentile(c, [1, 99.8])
        assert lo == pytest.approx(0, abs=1e-5) and hi == pytest.approx(1, abs=1e-5)
        assert c.max() > 1  # not clipped


def test_constant_channel_is_zeros():
    img = np.zeros((6, 6, 3), np.uint8)
    img[..., 1] = np.arange(36).reshape(6, 6)
    out = normalize_image(img)
    assert not out[0].any() and not out[2].any() and out[1].max() > 0.9


@pytest.mark.parametrize(("shape", "rgb"), [((2, 3, 4, 5), None), ((6, 6), True)])
def test_normalize_image_rejects_bad_shapes(shape, rgb):
    with pytest.raises(SegQCError, match="shape"):
        normalize_image(np.zeros(shape), rgb=rgb)


@pytest.mark.parametrize(
    ("images", "labels", "names", "channels"),
    [
        ((16, 16), (16, 16), ["layer"], 1),
        ((16, 16, 3), (16, 16), ["layer"], 3),
        ((3, 16, 16), (3, 16, 16), ["layer[0]", "layer[1]", "layer[2]"], 1),
        ((2, 16, 16, 3), (2, 16, 16), ["layer[0]", "layer[1]"], 3),
    ],
)
def test_samples_from_arrays(images, labels, names, channels):
    rng = np.random.default_rng(1)
    lab = rng.integers(0, 5, labels).astype(np.uint16)
    samples = samples_from_arrays(rng.random(images), lab)
    assert [s.name for s in samples] == names
    assert all(s.image.shape == (channels, 16, 16) for s in samples)
    assert all(s.labels.dtype == np.int32 for s in samples)
    np.testing.assert_array_equal(samples[-1].labels, lab.reshape(-1, 16, 16)[-1])


def _nan_image():
    img = np.ones((3, 8, 8))
    img[1, 2, 2] = np.nan
    return img


@pytest.mark.parametrize(
    ("images", "labels", "match"),
    [
        (np.ones((8, 8)), np.zeros((8, 9), int), r"img: .* different sizes"),
        (np.ones((3, 8, 8)), np.zeros((2, 8, 8), int), "do not match"),
        (_nan_image(), np.zeros((3, 8, 8), int), r"img\[1\]: .*NaN"),
        (np.ones((8, 8)), np.full((8, 8), 1.5), "whole numbers"),
        (np.ones((8, 8)), np.full((8, 8), -1), ">= 0"),
        (np.ones((8, 8)), np.full((8, 8), "a"), "integers"),
    ],
)
def test_samples_from_arrays_errors(images, labels, match):
    with pytest.raises(SegQCError, match=match):
        samples_from_arrays(images, labels, name="img")


def test_load_sample_data_folder(sample_dir):
    samples = load_training_data(sample_dir)
    assert [s.name for s in samples] == ["nuclei_01", "nuclei_02", "nuclei_03", "nuclei_04"]
    assert samples[3].image.shape == (1, 520, 696)
    assert samples[1].labels.max() == 49
    assert check_samples(samples) == 1


def test_load_folder_unpaired(tmp_path):
    for side, names in (("images", ["a", "b"]), ("masks", ["a", "c"])):
        (tmp_path / side).mkdir()
        for n in names:
            tifffile.imwrite(tmp_path / side / f"{n}.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(SegQCError, match="no mask for b; no image for c"):
        load_folder(tmp_path / "images", tmp_path / "masks")


def test_load_dsb_merges_masks(tmp_path):
    _write_dsb(tmp_path)
    samples = load_training_data(tmp_path)
    assert [s.name for s in samples] == ["a1", "b2"]
    s = samples[0]
    assert s.image.shape == (3, 20, 24)  # alpha dropped
    assert set(np.unique(s.labels)) == {0, 1, 2, 3}
    assert s.labels[5, 5] == 2  # overlap of masks 1 and 2: the later mask wins
    assert s.labels[2, 2] == 1 and (s.labels == 3).sum() == 25
    assert len(load_dsb(tmp_path)) == 2


def test_unknown_layout(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(SegQCError, match=r"images/ and masks/.*Data Science Bowl"):
        load_training_data(tmp_path)
    with pytest.raises(SegQCError, match="no such folder"):
        load_training_data(tmp_path / "nope")


@pytest.mark.slow
def test_shared_dsb_training_folder(shared_data):
    samples = load_folder(
        shared_data / "dsb2018" / "train" / "images", shared_data / "dsb2018" / "train" / "masks"
    )
    assert len(samples) > 100 and check_samples(samples) == 1


def test_check_samples_errors():
    with pytest.raises(SegQCError, match="no training samples"):
        check_samples([])
    with pytest.raises(SegQCError, match="all masks are empty"):
        check_samples([_sample("a"), _sample("b")])
    objects = np.ones((8, 8), np.int32)
    with pytest.raises(SegQCError, match=r"mix grey and RGB.*convert"):
        check_samples([_sample("a", labels=objects), _sample("b", channels=3)])
    assert check_samples([_sample("a", labels=objects), _sample("b")]) == 1  # a negative is fine


@pytest.mark.parametrize(("n", "fraction", "n_val"), [(20, 0.15, 3), (2, 0.15, 1), (5, 0.9, 4)])
def test_split_sizes_and_determinism(n, fraction, n_val):
    samples = [_sample(str(i)) for i in range(n)]
    train, val = split_samples(samples, fraction, seed=3)
    assert len(val) == n_val and len(train) == n - n_val
    assert {s.name for s in train} | {s.name for s in val} == {str(i) for i in range(n)}
    again = split_samples(samples, fraction, seed=3)
    assert [s.name for s in again[1]] == [s.name for s in val]


def test_split_seed_changes_the_split_and_zero_fraction():
    samples = [_sample(str(i)) for i in range(40)]
    vals = {tuple(s.name for s in split_samples(samples, 0.2, seed=k)[1]) for k in range(4)}
    assert len(vals) > 1
    assert split_samples(samples, 0) == (samples, [])
    with pytest.raises(SegQCError, match="at least 2 samples"):
        split_samples(samples[:1], 0.15)
    with pytest.raises(SegQCError, match=r"\[0, 1\)"):
        split_samples(samples, 1.0)


def _aligned_samples():
    """Samples whose image equals the labels, so crops can be checked for alignment."""
    rng = np.random.default_rng(0)
    out = []
    for i, shape in enumerate([(40, 50), (13, 70), (9, 9)]):
        lab = (rng.random(shape) > 0.5) * rng.integers(1, 9, shape)
        out.append(Sample(lab[None].astype(np.float32), lab.astype(np.int32), str(i)))
    return out


def test_patch_sampler_shapes_alignment_and_padding():
    samples = _aligned_samples()
    targets = [make_targets(s.labels) for s in samples]
    sampler = PatchSampler(samples, targets, 32, seed=1)
    images, tgt = sampler.sample(64)
    assert images.shape == (64, 1, 32, 32) and tgt.shape == (64, 3, 32, 32)
    assert images.dtype == tgt.dtype == np.float32
    # the image is the labels: foreground target == image > 0 wherever the crop is inside the
    # image; padding (reflected image, zero targets) is the only place they may differ
    inside = (tgt[:, 0] > 0) == (images[:, 0] > 0)
    padded = ~inside
    assert inside.mean() > 0.8
    assert not (tgt[:, 0][padded] > 0).any()
    np.testing.assert_array_equal(tgt[:, 0] > 0, (tgt[:, 0] > 0) & (images[:, 0] > 0))


def test_patch_sampler_is_seeded_and_area_weighted():
    samples = _aligned_samples()
    targets = [make_targets(s.labels, "binary") for s in samples]
    a = PatchSampler(samples, targets, 8, seed=5).sample(10)
    b = PatchSampler(samples, targets, 8, seed=5).sample(10)
    c = PatchSampler(samples, targets, 8, seed=6).sample(10)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    sampler = PatchSampler(samples, targets, 8, seed=0)
    counts = np.bincount(sampler._rng.choice(3, size=20000, p=sampler._p), minlength=3)
    np.testing.assert_allclose(counts / 20000, [2000 / 2991, 910 / 2991, 81 / 2991], atol=0.02)


def test_patch_sampler_exact_crops():
    lab = np.arange(1, 1 + 20 * 30, dtype=np.int32).reshape(20, 30)
    s = Sample(lab[None].astype(np.float32), lab, "ramp")
    images, tgt = PatchSampler([s], [lab[None].astype(np.float32)], 7, seed=2).sample(5)
    for img, t in zip(images, tgt, strict=True):
        y, x = divmod(int(img[0, 0, 0]) - 1, 30)
        np.testing.assert_array_equal(img[0], lab[y : y + 7, x : x + 7])
        np.testing.assert_array_equal(t, img)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"patch_size": 0}, "positive"), ({"targets": []}, "1 samples but 0"), ({}, "do not match")],
)
def test_patch_sampler_errors(kwargs, match):
    s = _sample(labels=np.ones((8, 8), np.int32))
    args = {"samples": [s], "targets": [np.zeros((1, 8, 9), np.float32)], "patch_size": 4}
    with pytest.raises(SegQCError, match=match):
        PatchSampler(**(args | kwargs))
