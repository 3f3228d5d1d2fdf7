"""Batched augmentation on the training device that keeps images and targets aligned.

Images (B, C, H, W) get geometric and intensity changes; targets (B, K, H, W) (foreground,
boundary, distance maps) get the same geometric change only, and their values are only moved,
never interpolated: flips and 90° rotations are exact permutations, affine/elastic warps sample
targets with ``mode="nearest"`` on the very grid used (bilinear) for the images.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SegQCError

__all__ = ["AugmentConfig", "augment_batch", "augment_sample_numpy"]


@dataclass(frozen=True)
class AugmentConfig:
    """What to randomise; ranges are per sample.

    ``rot90`` needs square patches (``augment_batch`` raises otherwise). ``noise_std`` is the
    largest Gaussian noise std (each sample draws its own in ``[0, noise_std]``; 0 = off).
    ``spatial_p`` is the chance that a sample gets the affine/elastic warp when enabled;
    ``elastic_alpha`` is the displacement std in pixels on a control grid ``elastic_spacing``
    pixels apart (smoothly upsampled). ``zoom`` is drawn log-uniformly (a random scale change:
    ``(0.5, 2)`` halves or doubles objects equally often). Colour images only:
    ``channel_jitter`` scales each channel by ``exp(U(-j, j))`` and shifts it by ``U(-j, j) / 2``
    (stain colour changes), and ``grey_p`` is the chance that a sample's channels are all
    replaced by their mean (grey images given as colour).
    """

    flips: bool = True
    rot90: bool = True
    intensity: bool = True
    scale: tuple[float, float] = (0.8, 1.2)
    shift: float = 0.1
    gamma: tuple[float, float] = (0.8, 1.25)
    noise_std: float = 0.0
    affine: bool = False
    zoom: tuple[float, float] = (0.85, 1.15)
    shear: float = 0.1
    elastic: bool = False
    elastic_alpha: float = 4.0
    elastic_spacing: int = 32
    spatial_p: float = 0.5
    channel_jitter: float = 0.0
    grey_p: float = 0.0


#: The random zoom range of scale augmentation by default (``segqc train --zoom``, the Train
#: dock): objects up to ~1.4x smaller or larger than in the training images.
DEFAULT_ZOOM = (0.7, 1.4)


def with_zoom(config: AugmentConfig, zoom: tuple[float, float]) -> AugmentConfig:
    """``config`` with scale augmentation over ``zoom`` (``(1, 1)``: none). Raises a
    :class:`SegQCError` for a range that is not ``0 < low <= high``."""
    from dataclasses import replace

    lo, hi = zoom
    if not 0 < lo <= hi:
        raise SegQCError(f"zoom range must be 0 < low <= high, got {lo}, {hi}")
    if lo == hi == 1:
        return replace(config, affine=False)
    return replace(config, affine=True, zoom=(float(lo), float(hi)))


@functools.lru_cache(maxsize=8)
def _dihedral_table(h: int, w: int, device: torch.device) -> torch.Tensor:
    """Flat source index (8, H*W) of each output pixel for code = 4 transpose + 2 flip_v + flip_h:
    a transpose, then vertical and horizontal flips (together: all 8 symmetries of a square)."""
    code = torch.arange(8 if h == w else 4, device=device).view(-1, 1, 1)
    t, fv, fh = code // 4, code // 2 % 2, code % 2
    i = torch.arange(h, device=device).view(1, h, 1)
    j = torch.arange(w, device=device).view(1, 1, w)
    a = i + fv * (h - 1 - 2 * i)
    b = j + fh * (w - 1 - 2 * j)
    return ((1 - t) * (a * w + b) + t * (b * w + a)).flatten(1)


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    # one gather beats torch.where per step (values are copied, never computed)
    b, c, h, w = x.shape
    return x.flatten(2).gather(2, index[:, None].expand(b, c, h * w)).view(b, c, h, w)


def _intensity(
    x: torch.Tensor, config: AugmentConfig, u: torch.Tensor, n: torch.Tensor | None
) -> torch.Tensor:
    """Contrast, brightness and gamma jitter; ``u`` is (B, 4) uniform in [0, 1)."""
    lo_s, hi_s = config.scale
    scale = (lo_s + (hi_s - lo_s) * u[:, 0]).view(-1, 1, 1, 1)
    shift = (config.shift * (2 * u[:, 1] - 1)).view(-1, 1, 1, 1)
    lo_g, hi_g = math.log(config.gamma[0]), math.log(config.gamma[1])
    gamma = torch.exp(lo_g + (hi_g - lo_g) * u[:, 2]).view(-1, 1, 1, 1)
    # gamma on normalised values (may be negative): apply it within each sample's own range
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    span = (x.amax(dim=(1, 2, 3), keepdim=True) - lo).clamp_min(1e-6)
    # u ** gamma as exp(gamma * log u) (several times faster on CPU; log 0 = -inf gives 0)
    x = (x - lo).div_(span).clamp_(0, 1).log_().mul_(gamma).exp_()
    x = x.mul_(span * scale).add_(lo * scale + shift)
    if n is not None:
        x = x.add_(n * (config.noise_std * u[:, 3]).view(-1, 1, 1, 1))
    return x


def _warp_grid(
    config: AugmentConfig, shape: torch.Size, u: torch.Tensor, coarse: torch.Tensor | None
) -> torch.Tensor:
    """Sampling grid (B, H, W, 2) for affine and/or elastic warps; ``u`` is (B, 4) uniform."""
    b, _, h, w = shape
    eye = torch.eye(2, device=u.device).expand(b, 2, 2)
    on = (u[:, 3] < config.spatial_p).view(-1, 1, 1)
    if config.affine:
        angle = 2 * math.pi * u[:, 0]
        lo_z, hi_z = math.log(config.zoom[0]), math.log(config.zoom[1])
        zoom = torch.exp(lo_z + (hi_z - lo_z) * u[:, 1])
        shear = config.shear * (2 * u[:, 2] - 1)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        rot = torch.stack([cos, -sin, sin, cos], dim=1).view(-1, 2, 2)
        shr = torch.stack([torch.ones_like(shear), shear, torch.zeros_like(shear)], dim=1)
        shr = torch.cat([shr, torch.ones_like(shear)[:, None]], dim=1).view(-1, 2, 2)
        # rotate in pixel units (true angles on non-square patches): D^-1 R S D
        d = torch.tensor([w / 2.0, h / 2.0], device=u.device)
        mat = (rot @ shr) * d.view(1, 1, 2) / d.view(1, 2, 1)
        mat = torch.where(on, mat, eye)
    else:
        mat = eye
    theta = torch.cat([mat, torch.zeros(b, 2, 1, device=u.device)], dim=2)
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    if coarse is not None:
        disp = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
        disp = disp * config.elastic_alpha * on.view(-1, 1, 1, 1)
        scale = torch.tensor([2.0 / w, 2.0 / h], device=u.device).view(1, 2, 1, 1)
        grid = grid + (disp * scale).permute(0, 2, 3, 1)
    return grid


def _rand(generator: torch.Generator, device: torch.device, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _randn(generator: torch.Generator, device: torch.device, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def augment_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    config: AugmentConfig | None = None,
    *,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly augment a batch of image/target patches, per sample, without Python loops.

    Parameters
    ----------
    images : (B, C, H, W) float tensor, percentile-normalised.
    targets : (B, K, H, W) float tensor; values are only moved, never interpolated.
    config : what to randomise (defaults: flips, 90° rotations, intensity jitter).
    generator : source of randomness; best on the batch's device (a CPU generator works, its
        random numbers are copied over). The same seed gives the same result.

    Returns
    -------
    images, targets : new tensors of the same shape, dtype and device.
    """
    config = config or AugmentConfig()
    if images.ndim != 4 or targets.ndim != 4 or images.shape[0] != targets.shape[0]:
        raise SegQCError(
            f"augment_batch needs (B, C, H, W) images and (B, K, H, W) targets, "
            f"got {tuple(images.shape)} and {tuple(targets.shape)}"
        )
    if images.shape[-2:] != targets.shape[-2:]:
        raise SegQCError(
            f"image and target patches differ in size: {tuple(images.shape[-2:])} vs "
            f"{tuple(targets.shape[-2:])}"
        )
    b, _, h, w = images.shape
    if config.rot90 and h != w:
        raise SegQCError(f"rot90 needs square patches, got {h} x {w}; set rot90=False")
    dev, dtype = images.device, images.dtype
    work = torch.promote_types(dtype, torch.float32)  # compute images in at least float32
    # draw everything in a fixed order so a seed always gives the same augmentation
    bits = _rand(generator, dev, b, 4) < 0.5
    u_int = _rand(generator, dev, b, 4)
    noise = _randn(generator, dev, *images.shape) if config.intensity and config.noise_std else None
    u_warp = _rand(generator, dev, b, 4)
    coarse = None
    if config.elastic:
        gh, gw = (max(2, round(s / config.elastic_spacing) + 1) for s in (h, w))
        coarse = _randn(generator, dev, b, 2, gh, gw)
    colour = images.shape[1] > 1 and (config.channel_jitter > 0 or config.grey_p > 0)
    u_col = _rand(generator, dev, b, 2 * images.shape[1] + 1) if colour else None

    if config.affine or config.elastic:
        grid = _warp_grid(config, images.shape, u_warp, coarse)
        images = F.grid_sample(
            images.to(work),
            grid.to(work),
            mode="bilinear",
            padding_mode="reflection",
            align_corners=False,
        ).to(dtype)
        targets = F.grid_sample(
            targets,
            grid.to(targets.dtype),
            mode="nearest",
            padding_mode="reflection",
            align_corners=False,
        )
    if config.rot90 or config.flips:
        # rotation by k quarter turns = (transpose if k odd) then flips; extra flips compose
        k0, k1, fv, fh = bits.unbind(1)
        if not config.flips:
            fv = fh = torch.zeros_like(fv)
        transpose = torch.zeros_like(fv)
        if config.rot90:  # k = k0 + 2 k1; torch.rot90 convention (counter-clockwise)
            transpose = k0
            fv = fv ^ (k0 ^ k1)  # k in {1, 2}
            fh = fh ^ k1  # k in {2, 3}
        code = 4 * transpose.long() + 2 * fv.long() + fh.long()
        index = _dihedral_table(h, w, images.device).index_select(0, code)
        images, targets = _gather(images, index), _gather(targets, index)
    if config.intensity:
        images = _intensity(images.to(work), config, u_int, noise).to(dtype)
    if u_col is not None:
        images = _colour(images.to(work), config, u_col).to(dtype)
    return images.contiguous(), targets.contiguous()


