"""Grey-value image similarity for quality control: SSIM (with its map), RSE map, NRMSE, PSNR.

The scores follow ZeroCostDL4Mic's QC: the ground truth is percentile-normalised and the
prediction mapped onto it by least squares (:func:`normalize_pair`) before comparing. SSIM is
scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)`` computed with torch (depthwise separable convolutions), several
times faster and within 1e-4 of it. Images are 2-D ``(Y, X)`` or stacks ``(Z, Y, X)``; windows
are always 2-D, per slice.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

_SIGMA, _TRUNCATE = 1.5, 3.5
_RADIUS = int(_TRUNCATE * _SIGMA + 0.5)  # 5, as scipy.ndimage.gaussian_filter
_WIN = 2 * _RADIUS + 1  # 11
_K1, _K2 = 0.01, 0.03
_BLOCK = (64, 256)  # output rows, columns per block: blocks bound memory and give local references
_CHUNK = 16  # blocks filtered in one batched call
_ROUNDS = 3  # block passes, each around a better reference, before the per-window fallback
_FEW = 256  # flagged pixels in a block below which the per-window fallback is cheaper
# float32 local variances lose ~eps * (local mean - reference)^2; where that exceeds _RATIO *
# (vx + vy + C2) the pixel is recomputed. Trusted pixels measured within ~3 * eps * _RATIO = 2e-5.
_RATIO = 64.0


def check_finite(x: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``x`` as a real array (bool as uint8); ValueError if complex, non-numeric, NaN/inf."""
    x = np.asarray(x)
    if x.dtype == bool:
        return x.view(np.uint8)
    if np.iscomplexobj(x):
        raise ValueError(f"{name} is complex ({x.dtype}); pass a real-valued image")
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name} has data type {x.dtype}; pass a numeric image")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values; fix or mask them first")
    return x


def _pair(gt, pred, *, min_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"gt and pred must have the same shape, got {gt.shape} and {pred.shape}")
    if gt.ndim not in (2, 3):
        raise ValueError(f"need 2-D (Y, X) images or (Z, Y, X) stacks, got shape {gt.shape}")
    if min(gt.shape[-2:]) < min_size:
        raise ValueError(
            f"images must be at least {min_size}x{min_size} pixels (the SSIM Gaussian window, "
            f"sigma {_SIGMA}), got shape {gt.shape}"
        )
    return check_finite(gt, "gt"), check_finite(pred, "pred")


def percentile_normalize(x: np.ndarray, low: float = 0.1, high: float = 99.9) -> np.ndarray:
    """Map the ``low`` and ``high`` percentiles of ``x`` to 0 and 1 (no clipping).

    Returns float32. A constant image gives zeros; if the two percentiles coincide but the image
    is not constant, its min and max are used instead.
    """
    x = check_finite(x, "image")
    lo, hi = np.percentile(x, [low, high])
    if hi <= lo:
        lo, hi = float(x.min()), float(x.max())
        if hi <= lo:
            return np.zeros(x.shape, np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32)


