"""Batched augmentation keeps images and targets aligned and never interpolates target values.

Images encode each pixel's own coordinate (channel 0 = y, channel 1 = x) and targets a code of
the same coordinate, unique per sample, so after augmentation each pixel says where it came from.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.train.augment import AugmentConfig, augment_batch, augment_sample_numpy

GEOMETRIC = AugmentConfig(intensity=False)
WARPS = {
    "affine": AugmentConfig(intensity=False, affine=True, spatial_p=1.0),
    "elastic": AugmentConfig(intensity=False, elastic=True, elastic_spacing=8, spatial_p=1.0),
    "both": AugmentConfig(affine=True, elastic=True, elastic_spacing=8, intensity=False),
}


def coded_batch(b: int, h: int, w: int, dtype=torch.float32):
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    images = torch.stack([yy, xx]).to(dtype).expand(b, 2, h, w).clone()
    code = (yy * w + xx)[None] + (h * w * torch.arange(b))[:, None, None]
    targets = torch.stack([code, code % 5], dim=1).to(dtype)
    return images, targets


def decode(targets: torch.Tensor, h: int, w: int):
    """(sample, y, x) each target pixel came from."""
    code = targets[:, 0].round().long()
    return code // (h * w), (code % (h * w)) // w, code % w


def run(config, b=16, h=16, w=16, seed=0, dtype=torch.float32):
    images, targets = coded_batch(b, h, w, dtype)
    gen = torch.Generator().manual_seed(seed)
    return images, targets, *augment_batch(images, targets, config, generator=gen)


def assert_values_exact(targets, out_targets):
    for src, dst in zip(targets, out_targets, strict=True):
        assert torch.isin(dst[0], src[0]).all(), "target value not from the same sample"
    # channels move together: channel 1 is still the same function of channel 0's code
    assert torch.equal(out_targets[:, 1], (out_targets[:, 0].long() % 5).to(out_targets.dtype))


@pytest.mark.parametrize(
    "config",
    [
        GEOMETRIC,
        AugmentConfig(intensity=False, rot90=False),
        AugmentConfig(intensity=False, flips=False),
    ],
    ids=["flips+rot90", "flips", "rot90"],
)
def test_flips_rot90_permute_pixels_and_keep_pairs(config):
    h = w = 16
    _images, targets, out_i, out_t = run(config, h=h, w=w)
    assert_values_exact(targets, out_t)
    sample, y, x = decode(out_t, h, w)
    assert torch.equal(sample, torch.arange(16)[:, None, None].expand_as(sample))
    assert torch.equal(out_i[:, 0].long(), y) and torch.equal(out_i[:, 1].long(), x)
    # a permutation: every pixel of the sample appears once
    assert torch.equal(out_t[:, 0].flatten(1).sort(1).values, targets[:, 0].flatten(1))


def dihedral_index(out: torch.Tensor, src: torch.Tensor) -> int:
    variants = [torch.rot90(f, k, dims=(-2, -1)) for f in (src, src.flip(-1)) for k in range(4)]
    hits = [i for i, v in enumerate(variants) if torch.equal(v, out)]
    assert len(hits) == 1
    return hits[0]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (GEOMETRIC, set(range(8))),
        (AugmentConfig(rot90=False), {0, 2, 4, 6}),  # identity, rot180, flip x, flip y
        (AugmentConfig(flips=False), {0, 1, 2, 3}),  # quarter turns only
    ],
    ids=["flips+rot90", "flips", "rot90"],
)
def test_dihedral_transforms_all_appear(config, expected):
    _images, targets, _out_i, out_t = run(config, b=128)
    seen = {dihedral_index(o, s) for o, s in zip(out_t, targets, strict=True)}
    assert seen == expected


@pytest.mark.parametrize("name", list(WARPS))
@pytest.mark.parametrize(("h", "w"), [(24, 24), (16, 28)])
def test_warps_sample_targets_nearest_on_the_image_grid(name, h, w):
    config = WARPS[name]
    if h != w:
        config = replace(config, rot90=False)
    _images, targets, out_i, out_t = run(config, h=h, w=w, seed=3)
    assert_values_exact(targets, out_t)
    sample, y, x = decode(out_t, h, w)
    assert torch.equal(sample, torch.arange(16)[:, None, None].expand_as(sample))
    # bilinear of a linear ramp gives the sampled position; nearest is within half a pixel
    assert (out_i[:, 0] - y).abs().max() <= 0.5 + 1e-3
    assert (out_i[:, 1] - x).abs().max() <= 0.5 + 1e-3
    if "affine" in name or name == "both":
        assert not torch.equal(out_t, targets)  # something moved


def test_intensity_changes_images_never_targets():
    config = AugmentConfig(flips=False, rot90=False, noise_std=0.03)
    images, targets, out_i, out_t = run(config)
    assert torch.equal(out_t, targets)
    assert not torch.allclose(out_i, images)
    assert torch.isfinite(out_i).all()
    per_sample = (out_i - images).flatten(1).abs().mean(1)
    assert (per_sample > 0).all() and per_sample.unique().numel() == 16  # each its own jitter


def test_intensity_handles_negative_and_constant_images():
    images = torch.cat([torch.randn(2, 1, 8, 8), torch.full((1, 1, 8, 8), -0.5)])
    targets = torch.zeros(3, 1, 8, 8)
    gen = torch.Generator().manual_seed(1)
    out, _ = augment_batch(images, targets, AugmentConfig(), generator=gen)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("config", [AugmentConfig(noise_std=0.03), WARPS["both"]])
def test_same_seed_same_result_other_seed_differs(config):
    a = run(config, seed=7)[2:]
    b = run(config, seed=7)[2:]
    c = run(config, seed=8)[2:]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("b", "h", "w"), [(1, 16, 16), (5, 12, 20)])
def test_shapes_dtypes_kept_inputs_untouched(dtype, b, h, w):
    config = AugmentConfig(rot90=h == w, affine=True, elastic=True, noise_std=0.03)
    images, targets, out_i, out_t = run(config, b=b, h=h, w=w, dtype=dtype)
    assert out_i.shape == images.shape and out_t.shape == targets.shape
    assert out_i.dtype == out_t.dtype == dtype
    assert torch.equal(images, coded_batch(b, h, w, dtype)[0])  # not modified in place


def test_rot90_needs_square_patches():
    with pytest.raises(SegQCError, match="square"):
        run(AugmentConfig(), h=12, w=20)


def test_mismatched_batches_raise():
    gen = torch.Generator()
    with pytest.raises(SegQCError, match="differ in size"):
        augment_batch(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 9), generator=gen)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_with_cpu_or_cuda_generator():
    images, targets = coded_batch(8, 16, 16)
    for gen in (torch.Generator(), torch.Generator(device="cuda")):
        out_i, out_t = augment_batch(
            images.cuda(), targets.cuda(), WARPS["both"], generator=gen.manual_seed(0)
        )
        assert out_i.device.type == out_t.device.type == "cuda"
        assert_values_exact(targets, out_t.cpu())


def test_numpy_reference_keeps_pairs():
    images, targets = coded_batch(32, 16, 16)
    rng = np.random.default_rng(0)
    seen = set()
    for img, tgt in zip(images.numpy(), targets.numpy(), strict=True):
        out_i, out_t = augment_sample_numpy(img, tgt, rng, AugmentConfig(intensity=False))
        assert out_i.shape == img.shape and out_t.shape == tgt.shape
        assert np.array_equal(out_t[0] % 256, out_i[0] * 16 + out_i[1])
        assert np.array_equal(np.sort(out_t[0], None), np.sort(tgt[0], None))
        seen.add((out_t[0] % 256).tobytes())
    assert len(seen) > 4
    out_i, out_t = augment_sample_numpy(images[0].numpy(), targets[0].numpy(), rng)
    assert out_i.dtype == np.float32 and np.array_equal(
        np.sort(out_t, None), np.sort(targets[0].numpy(), None)
    )


def test_scale_augmentation_zooms_both_ways_and_keeps_pairs():
    """Zoom is drawn log-uniformly: over (0.5, 2) objects shrink as often as they grow."""
    from napari_segqc.core.train.augment import with_zoom

    config = replace(with_zoom(GEOMETRIC, (0.5, 2.0)), spatial_p=1.0, shear=0.0)
    _, targets, out_images, out_targets = run(config, b=64, h=32, w=32)
    assert_values_exact(targets, out_targets)
    # a zoom z maps a pixel step to 1/z source pixels (in any direction after the rotation):
    # the images hold each pixel's source coordinates
    dy = out_images[:, 0, 16, 17] - out_images[:, 0, 16, 15]
    dx = out_images[:, 1, 16, 17] - out_images[:, 1, 16, 15]
    step = torch.hypot(dy, dx) / 2
    shrunk, grown = int((step > 1.15).sum()), int((step < 0.87).sum())
    assert shrunk > 10 and grown > 10, (shrunk, grown)
    assert with_zoom(GEOMETRIC, (1, 1)).affine is False
    with pytest.raises(SegQCError, match="zoom range"):
        with_zoom(GEOMETRIC, (2, 1))


def test_colour_jitter_and_grey_touch_colour_images_only():
    config = AugmentConfig(
        flips=False, rot90=False, intensity=False, channel_jitter=0.3, grey_p=0.5
    )
    gen = torch.Generator().manual_seed(0)
    rgb = torch.rand(32, 3, 8, 8)
    targets = torch.zeros(32, 3, 8, 8)
    out, out_t = augment_batch(rgb, targets, config, generator=gen)
    assert torch.equal(out_t, targets)
    grey = [(o[0] == o[1]).all() and (o[1] == o[2]).all() for o in out]
    assert 5 < sum(grey) < 27  # about half turned grey
    assert not torch.allclose(out, rgb)
    one = torch.rand(4, 1, 8, 8)  # a grey batch: untouched
    same, _ = augment_batch(one, targets[:4], config, generator=gen)
    assert torch.equal(same, one)
