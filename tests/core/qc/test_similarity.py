"""Grey-value similarity (SSIM, RSE, NRMSE, PSNR) against scikit-image, and its normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity

from napari_segqc.core.qc import similarity
from napari_segqc.core.qc.similarity import (
    check_finite,
    fit_to,
    normalize_pair,
    nrmse,
    percentile_normalize,
    psnr,
    rse_map,
    ssim,
)

TOL = 1e-4  # agreement with scikit-image, map and score


def sk_ssim(gt, pred, data_range):
    """scikit-image's SSIM with the settings ours reproduces (float64 reference)."""
    return structural_similarity(
        np.asarray(gt, np.float64),
        np.asarray(pred, np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        full=True,
    )


def smooth_pair(shape, seed=0, noise=0.05):
    """A smooth random field (0..1) and a blurred, noisier copy of it: a restoration-like pair."""
    rng = np.random.default_rng(seed)
    f = ndi.gaussian_filter(rng.normal(size=shape), 3)
    f = (f - f.min()) / (f.max() - f.min())
    gt = f + rng.normal(0, 0.02, shape)
    pred = ndi.gaussian_filter(f, 1) + rng.normal(0, noise, shape)
    return gt, pred


def nuclei_pair(shape=(96, 112), seed=0):
    """Flat bright discs on a dark background: the worst case for float32 variances."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    gt = np.zeros(shape)
    for cy, cx, r in zip(
        rng.uniform(0, shape[0], 6), rng.uniform(0, shape[1], 6), [14] * 6, strict=True
    ):
        gt[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 0.95
    gt += rng.normal(0, 1e-3, shape)
    pred = ndi.gaussian_filter(gt, 0.7) + rng.normal(0, 1e-3, shape)
    return gt, pred


def as_uint(x, dtype, offset=0):
    top = np.iinfo(dtype).max - offset
    return (offset + np.clip(x, 0, 1) * top).astype(dtype)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_identical_inputs(normalize, dtype):
    gt, _ = smooth_pair((40, 52))
    img = as_uint(gt, dtype) if np.dtype(dtype).kind == "u" else gt.astype(dtype)
    score, smap = ssim(img, img.copy(), normalize=normalize, full=True)
    assert score == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(smap, 1.0, atol=1e-5)
    assert not rse_map(img, img, normalize=normalize).any()
    assert nrmse(img, img, normalize=normalize) == 0.0
    assert psnr(img, img, normalize=normalize) == math.inf


@pytest.mark.parametrize("shape", [(64, 64), (37, 129), (11, 40), (150, 23)])
def test_ssim_matches_skimage_float(shape):
    gt, pred = smooth_pair(shape, seed=shape[0])
    ref_score, ref_map = sk_ssim(gt, pred, data_range=1.0)
    score, smap = ssim(gt, pred, normalize=False, data_range=1.0, full=True)
    assert smap.dtype == np.float32 and smap.shape == shape
    assert np.abs(smap - ref_map).max() <= TOL
    assert score == pytest.approx(ref_score, abs=TOL)


@pytest.mark.parametrize(("dtype", "offset"), [(np.uint8, 0), (np.uint16, 0), (np.uint16, 30000)])
def test_ssim_matches_skimage_integer_default_range(dtype, offset):
    gt, pred = smooth_pair((70, 90), seed=3)
    gt, pred = as_uint(gt, dtype, offset), as_uint(pred, dtype, offset)
    data_range = float(gt.max()) - float(gt.min())  # our default without normalisation
    ref_score, ref_map = sk_ssim(gt, pred, data_range)
    score, smap = ssim(gt, pred, normalize=False, full=True)
    assert np.abs(smap - ref_map).max() <= TOL
    assert score == pytest.approx(ref_score, abs=TOL)


@pytest.mark.parametrize("make", [smooth_pair, nuclei_pair])
def test_ssim_normalized_matches_skimage_on_normalized_pair(make):
    gt, pred = make((80, 96))
    gt, pred = as_uint(gt, np.uint8), 1000 + 7.0 * pred  # different units on purpose
    gt_n, pred_n = normalize_pair(gt, pred)
    ref_score, ref_map = sk_ssim(gt_n, pred_n, data_range=1.0)
    score, smap = ssim(gt, pred, full=True)  # normalize=True, data_range 1.0 by default
    assert np.abs(smap - ref_map).max() <= TOL
    assert score == pytest.approx(ref_score, abs=TOL)


def test_float32_cancellation_is_repaired(monkeypatch):
    # flat bright plateaus far from the image mean: plain float32 filtering is off by > 1e-4
    gt, pred = nuclei_pair()
    ref_map = sk_ssim(gt, pred, data_range=1.0)[1]
    smap = ssim(gt, pred, normalize=False, data_range=1.0, full=True)[1]
    assert np.abs(smap - ref_map).max() <= 3e-5
    monkeypatch.setattr(similarity, "_RATIO", np.inf)  # never refine
    raw = ssim(gt, pred, normalize=False, data_range=1.0, full=True)[1]
    assert np.abs(raw - ref_map).max() > TOL


@pytest.mark.parametrize(("ratio", "few"), [(0.0, 0), (1.0, 0), (1.0, 10_000)])
def test_refine_and_exact_paths_match_skimage(monkeypatch, ratio, few):
    # ratio 0 flags every pixel (all end in the per-window path); 1.0 flags a part of them,
    # refined in block passes (few=0) or straight in the per-window path (few large)
    monkeypatch.setattr(similarity, "_RATIO", ratio)
    monkeypatch.setattr(similarity, "_FEW", few)
    monkeypatch.setattr(similarity, "_BLOCK", (16, 16))
    monkeypatch.setattr(similarity, "_CHUNK", 3)
    gt, pred = smooth_pair((45, 70), seed=5)
    ref_score, ref_map = sk_ssim(gt, pred, data_range=1.0)
    score, smap = ssim(gt, pred, normalize=False, data_range=1.0, full=True)
    assert np.abs(smap - ref_map).max() <= (1e-6 if ratio == 0 else TOL)
    assert score == pytest.approx(ref_score, abs=TOL)


def test_blocks_join_seamlessly(monkeypatch):
    monkeypatch.setattr(similarity, "_BLOCK", (16, 24))  # 5 x 2 blocks, the last ones overlap
    monkeypatch.setattr(similarity, "_CHUNK", 3)
    gt, pred = smooth_pair((70, 33), seed=8)
    ref_map = sk_ssim(gt, pred, data_range=1.0)[1]
    smap = ssim(gt, pred, normalize=False, data_range=1.0, full=True)[1]
    assert np.abs(smap - ref_map).max() <= TOL


@pytest.mark.parametrize("normalize", [True, False])
def test_stack_is_per_slice(normalize):
    pairs = [smooth_pair((40, 56), seed=s, noise=0.02 * (s + 1)) for s in range(3)]
    gt = np.stack([g for g, _ in pairs])
    pred = np.stack([p for _, p in pairs])
    score, smap = ssim(gt, pred, normalize=normalize, full=True)
    assert smap.shape == gt.shape
    data_range = 1.0 if normalize else float(gt.max() - gt.min())  # one range for the stack
    ref_scores = []
    for z in range(3):
        g, p = normalize_pair(gt[z], pred[z]) if normalize else (gt[z], pred[z])
        ref_score, ref_map = sk_ssim(g, p, data_range)
        assert np.abs(smap[z] - ref_map).max() <= TOL
        ref_scores.append(ref_score)
    assert score == pytest.approx(np.mean(ref_scores), abs=TOL)
    assert len(set(np.round(ref_scores, 3))) == 3  # the slices really differ


def test_data_range_explicit_wins():
    gt, pred = smooth_pair((40, 40), seed=2)
    gt, pred = 100 * gt, 100 * pred
    default = ssim(gt, pred, normalize=False)
    assert default == pytest.approx(ssim(gt, pred, normalize=False, data_range=np.ptp(gt)))
    ref_score = sk_ssim(gt, pred, data_range=255.0)[0]
    assert ssim(gt, pred, normalize=False, data_range=255.0) == pytest.approx(ref_score, abs=TOL)
    assert ref_score > default  # a wider range makes the same errors look smaller


def test_percentile_normalize():
    x = np.random.default_rng(0).gamma(2.0, 50.0, (100, 100)).astype(np.uint16)
    x_n = percentile_normalize(x)
    assert x_n.dtype == np.float32
    np.testing.assert_allclose(np.percentile(x_n, [0.1, 99.9]), [0.0, 1.0], atol=1e-6)
    assert x_n.min() < 0 and x_n.max() > 1  # no clipping
    np.testing.assert_allclose(
        percentile_normalize(x, 1, 99), percentile_normalize(2 * x + 3, 1, 99), atol=1e-6
    )


@pytest.mark.parametrize("shape", [(50, 60), (3, 50, 60)])
def test_normalize_pair_properties(shape):
    gt = np.random.default_rng(1).normal(10, 3, shape)
    gt_n, pred_n = normalize_pair(gt, 3 * gt + 7)
    assert gt_n.dtype == pred_n.dtype == np.float32
    np.testing.assert_allclose(pred_n, gt_n, atol=1e-5)
    for g in gt_n.reshape(-1, *shape[-2:]):  # each slice on its own
        np.testing.assert_allclose(np.percentile(g, [0.1, 99.9]), [0.0, 1.0], atol=1e-5)


def test_normalize_pair_is_the_least_squares_fit():
    gt, pred = smooth_pair((50, 50), seed=4)
    gt_n, pred_n = normalize_pair(gt, pred)
    a, b = np.polyfit(pred.ravel(), gt_n.ravel().astype(np.float64), 1)
    np.testing.assert_allclose(pred_n, a * pred + b, atol=1e-5)
    np.testing.assert_allclose(fit_to(pred, gt_n), pred_n)


def test_normalize_pair_constant_prediction():
    gt, _ = smooth_pair((30, 30))
    gt_n, pred_n = normalize_pair(gt, np.full(gt.shape, 5.0))
    np.testing.assert_allclose(pred_n, gt_n.mean(), rtol=1e-6)


@pytest.mark.parametrize(("a", "b"), [(2.0, 5.0), (0.01, -3.0), (-1.5, 100.0)])
def test_normalized_scores_are_affine_invariant(a, b):
    gt, pred = smooth_pair((48, 48), seed=6)
    assert ssim(gt, a * pred + b) == pytest.approx(ssim(gt, pred), abs=1e-5)
    np.testing.assert_allclose(rse_map(gt, a * pred + b), rse_map(gt, pred), atol=1e-5)
    assert nrmse(gt, a * pred + b) == pytest.approx(nrmse(gt, pred), rel=1e-4)


def test_rse_map():
    gt, pred = smooth_pair((30, 40), seed=7)
    rse = rse_map(gt, pred, normalize=False)
    assert rse.dtype == np.float32 and rse.shape == gt.shape
    np.testing.assert_array_equal(rse, rse_map(pred, gt, normalize=False))  # symmetric
    np.testing.assert_allclose(rse, np.abs(gt - pred), atol=1e-6)
    gt_n, pred_n = normalize_pair(gt, pred)
    np.testing.assert_allclose(rse_map(gt, pred), np.abs(gt_n - pred_n), atol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_nrmse_and_psnr_match_skimage(dtype):
    gt, pred = smooth_pair((40, 50), seed=9)
    gt, pred = (as_uint(gt, dtype), as_uint(pred, dtype)) if dtype == np.uint8 else (gt, pred)
    rng = float(gt.max()) - float(gt.min())
    ref = normalized_root_mse(gt, pred, normalization="min-max")
    assert nrmse(gt, pred, normalize=False) == pytest.approx(ref, rel=1e-6)
    ref = peak_signal_noise_ratio(gt, pred, data_range=rng)
    assert psnr(gt, pred, normalize=False) == pytest.approx(ref, rel=1e-6)
    gt_n, pred_n = normalize_pair(gt, pred)
    ref = peak_signal_noise_ratio(gt_n, pred_n, data_range=1.0)
    assert psnr(gt, pred) == pytest.approx(ref, rel=1e-5)
    assert nrmse(gt, pred) == pytest.approx(np.sqrt(np.mean((gt_n - pred_n) ** 2)), rel=1e-5)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("value", [0.0, 3.5])
def test_constant_images_give_no_nan(normalize, value):
    const = np.full((20, 24), value)
    other = smooth_pair((20, 24))[0]
    for gt, pred in [(const, const), (const, other), (other, const)]:
        score, smap = ssim(gt, pred, normalize=normalize, full=True)
        assert np.isfinite(score) and np.isfinite(smap).all()
        assert np.isfinite(rse_map(gt, pred, normalize=normalize)).all()
        assert np.isfinite(nrmse(gt, pred, normalize=normalize))
        assert not np.isnan(psnr(gt, pred, normalize=normalize))
    assert not percentile_normalize(const).any()
    assert ssim(const, const, normalize=normalize) == pytest.approx(1.0)


def test_bool_and_int_inputs():
    gt = nuclei_pair()[0] > 0.5
    pred = ndi.binary_dilation(gt)
    ref_score, ref_map = sk_ssim(gt, pred, data_range=1.0)
    score, smap = ssim(gt, pred, normalize=False, full=True)
    assert np.abs(smap - ref_map).max() <= TOL and score == pytest.approx(ref_score, abs=TOL)
    assert ssim(gt.astype(np.int32), pred.astype(np.int32), normalize=False) == pytest.approx(score)
    assert ssim(gt, gt) == pytest.approx(1.0) and 0 < ssim(gt, pred) < 1  # normalised masks
    np.testing.assert_array_equal(percentile_normalize(gt), gt)


@pytest.mark.parametrize(
    ("gt_shape", "pred_shape", "match"),
    [
        ((20, 20), (20, 21), r"same shape.*\(20, 20\).*\(20, 21\)"),
        ((10, 40), (10, 40), r"at least 11x11"),
        ((2, 40, 6), (2, 40, 6), r"at least 11x11"),
        ((40,), (40,), r"2-D"),
        ((2, 2, 20, 20), (2, 2, 20, 20), r"2-D"),
    ],
)
def test_shape_errors(gt_shape, pred_shape, match):
    with pytest.raises(ValueError, match=match):
        ssim(np.zeros(gt_shape), np.zeros(pred_shape))


@pytest.mark.parametrize("func", [ssim, rse_map, nrmse, psnr, normalize_pair])
@pytest.mark.parametrize(
    ("bad", "match"), [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"), (1j, "complex")]
)
def test_value_errors(func, bad, match):
    gt = np.ones((16, 16))
    pred = gt.astype(type(bad) if isinstance(bad, complex) else float)
    pred[3, 4] = bad
    with pytest.raises(ValueError, match=match):
        func(gt, pred)
    with pytest.raises(ValueError, match=r"same shape"):
        func(gt, gt[:, :-1])


def test_check_finite_and_data_range_errors():
    with pytest.raises(ValueError, match="numeric"):
        check_finite(np.array([["a"]]), "gt")
    assert check_finite(np.ones(3, np.uint8), "gt").dtype == np.uint8
    with pytest.raises(ValueError, match="data_range must be positive"):
        ssim(np.ones((16, 16)), np.ones((16, 16)), data_range=0)