def fit_to(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares affine map ``a * pred + b`` of ``pred`` onto ``target`` (float32).

    ``a = cov(pred, target) / var(pred)``, ``b = mean(target) - a * mean(pred)``; a constant
    ``pred`` gives ``a = 0``, i.e. the mean of ``target`` everywhere.
    """
    p = check_finite(pred, "pred").astype(np.float64)
    t = check_finite(target, "target").astype(np.float64)
    mp, mt = p.mean(), t.mean()
    a = 0.0 if p.max() == p.min() else float(((p - mp) * (t - mt)).mean() / p.var())
    return (a * p + (mt - a * mp)).astype(np.float32)


def normalize_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalise a ground truth and a prediction the ZeroCostDL4Mic way (float32 pair).

    ``gt_n = percentile_normalize(gt, 0.1, 99.9)`` and ``pred_n = fit_to(pred, gt_n)``, the
    least-squares affine fit ``a * pred + b`` onto ``gt_n``. This is CSBDeep's ``norm_minmse``
    as used by ZeroCostDL4Mic's QC, except that ``norm_minmse`` also centres both images; we keep
    ``gt_n`` uncentred so the maps stay in the units of the normalised ground truth. The RSE map
    is identical; SSIM's luminance term uses the real mean of ``gt_n``. Stacks ``(Z, Y, X)`` are
    normalised slice by slice. Identical inputs give identical outputs.

    References
    ----------
    .. [1] von Chamier et al., "Democratising deep learning for microscopy with ZeroCostDL4Mic",
       Nat. Commun. 12, 2276 (2021). https://doi.org/10.1038/s41467-021-22518-0
    .. [2] Weigert et al., "Content-aware image restoration", Nat. Methods 15, 1090 (2018).
    """
    gt, pred = _pair(gt, pred)
    if gt.ndim == 3:
        pairs = [normalize_pair(g, p) for g, p in zip(gt, pred, strict=True)]
        return np.stack([g for g, _ in pairs]), np.stack([p for _, p in pairs])
    gt_n = percentile_normalize(gt)
    # identical inputs stay identical (exact zeros in the RSE map, PSNR inf), not just close
    return gt_n, gt_n.copy() if np.array_equal(gt, pred) else fit_to(pred, gt_n)


def _prepared(gt, pred, normalize: bool, data_range: float | None, min_size: int = 1):
    """Shape-check, validate and (optionally) normalise a pair; resolve the data range."""
    gt, pred = _pair(gt, pred, min_size=min_size)
    if normalize:
        gt, pred = normalize_pair(gt, pred)
    else:
        gt, pred = (v if v.dtype == np.float64 else v.astype(np.float32) for v in (gt, pred))
    if data_range is None:
        data_range = 1.0 if normalize else float(gt.max()) - float(gt.min()) or 1.0
    data_range = float(data_range)
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    return gt, pred, data_range


class _Setup(NamedTuple):
    c1: float
    c2: float
    ox: float  # slice means subtracted before filtering (added back for the luminance term)
    oy: float
    kv: torch.Tensor  # vertical and horizontal Gaussian taps, 5 depthwise channels
    kh: torch.Tensor


def _gaussian() -> np.ndarray:
    t = np.arange(-_RADIUS, _RADIUS + 1, dtype=np.float64)
    g = np.exp(-0.5 * t * t / _SIGMA**2)  # as scipy.ndimage's Gaussian kernel
    return g / g.sum()


def _kernels() -> tuple[torch.Tensor, torch.Tensor]:
    w = torch.from_numpy(_gaussian().astype(np.float32)).repeat(5, 1)[:, None]
    cl = torch.channels_last
    return w[..., None].contiguous(memory_format=cl), w[:, :, None].contiguous(memory_format=cl)


def _ssim_block(x, y, cx, cy, k: _Setup):
    """SSIM map of padded blocks ``(N, h + 10, w + 10)``, filtered around references ``cx, cy``.

    Subtracting a reference leaves variances unchanged but limits float32 cancellation in
    E[x^2] - E[x]^2. Returns the map, a mask of pixels not trusted in float32, and the local
    means (centred units).
    """
    n, h, w = x.shape
    st = torch.empty((n, h, w, 5)).permute(0, 3, 1, 2)  # channels_last: 5 quantities, one conv
    a, b = st[:, 0], st[:, 1]
    torch.sub(x, cx, out=a)
    torch.sub(y, cy, out=b)
    torch.mul(a, a, out=st[:, 2])
    torch.mul(b, b, out=st[:, 3])
    torch.mul(a, b, out=st[:, 4])
    f = F.conv2d(F.conv2d(st, k.kv, groups=5), k.kh, groups=5).contiguous()
    ux, uy, vx, vy, vxy = f.unbind(1)  # E[x], E[y], E[x^2], E[y^2], E[xy] until updated below
    uxx, uyy = ux * ux, uy * uy
    vxy.addcmul_(ux, uy, value=-1)
    den = vx.sub_(uxx).add_(vy.sub_(uyy)).add_(k.c2)  # vx + vy + C2
    bad = uxx.add_(uyy) > den * _RATIO
    ux, uy = ux.add_(cx), uy.add_(cy)
    mx, my = ux + k.ox, uy + k.oy  # back in the image's own units for the luminance term
    num = (mx * my).mul_(2).add_(k.c1).mul_(vxy.mul_(2).add_(k.c2))
    return num.div_(mx.square_().add_(my.square_()).add_(k.c1).mul_(den)), bad, ux, uy


def _ssim_slice(x: np.ndarray, y: np.ndarray, data_range: float, kern) -> torch.Tensor:
    """SSIM map of one 2-D slice, block by block, each filtered around a local reference.

    Pixels not trusted in float32 are recomputed around the median local mean of the untrusted
    pixels of their block (up to ``_ROUNDS`` passes), or window by window (:func:`_exact`).
    """
    h, w = x.shape
    nr, nc = -(-h // _BLOCK[0]), -(-w // _BLOCK[1])
    bh, bw = -(-h // nr), -(-w // nc)  # equal blocks; the last ones overhang by < nr, nc pixels
    ox, oy = float(x.mean(dtype=np.float64)), float(y.mean(dtype=np.float64))
    # scipy's mode "reflect" (used by scikit-image) is numpy's "symmetric" padding
    pad = ((_RADIUS, _RADIUS + nr * bh - h), (_RADIUS, _RADIUS + nc * bw - w))
    xp, yp = (
        torch.from_numpy(np.pad((v - o).astype(np.float32, copy=False), pad, mode="symmetric"))
        for v, o in ((x, ox), (y, oy))
    )
    k = _Setup((_K1 * data_range) ** 2, (_K2 * data_range) ** 2, ox, oy, *kern)
    xt, yt = (v.unfold(0, bh + 2 * _RADIUS, bh).unfold(1, bw + 2 * _RADIUS, bw) for v in (xp, yp))
    s, bad = torch.empty((nr * bh, nc * bw)), torch.zeros((nr * bh, nc * bw), dtype=torch.bool)
    bad[:h, :w] = True  # still to compute (or not trusted yet)
    s4, bad4 = (v.view(nr, bh, nc, bw).transpose(1, 2) for v in (s, bad))  # (nr, nc, bh, bw)
    # first pass: runs of blocks along a row (views, no copies), around their subsampled medians
    todo = [(ids, None) for row in torch.arange(nr * nc).view(nr, nc) for ids in row.split(_CHUNK)]
    for first in [True] + [False] * (_ROUNDS - 1):
        left = []
        for ids, ref in todo:
            r, c = divmod(int(ids[0]), nc)
            at = (r, slice(c, c + len(ids))) if first else (ids // nc, ids % nc)
            xb, yb = xt[at], yt[at]
            if first:
                ref = torch.stack([v[:, ::4, ::4].flatten(1).median(1).values for v in (xb, yb)])
            sb, fb, ux, uy = _ssim_block(xb, yb, ref[0].view(-1, 1, 1), ref[1].view(-1, 1, 1), k)
            need = bad4[at]
            s4[at] = sb if first else torch.where(need & ~fb, sb, s4[at])
            bad4[at] = need = need & fb
            more = need.flatten(1).sum(1) > _FEW  # blocks with a few left: see _exact
            if more.any():  # next reference: the median local mean of the untrusted pixels
                u = (torch.where(need[more], u[more], torch.nan).flatten(1) for u in (ux, uy))
                left.append((ids[more], torch.stack([v.nanmedian(1).values for v in u])))
        todo = left
    if bad.any():
        _exact(xp, yp, s, bad, k)
    return s[:h, :w].contiguous()


def _exact(xp, yp, s, bad, k: _Setup, chunk: int = 1 << 14) -> None:
    """SSIM of the pixels flagged in ``bad``, window by window with two-pass (exact) moments."""
    rr, cc = torch.nonzero(bad, as_tuple=True)
    w2 = torch.from_numpy(np.outer(_gaussian(), _gaussian()).ravel().astype(np.float32))
    wp = xp.shape[1]
    offsets = (torch.arange(_WIN)[:, None] * wp + torch.arange(_WIN)).ravel()
    for i in range(0, rr.numel(), chunk):
        r, c = rr[i : i + chunk], cc[i : i + chunk]
        x, y = (v.view(-1)[(r * wp + c)[:, None] + offsets] for v in (xp, yp))
        mx, my = x @ w2, y @ w2
        x, y = x - mx[:, None], y - my[:, None]  # no cancellation: centred per window
        vx, vy, vxy = (x * x) @ w2, (y * y) @ w2, (x * y) @ w2
        mx, my = mx + k.ox, my + k.oy
        num = (2 * mx * my + k.c1) * (2 * vxy + k.c2)
        s[r, c] = num / ((mx * mx + my * my + k.c1) * (vx + vy + k.c2))


def ssim(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    data_range: float | None = None,
    normalize: bool = True,
    full: bool = False,
) -> float | tuple[float, np.ndarray]:
    """Structural similarity of ``pred`` to ``gt``, with its map if ``full``.

    Equal (within 1e-4) to ``skimage.metrics.structural_similarity(gt, pred,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=...)``: Gaussian
    window sigma 1.5 truncated at 3.5 sigma (11 x 11), ``K1=0.01``, ``K2=0.03``, borders
    mirrored (scipy's ``mode="reflect"``), mean taken without a border of 5 pixels. Computed
    with separable depthwise torch convolutions in float32, block by block (bounded memory);
    pixels where float32 cancellation could exceed ~4e-5 are recomputed.

    Parameters
    ----------
    gt, pred : ndarray
        Ground truth and prediction, same shape: 2-D ``(Y, X)`` or a stack ``(Z, Y, X)``,
        each side at least 11 x 11. Any real dtype.
    data_range : float, optional
        Range of the data. Default: 1.0 with ``normalize``, else ``gt.max() - gt.min()``
        (1.0 if that is 0).
    normalize : bool
        Normalise the pair first with :func:`normalize_pair` (ZeroCostDL4Mic's QC).
    full : bool
        Also return the SSIM map.

    Returns
    -------
    score : float
        Mean SSIM (for a stack: the mean over slices of each slice's score).
    map : ndarray of float32, same shape as ``gt``
        Only if ``full``. Windows are 2-D, per slice.

    Raises
    ------
    ValueError
        Shapes differ, an image is smaller than the window, or holds NaN, inf or complex values.

    References
    ----------
    .. [1] Wang, Bovik, Sheikh and Simoncelli, "Image quality assessment: from error
       visibility to structural similarity", IEEE Trans. Image Process. 13, 600 (2004).
       https://doi.org/10.1109/TIP.2003.819861
    .. [2] scikit-image, ``skimage.metrics.structural_similarity``.
    """
    gt, pred, data_range = _prepared(gt, pred, normalize, data_range, min_size=_WIN)
    kern, stack = _kernels(), gt.ndim == 3
    crop = (slice(_RADIUS, -_RADIUS),) * 2  # as scikit-image: the mean skips the border
    scores, maps = [], []
    with torch.inference_mode():
        for g, p in zip(gt, pred, strict=True) if stack else [(gt, pred)]:
            m = _ssim_slice(g, p, data_range, kern).numpy()
            scores.append(m[crop].mean(dtype=np.float64))
            maps += [m] if full else []
    score = float(np.mean(scores))
    return (score, np.stack(maps) if stack else maps[0]) if full else score


def rse_map(gt: np.ndarray, pred: np.ndarray, *, normalize: bool = True) -> np.ndarray:
    """Root squared error per pixel, ``|gt_n - pred_n|`` (float32), as ZeroCostDL4Mic shows it.

    With ``normalize`` the pair goes through :func:`normalize_pair` first.
    """
    gt, pred, _ = _prepared(gt, pred, normalize, None)
    return np.abs(np.subtract(gt, pred, dtype=np.float64)).astype(np.float32)


def nrmse(gt: np.ndarray, pred: np.ndarray, *, normalize: bool = True) -> float:
    """Root mean squared error divided by the data range of ``gt``.

    The range is 1.0 after normalisation (:func:`normalize_pair`), else ``gt.max() - gt.min()``
    (1.0 if that is 0).

    References
    ----------
    .. [1] scikit-image, ``skimage.metrics.normalized_root_mse`` (``normalization="min-max"``).
    """
    gt, pred, data_range = _prepared(gt, pred, normalize, None)
    mse = np.mean(np.square(np.subtract(gt, pred, dtype=np.float64)))
    return float(math.sqrt(mse) / data_range)


def psnr(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    data_range: float | None = None,
    normalize: bool = True,
) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``; inf if identical.

    ``data_range`` defaults as in :func:`ssim`: 1.0 with ``normalize``, else the range of ``gt``.

    References
    ----------
    .. [1] scikit-image, ``skimage.metrics.peak_signal_noise_ratio``.
    """
    gt, pred, data_range = _prepared(gt, pred, normalize, data_range)
    mse = float(np.mean(np.square(np.subtract(gt, pred, dtype=np.float64))))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)
