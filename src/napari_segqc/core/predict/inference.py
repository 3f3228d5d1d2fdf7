"""Tiled inference: the network's maps of images of any size, tile by tile.

:func:`iter_predict_probs` normalises the image with percentiles of the whole image
(:mod:`napari_segqc.core.models.normalize`), cuts it into overlapping tiles
(:mod:`.tiling`), runs them in batches and blends the overlaps with a smooth window, so seams
vanish and memory stays bounded by the output maps (numpy or lazy dask/zarr input is read tile
by tile). Stacks and time-lapses run slice by slice.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator

import numpy as np

from ..device import autocast_dtype
from ..errors import SegQCError, Stopped
from ..models.normalize import HIGH, LOW
from .loading import LoadedModel
from .scale import context_tiles, resize_maps, resize_plane, scaled_shape
from .tiling import blend_window, fit_tile, reflect_fill, tile_starts

#: Most pixels in one batch of tiles (8 tiles of 512 x 512): bounds the network's memory.
MAX_BATCH_PIXELS = 8 * 512 * 512


def image_layout(shape: tuple[int, ...], in_channels: int) -> tuple[tuple[int, ...], int]:
    """Split an image shape into (leading slice dims, channels) for a model.

    ``(H, W)`` grey, ``(H, W, 3|4)`` RGB(A) and stacks or time-lapses of either: ``(..., H, W)``
    / ``(..., H, W, 3|4)``, segmented slice by slice. Raises if the model expects the other kind.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) < 2:
        raise SegQCError(f"need an image of at least 2 dimensions, got shape {shape}")
    rgb = len(shape) >= 3 and shape[-1] in (3, 4) and (in_channels == 3 or len(shape) == 3)
    channels = 3 if rgb else 1  # RGBA: alpha dropped
    lead = shape[:-3] if rgb else shape[:-2]
    plane = shape[len(lead) :]
    if min(plane[:2]) < 1:
        raise SegQCError(f"image has an empty dimension: shape {shape}")
    if channels != in_channels:
        kinds = {1: "grey (1 channel)", 3: "RGB (3 channels)"}
        raise SegQCError(
            f"the model expects {kinds.get(in_channels, in_channels)} images, but this image is "
            f"{kinds.get(channels, channels)}: use a model trained on such images"
        )
    return lead, channels


def grey_if_equal_channels(image, in_channels: int, max_pixels: int = 1_000_000):
    """For a grey model, an RGB(A) image whose colour channels are equal (grey saved as RGB, as
    DSB 2018's PNGs are) becomes its first channel (a view: lazy input stays lazy); any other
    image is returned as it is (:func:`image_layout` then says what does not fit)."""
    shape = image.shape
    if in_channels != 1 or len(shape) < 3 or shape[-1] not in (3, 4):
        return image
    stride = max(1, int(np.ceil(np.sqrt(shape[-3] * shape[-2] / max_pixels))))
    first = (0,) * (len(shape) - 3) + (slice(None, None, stride),) * 2
    sample = np.asarray(image[(*first, slice(0, 3))])
    if (sample == sample[..., :1]).all():
        return image[..., 0]
    return image


def check_image(image, config) -> tuple[tuple[int, ...], int]:
    """Whether a model of ``config`` can segment ``image`` (shape and channels only; nothing is
    read from lazy arrays but a small sample): (leading slice dims, channels), or a
    :class:`SegQCError` saying what does not fit. Use it with
    :func:`napari_segqc.core.predict.loading.read_config` before loading the model."""
    in_channels = config.model.in_channels
    return image_layout(grey_if_equal_channels(image, in_channels).shape, in_channels)


def _percentiles(image, channels: int, max_pixels: int = 4_000_000) -> np.ndarray:
    """Per-channel 1 and 99.8 percentiles, from a strided subsample of big (lazy) images."""
    h, w = image.shape[:2]
    stride = max(1, int(np.ceil(np.sqrt(h * w / max_pixels))))
    sample = np.asarray(image[::stride, ::stride], dtype=np.float32)
    sample = sample.reshape(-1, 1 if sample.ndim == 2 else sample.shape[-1])
    if not np.isfinite(sample).all():
        raise SegQCError("the image contains NaN or infinite values")
    return np.percentile(sample[:, :channels], [LOW, HIGH], axis=0).astype(np.float32)


#: Flip test-time augmentation: the network sees each tile as is and mirrored (dims flipped).
TTA_FLIPS = ((), (-1,), (-2,), (-2, -1))


class PredictWarning(UserWarning):
    """Something the user should know about a prediction that still succeeded."""


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    return isinstance(exc, oom) or "out of memory" in str(exc).lower()