def _colour(x: torch.Tensor, config: AugmentConfig, u: torch.Tensor) -> torch.Tensor:
    """Per-channel gain and offset, and some samples turned grey; ``u`` is (B, 2C + 1)."""
    b, c = x.shape[:2]
    j = config.channel_jitter
    gain = torch.exp(j * (2 * u[:, :c] - 1)).view(b, c, 1, 1)
    offset = (j / 2 * (2 * u[:, c : 2 * c] - 1)).view(b, c, 1, 1)
    x = x * gain + offset
    grey = (u[:, 2 * c] < config.grey_p).view(b, 1, 1, 1)
    return torch.where(grey, x.mean(dim=1, keepdim=True).expand_as(x), x)


def augment_sample_numpy(
    image: np.ndarray,
    target: np.ndarray,
    rng: np.random.Generator,
    config: AugmentConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Plain per-sample reference: flips, 90° rotations, intensity jitter of one (C, H, W) image
    and its (K, H, W) target. The baseline the batched version is benchmarked against."""
    config = config or AugmentConfig()
    if config.rot90:
        k = int(rng.integers(4))
        image, target = np.rot90(image, k, axes=(-2, -1)), np.rot90(target, k, axes=(-2, -1))
    if config.flips:
        if rng.random() < 0.5:
            image, target = image[..., ::-1, :], target[..., ::-1, :]
        if rng.random() < 0.5:
            image, target = image[..., ::-1], target[..., ::-1]
    image = np.ascontiguousarray(image, dtype=np.float32)
    if config.intensity:
        scale = rng.uniform(*config.scale)
        shift = rng.uniform(-config.shift, config.shift)
        gamma = np.exp(rng.uniform(np.log(config.gamma[0]), np.log(config.gamma[1])))
        lo = image.min()
        span = max(float(image.max() - lo), 1e-6)
        image = np.clip((image - lo) / span, 0, 1) ** gamma * span + lo
        image = (image * scale + shift).astype(np.float32)
        if config.noise_std:
            std = rng.uniform(0, config.noise_std)
            image += rng.normal(0, std, image.shape).astype(np.float32)
    return image, np.ascontiguousarray(target)
