"""Training data: (image, instance labels) samples from napari layers or folders, the
train/validation split, and random patches for the network.

Every image is percentile-normalised per image and channel as every model sees its input
(:mod:`napari_segqc.core.models.normalize`).
Folders come in two layouts: ``images/`` + ``masks/`` with matching file names, or the Data
Science Bowl 2018 layout ``<id>/images/<id>.png`` + ``<id>/masks/*.png`` (one PNG per nucleus).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SegQCError
from ..io import IMAGE_SUFFIXES, list_images, read_image
from ..models.normalize import normalize_image


@dataclass
class Sample:
    """One training image: ``image`` float32 ``(C, H, W)`` normalised, ``labels`` int32
    ``(H, W)`` instances (0 = background)."""

    image: np.ndarray
    labels: np.ndarray
    name: str


def _as_labels(labels: np.ndarray, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == bool:
        return labels.astype(np.int32)
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise SegQCError(f"{name}: labels must be whole numbers (an instance label image)")
    elif labels.dtype.kind not in "iu":
        raise SegQCError(f"{name}: labels have data type {labels.dtype}; need integers")
    if labels.size and labels.min() < 0:
        raise SegQCError(f"{name}: labels must be >= 0 (0 = background), found {labels.min()}")
    if labels.size and labels.max() > np.iinfo(np.int32).max:
        raise SegQCError(f"{name}: label values above {np.iinfo(np.int32).max} are not supported")
    return labels.astype(np.int32)


def make_sample(image: np.ndarray, labels: np.ndarray, name: str, *, rgb=None) -> Sample:
    """Check and normalise one 2-D (image, labels) pair into a :class:`Sample`."""
    image, labels = np.asarray(image), np.asarray(labels)
    if labels.ndim != 2:
        raise SegQCError(f"{name}: labels must be a 2-D label image, got shape {labels.shape}")
    try:
        norm = normalize_image(image, rgb=rgb)
    except SegQCError as exc:
        raise SegQCError(f"{name}: {exc}") from None
    if norm.shape[1:] != labels.shape:
        raise SegQCError(
            f"{name}: image {image.shape} and labels {labels.shape} have different sizes"
        )
    return Sample(norm, _as_labels(labels, name), name)


def samples_from_arrays(
    images: np.ndarray, labels: np.ndarray, *, rgb: bool | None = None, name: str = "layer"
) -> list[Sample]:
    """Samples from napari layer data: one 2-D image and its labels, or stacks.

    A stack ``(N, H, W)`` or ``(N, H, W, 3|4)`` with ``(N, H, W)`` labels gives one sample per
    slice, named ``f"{name}[{i}]"``. ``rgb=None`` guesses RGB from the shapes.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if labels.ndim == 2:
        return [make_sample(images, labels, name, rgb=rgb)]
    if labels.ndim != 3:
        raise SegQCError(f"{name}: labels must be 2-D or a 3-D stack, got shape {labels.shape}")
    if rgb is None:
        rgb = images.ndim == 4 and images.shape[-1] in (3, 4)
    if images.ndim != (4 if rgb else 3) or images.shape[0] != labels.shape[0]:
        raise SegQCError(
            f"{name}: image {images.shape} and labels {labels.shape} do not match; need "
            f"(N, H, W) or (N, H, W, 3) images with (N, H, W) labels"
        )
    return [make_sample(images[i], labels[i], f"{name}[{i}]", rgb=rgb) for i in range(len(labels))]