def _forward(model, x, dtype, tta: bool):
    import torch

    autocast = torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None)
    with torch.inference_mode(), autocast:
        if not tta:
            return torch.sigmoid(model(x).float())
        total = None
        for dims in TTA_FLIPS:
            xf = torch.flip(x, dims) if dims else x
            probs = torch.sigmoid(model(xf).float())
            probs = torch.flip(probs, dims) if dims else probs
            total = probs if total is None else total + probs
        return total / len(TTA_FLIPS)


def _iter_plane(
    loaded: LoadedModel,
    image,
    channels: int,
    tile: int,
    overlap: int,
    batch: int,
    dtype,
    tta,
    percentiles: tuple[np.ndarray, np.ndarray] | None = None,
) -> Generator[int, None, np.ndarray]:
    """Maps ``(K, H, W)`` of one 2-D plane, tile batch by tile batch (yields tiles done).
    ``percentiles``: the normalisation's (low, high) per channel, e.g. a whole image's for
    one block of it; None: the plane's own."""
    import torch

    lo, hi = _percentiles(image, channels) if percentiles is None else percentiles
    scale = np.where(hi > lo, hi - lo, 1.0).astype(np.float32)
    h, w = image.shape[:2]
    classes = loaded.config.model.classes
    out = np.zeros((classes, h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    th, tw = fit_tile(h, tile, overlap), fit_tile(w, tile, overlap)
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    # no blending along an axis one tile covers (small images: the tile is the padded image)
    window = blend_window(th, tw, (overlap if len(ys) > 1 else 0, overlap if len(xs) > 1 else 0))
    boxes = [(y, x) for y in ys for x in xs]
    device = next(loaded.model.parameters()).device
    batch = max(1, min(batch, MAX_BATCH_PIXELS // (th * tw)))
    for i in range(0, len(boxes), batch):
        group = boxes[i : i + batch]
        tiles = np.zeros((len(group), channels, th, tw), np.float32)
        for j, (y, x) in enumerate(group):
            raw = np.asarray(image[y : y + th, x : x + tw], dtype=np.float32)
            raw = raw[..., None] if raw.ndim == 2 else raw[..., :channels]
            if not np.isfinite(raw).all():  # big images: the percentile sample may miss them
                raise SegQCError(
                    f"the image contains NaN or infinite values (in the tile at y={y}, x={x})"
                )
            norm = ((raw - lo) / scale).transpose(2, 0, 1)
            tiles[j, :, : norm.shape[1], : norm.shape[2]] = norm
            if norm.shape[1:] != (th, tw):  # past the image's end: mirror it into the pad
                tiles[j] = reflect_fill(norm, th, tw)
        x_t = torch.from_numpy(tiles).to(device).contiguous(memory_format=torch.channels_last)
        probs = _forward(loaded.model, x_t, dtype, tta).cpu().numpy()
        for j, (y, x) in enumerate(group):
            hh, ww = min(th, h - y), min(tw, w - x)
            part = probs[j, :, :hh, :ww]
            part *= window[:hh, :ww]  # in place: no temporary copy of the tile's maps
            out[:, y : y + hh, x : x + ww] += part
            weight[y : y + hh, x : x + ww] += window[:hh, :ww]
        yield len(group)
    out /= np.maximum(weight, 1e-6, out=weight)
    return out


def _tiles_per_plane(h: int, w: int, tile: int, overlap: int) -> int:
    th, tw = fit_tile(h, tile, overlap), fit_tile(w, tile, overlap)
    return len(tile_starts(h, th, overlap)) * len(tile_starts(w, tw, overlap))


def iter_predict_probs(
    loaded: LoadedModel,
    image,
    *,
    tile: int = 1024,
    overlap: int = 64,
    batch: int = 4,
    dtype="auto",
    tta: bool = False,
    scale: float = 1.0,
    diameter: float | None = None,
    foreground_only: bool = False,
) -> Generator[tuple[int, int], None, np.ndarray]:
    """Sigmoid maps of an image: ``(K, H, W)`` float32 for a 2-D image ``(H, W)`` /
    ``(H, W, C)``, ``(..., K, H, W)`` for a stack or time-lapse (each slice on its own).

    A generator: yields (tiles done, tiles total) after every batch and returns the maps, so a
    GUI can show progress and cancel between batches. Memory: the output maps and one batch of
    tiles, whatever the image size; numpy and lazy (dask/zarr) arrays are read tile by tile.
    ``dtype`` is the autocast type: ``"auto"`` (bf16 on the CPU, fp16/bf16 on CUDA; see
    :func:`napari_segqc.core.device.autocast_dtype`), a torch dtype, or None for plain fp32.
    ``tta`` averages over the 4 flips of each tile. ``scale``: each slice is resized by this
    factor before the network and its maps resized back (see :mod:`.scale`). Tiles and
    overlaps are raised to give objects of ``diameter`` pixels (at the network's scale;
    unknown: the largest the model learnt) enough context (:func:`.scale.context_tiles`).
    If a GPU runs out of memory the tiles are halved (not below that minimum) and a
    :class:`PredictWarning` says so. ``foreground_only``: only the foreground map is returned
    (``K`` = 1; a pass that only measures object sizes: with ``scale`` the other maps are not
    resized back).
    """
    if tile < 64 or tile % 32:
        raise SegQCError(f"tile size must be a multiple of 32 (>= 64), got {tile}")
    if not 0 <= overlap < tile // 2:
        raise SegQCError(f"overlap must be in [0, tile/2), got {overlap} for tile {tile}")
    if batch < 1:
        raise SegQCError(f"batch must be at least 1, got {batch}")
    if not 0.01 <= scale <= 100:
        raise SegQCError(f"scale must be in [0.01, 100], got {scale}")
    min_tile = context_tiles(128, 0, diameter, loaded.config)[0]
    tile, overlap = context_tiles(tile, overlap, diameter, loaded.config)
    if isinstance(dtype, str):
        dtype = autocast_dtype(dtype, next(loaded.model.parameters()).device)
    image = grey_if_equal_channels(image, loaded.config.model.in_channels)
    lead, channels = image_layout(image.shape, loaded.config.model.in_channels)
    h, w = image.shape[len(lead) : len(lead) + 2]
    sh, sw = scaled_shape(h, w, scale) if scale != 1.0 else (h, w)
    network_classes = loaded.config.model.classes
    classes = 1 if foreground_only else network_classes
    planes = int(np.prod(lead))  # 1 for a 2-D image
    # float32 maps and int32 labels of every slice, plus one slice's working maps (scaled)
    working = (
        sh * sw * (4 * network_classes + 4 * channels)
        if scale != 1.0
        else h * w * (4 * network_classes + 4)
    )
    check_memory(image.shape, planes * h * w * (4 * classes + 4) + working)
    out = np.zeros((*lead, classes, h, w), np.float32) if lead else None
    probs = None
    for plane, index in enumerate(np.ndindex(*lead)):
        source = image[index]
        if scale != 1.0:
            plane_data = np.asarray(source)
            plane_data = plane_data[..., :channels] if plane_data.ndim == 3 else plane_data
            source = resize_plane(plane_data, (sh, sw))
        while True:
            per_plane = _tiles_per_plane(sh, sw, tile, overlap)
            done = plane * per_plane
            try:
                gen = _iter_plane(loaded, source, channels, tile, overlap, batch, dtype, tta)
                while True:
                    try:
                        done += next(gen)
                    except StopIteration as finished:
                        probs = finished.value
                        break
                    yield done, planes * per_plane
                break
            except Exception as exc:
                if not _is_out_of_memory(exc) or tile <= min_tile:
                    raise
                _free_device_memory()
                tile = max(min_tile, tile // 2 // 32 * 32)
                overlap = min(overlap, tile // 2 - 32)
                warnings.warn(
                    f"out of memory on the device: retrying with {tile}-pixel tiles",
                    PredictWarning,
                    stacklevel=2,
                )
        if foreground_only:
            probs = probs[:1]
        if scale != 1.0:
            probs = resize_maps(probs, (h, w))
        if lead:
            out[index] = probs
    return out if lead else probs


def predict_probs_tiled(
    loaded: LoadedModel,
    image,
    *,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
    **kwargs,
) -> np.ndarray:
    """:func:`iter_predict_probs` run to the end; ``progress(done, total)`` is called after
    every batch and ``stop`` polled before the next one."""
    return run_to_end(iter_predict_probs(loaded, image, **kwargs), progress, stop)


def run_to_end(gen: Generator, progress: Callable | None = None, stop: Callable | None = None):
    """Run a progress generator to its return value; ``progress(done, total)`` after every
    step, ``stop()`` polled before the next one (raises :class:`Stopped`)."""
    while True:
        if stop is not None and stop():
            gen.close()
            raise Stopped("prediction stopped")
        try:
            done = next(gen)
        except StopIteration as finished:
            return finished.value
        if progress is not None:
            progress(*done)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (psutil), or None if unknown."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with napari
        return None
    return int(psutil.virtual_memory().available)


def check_memory(shape: tuple[int, ...], needed: int) -> None:
    """Refuse at once (before any tile runs) an image whose maps and labels (``needed``
    bytes) would not fit in the memory available now, instead of failing or being killed
    half-way."""
    available = available_memory()
    if available is not None and needed > 0.9 * available:
        raise SegQCError(
            f"an image of shape {tuple(shape)} needs about {needed / 2**30:.1f} GiB for its "
            f"probability maps and labels, but only {available / 2**30:.1f} GiB of memory is "
            "available: segment it in parts (crops, or fewer slices at a time)"
        )


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