def _few(names: Sequence[str], n: int = 5) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def load_folder(
    images_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
    names: Sequence[str] | None = None,
    *,
    rgb: bool | None = None,
) -> list[Sample]:
    """Samples from an images folder and a masks folder, paired by file name without suffix;
    with ``names``, only those (a split's file list), in that order."""
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise SegQCError(f"{folder}: no such folder")
    imgs, masks = list_images(images_dir), list_images(masks_dir)
    only_img, only_mask = sorted(set(imgs) - set(masks)), sorted(set(masks) - set(imgs))
    if only_img or only_mask:
        parts = [f"no mask for {_few(only_img)}"] if only_img else []
        parts += [f"no image for {_few(only_mask)}"] if only_mask else []
        raise SegQCError(f"unpaired files in {images_dir} and {masks_dir}: " + "; ".join(parts))
    if not imgs:
        raise SegQCError(f"{images_dir}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    if names is not None:
        missing = [k for k in names if k not in imgs]
        if missing:
            raise SegQCError(f"{images_dir}: no image named {_few(missing)}")
    keys = sorted(imgs) if names is None else list(names)
    return [make_sample(read_image(imgs[k]), read_image(masks[k]), k, rgb=rgb) for k in keys]


def _dsb_ids(root: Path) -> list[Path]:
    return [d for d in sorted(root.iterdir()) if d.is_dir() and (d / "images").is_dir()]


def load_dsb(root: str | os.PathLike) -> list[Sample]:
    """Samples from the Data Science Bowl 2018 layout: ``<id>/images/<id>.png`` and
    ``<id>/masks/*.png``, one binary mask per nucleus, merged into one label image (a later
    mask wins where two overlap)."""
    root = Path(root)
    if not root.is_dir():
        raise SegQCError(f"{root}: no such folder")
    samples = []
    for d in _dsb_ids(root):
        found = list_images(d / "images")
        if d.name not in found and len(found) != 1:
            raise SegQCError(f"{d / 'images'}: expected one image named {d.name}.png")
        image = read_image(found.get(d.name) or next(iter(found.values())))
        shape = image.shape[:2]
        labels = np.zeros(shape, np.int32)
        mask_files = list_images(d / "masks") if (d / "masks").is_dir() else {}
        for k, path in enumerate(mask_files.values(), start=1):
            mask = read_image(path)
            if mask.shape[:2] != shape:
                raise SegQCError(f"{path}: mask {mask.shape} does not match image {image.shape}")
            labels[(mask if mask.ndim == 2 else mask[..., 0]) > 0] = k
        samples.append(make_sample(image, labels, d.name))
    if not samples:
        raise SegQCError(f"{root}: no <id>/images/<id>.png folders (Data Science Bowl layout)")
    return samples


def load_training_data(path: str | os.PathLike) -> list[Sample]:
    """Samples from a folder in either accepted layout (``images/`` + ``masks/``, or DSB 2018)."""
    path = Path(path)
    if not path.is_dir():
        raise SegQCError(f"{path}: no such folder")
    if (path / "images").is_dir() and (path / "masks").is_dir():
        return load_folder(path / "images", path / "masks")
    if _dsb_ids(path):
        return load_dsb(path)
    raise SegQCError(
        f"{path}: not a training folder; use a folder holding images/ and masks/ with matching "
        "file names, or the Data Science Bowl 2018 layout <id>/images/<id>.png + <id>/masks/*.png"
    )


def check_samples(samples: Sequence[Sample]) -> int:
    """Check that samples can be trained on together; returns their number of channels."""
    if not samples:
        raise SegQCError("no training samples")
    by_channels: dict[int, list[str]] = {}
    for s in samples:
        by_channels.setdefault(s.image.shape[0], []).append(s.name)
    if len(by_channels) > 1:
        kinds = "; ".join(
            f"{len(v)} with {c} channel{'s' * (c > 1)} ({'RGB' if c == 3 else 'grey'}, e.g. "
            f"{_few(v, 3)})"
            for c, v in sorted(by_channels.items())
        )
        raise SegQCError(
            f"training images mix grey and RGB: {kinds}. Use one kind: convert the RGB images "
            "to grey (or the grey ones to RGB) before training"
        )
    if not any(s.labels.any() for s in samples):
        raise SegQCError("all masks are empty: label some objects before training")
    return next(iter(by_channels))


def split_samples(
    samples: Sequence[Sample], val_fraction: float = 0.15, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Seeded split into (train, validation), each keeping the input order.

    With two or more samples and ``val_fraction > 0`` each side gets at least one sample.
    """
    if not 0 <= val_fraction < 1:
        raise SegQCError(f"validation fraction must be in [0, 1), got {val_fraction}")
    samples = list(samples)
    if val_fraction == 0:
        return samples, []
    n = len(samples)
    if n < 2:
        raise SegQCError(
            f"a validation split needs at least 2 samples, got {n}; add images or set the "
            "validation fraction to 0"
        )
    n_val = min(max(round(n * val_fraction), 1), n - 1)
    is_val = np.zeros(n, bool)
    is_val[np.random.default_rng(seed).permutation(n)[:n_val]] = True
    train = [s for s, v in zip(samples, is_val, strict=True) if not v]
    return train, [s for s, v in zip(samples, is_val, strict=True) if v]


def _pad_to(x: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Pad the last two axes of ``x`` up to ``size`` (evenly on both sides)."""
    extra = [max(size - n, 0) for n in x.shape[-2:]]
    if not any(extra):
        return x
    width = [(0, 0)] * (x.ndim - 2) + [(e // 2, e - e // 2) for e in extra]
    if mode == "reflect" and min(x.shape[-2:]) < 2:
        mode = "edge"  # nothing to reflect in a one-pixel image
    return np.pad(x, width, mode=mode)


class PatchSampler:
    """Random aligned ``patch_size`` crops of samples and their target channels.

    Samples are drawn with probability proportional to their area, so a big image gives more
    patches than a small one. Images smaller than a patch are padded once up front (reflected
    image, zero targets).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        targets: Sequence[np.ndarray],
        patch_size: int,
        *,
        seed: int = 0,
    ) -> None:
        if len(samples) != len(targets):
            raise SegQCError(f"{len(samples)} samples but {len(targets)} target arrays")
        if not samples:
            raise SegQCError("no training samples")
        if int(patch_size) < 1:
            raise SegQCError(f"patch size must be a positive number of pixels, got {patch_size}")
        self.patch_size = p = int(patch_size)
        self.channels = check_samples(samples)
        self.n_targets = targets[0].shape[0]
        self._images, self._targets = [], []
        for s, t in zip(samples, targets, strict=True):
            if t.ndim != 3 or t.shape[1:] != s.labels.shape or t.shape[0] != self.n_targets:
                raise SegQCError(
                    f"{s.name}: targets {t.shape} do not match labels {s.labels.shape}"
                )
            self._images.append(_pad_to(s.image, p, "reflect"))
            self._targets.append(_pad_to(np.asarray(t, np.float32), p, "constant"))
        area = np.array([s.labels.size for s in samples], float)
        self._p = area / area.sum()
        self._rng = np.random.default_rng(seed)

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(images (B, C, P, P), targets (B, K, P, P))`` float32 random crops."""
        p, rng = self.patch_size, self._rng
        images = np.empty((batch_size, self.channels, p, p), np.float32)
        targets = np.empty((batch_size, self.n_targets, p, p), np.float32)
        for b, i in enumerate(rng.choice(len(self._p), size=batch_size, p=self._p)):
            h, w = self._images[i].shape[-2:]
            y, x = rng.integers(0, h - p + 1), rng.integers(0, w - p + 1)
            images[b] = self._images[i][:, y : y + p, x : x + p]
            targets[b] = self._targets[i][:, y : y + p, x : x + p]
        return images, targets
