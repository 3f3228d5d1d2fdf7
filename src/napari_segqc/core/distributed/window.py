"""The work of one block, run on a dask worker: read its window, segment it, write its core.

Everything that must agree across blocks is decided once for the whole image, on the client,
and given to every block: the model and how the image is turned into its input
(:class:`Recipe`), the normalisation (the whole image's percentiles, as single-process
prediction uses: a block of empty background must not be stretched into noise), and the scale
(one object size and resize factor). The window is read alone from the zarr store, so a
worker's memory is bounded by the block size, whatever the image size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SegQCError
from .blocks import Block, bands_of, match_labels
from .settings import PredictSettings
from .zarr_io import ZarrImage


@dataclass(frozen=True)
class Recipe:
    """How a window of the stored image becomes the model's input, as
    :func:`~napari_segqc.core.predict.auto.input_for_model` and
    :func:`~napari_segqc.core.predict.inference.grey_if_equal_channels` make it for the whole
    image: the mean of the colour channels (``grey``), intensities flipped over the image's
    range (``invert``: (lo, hi), x -> lo + hi - x), the first of equal channels (``first``),
    a grey image given as three equal channels (``three``)."""

    grey: bool = False
    invert: tuple[float, float] | None = None
    first: bool = False
    three: bool = False

    def apply(self, image):
        """``image`` (numpy or dask) as the model takes it."""
        lazy = hasattr(image, "dask")
        if self.grey:
            image = image[..., :3].mean(axis=-1, dtype=np.float32)
        if self.invert is not None:
            lo, hi = self.invert
            image = (lo + hi) - image.astype(np.float32)
        if self.first:
            image = image[..., 0]
        if self.three:
            if lazy:
                import dask.array as da

                image = da.stack([image] * 3, axis=-1)
            else:
                image = np.broadcast_to(image[..., None], (*image.shape, 3))
        return image


def make_recipe(image, in_channels: int, *, auto: bool, invert: bool = False) -> Recipe:
    """The :class:`Recipe` that ``segqc predict`` applies to ``image`` (read from a strided
    sample only) for a model of ``in_channels``: with ``auto`` (and ``invert`` as the model
    choice says) or a colour model given a grey image, ``input_for_model``; else the image as
    it is, reduced to its first channel when a grey model gets equal colour channels."""
    from ..predict.auto import looks_rgb
    from ..predict.image_checks import sample_image
    from ..predict.inference import grey_if_equal_channels

    rgb = looks_rgb(image)
    if not auto and not (in_channels == 3 and not rgb):
        first = grey_if_equal_channels(image, in_channels) is not image
        return Recipe(first=first)
    grey = rgb and in_channels == 1
    rgb = rgb and not grey
    flip = None
    if invert:
        current = Recipe(grey=grey).apply(image)
        sample = sample_image(current, rgb=rgb)
        flip = (float(np.min(sample)), float(np.max(sample)))
    return Recipe(grey=grey, invert=flip, three=not rgb and in_channels == 3)


@dataclass(frozen=True)
class BlockJob:
    """One block's work: the ``source`` image and how to read it (``recipe``), the block and
    its neighbours, the ``model``, the image's percentiles ``lo``/``hi``, the resize
    ``factor`` and the object size for tile context (``context``, at the network's scale),
    and where level 0 of the output is (``out``: store folder, array name)."""

    source: ZarrImage
    block: Block
    neighbours: tuple[Block, ...]
    recipe: Recipe
    model: str
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    factor: float
    context: float | None
    settings: PredictSettings
    out: tuple[str, str]


@dataclass
class BlockResult:
    """What a block hands on: its largest local id, the ids in its core, and its labels over
    the regions it shares with each neighbour (by index)."""

    index: int
    count: int
    ids: np.ndarray
    bands: dict[int, np.ndarray] = field(default_factory=dict)


def run_block(job: BlockJob) -> BlockResult:
    """Segment one block's window, write its core's labels (local ids) into level 0."""
    import zarr

    from ..instances.decoding import decode_labels
    from .models import worker_models

    settings = job.settings
    loaded = worker_models().get(job.model, settings.device, settings.backend)
    window = job.recipe.apply(job.source.read(job.block.window))
    maps = window_maps(loaded, window, job.lo, job.hi, job.factor, job.context, settings)
    del window
    labels = decode_labels(maps, loaded.config, scale=job.factor, **settings.decoding())
    del maps
    core = labels[job.block.core_in_window()]
    store, name = job.out
    if not (Path(store) / "zarr.json").is_file():  # the run was stopped: write nothing
        raise SegQCError("the output store was removed while the block ran")
    y0, y1, x0, x1 = job.block.core
    zarr.open_array(store=store, path=name, mode="r+")[y0:y1, x0:x1] = core.astype(np.uint32)
    ids = np.unique(core)
    return BlockResult(
        job.block.index,
        int(labels.max()),
        ids[ids > 0].astype(np.int64),
        bands_of(job.block, list(job.neighbours), labels),
    )


def block_summary(result: BlockResult) -> tuple[int, np.ndarray]:
    """(largest local id, core ids) of a block: what the client needs, without the bands."""
    return result.count, result.ids


def match_seam(a: BlockResult, b: BlockResult) -> tuple[int, int, np.ndarray]:
    """Pairs of local ids of two neighbouring blocks that are one object."""
    return a.index, b.index, match_labels(a.bands[b.index], b.bands[a.index])


def relabel_block(out: tuple[str, str], core: tuple[int, int, int, int], lut: np.ndarray) -> None:
    """Rewrite a block's core in level 0 from local ids to final ids."""
    import zarr

    store, name = out
    array = zarr.open_array(store=store, path=name, mode="r+")
    y0, y1, x0, x1 = core
    array[y0:y1, x0:x1] = lut[np.asarray(array[y0:y1, x0:x1])]


def estimate_scale(source: ZarrImage, window, recipe: Recipe, model: str, settings):
    """The object size of an image, estimated (``--diameter auto``) on one window of it (its
    centre): the :class:`~napari_segqc.core.predict.scale.ScaleInfo` all blocks then share."""
    from ..device import autocast_dtype, pick_device
    from ..predict.inference import run_to_end
    from ..predict.segmentation import iter_scaled_maps
    from .models import worker_models

    loaded = worker_models().get(model, settings.device, settings.backend)
    crop = recipe.apply(source.read(window))
    dtype = autocast_dtype(settings.precision, pick_device(settings.device))
    gen = iter_scaled_maps(loaded, crop, diameter="auto", dtype=dtype, **settings.tiling())
    return run_to_end(gen)[1]


def window_maps(loaded, window: np.ndarray, lo, hi, factor: float, context, settings):
    """The network's maps ``(K, h, w)`` of a 2-D window, normalised with the whole image's
    percentiles ``lo``/``hi`` (per channel), resized by ``factor`` for the network and back."""
    from ..device import autocast_dtype, pick_device
    from ..predict.inference import image_layout
    from ..predict.scale import context_tiles, resize_maps, resize_plane, scaled_shape

    _, channels = image_layout(window.shape, loaded.config.model.in_channels)
    tile, overlap = context_tiles(settings.tile, settings.overlap, context, loaded.config)
    dtype = autocast_dtype(settings.precision, pick_device(settings.device))
    h, w = window.shape[:2]
    plane = window
    if factor != 1.0:
        plane = plane[..., :channels] if plane.ndim == 3 else plane
        plane = resize_plane(np.asarray(plane), scaled_shape(h, w, factor))
    lo = np.asarray(lo, np.float32)
    hi = np.asarray(hi, np.float32)
    maps = plane_maps(loaded, plane, lo, hi, channels, tile, overlap, settings, dtype)
    return resize_maps(maps, (h, w)) if factor != 1.0 else maps


def plane_maps(loaded, image, lo, hi, channels: int, tile: int, overlap: int, settings, dtype):
    """Maps ``(K, H, W)`` of one plane, tile by tile, blended as
    :mod:`napari_segqc.core.predict.inference` does (same tiles, window and batches), with
    the percentiles given instead of the plane's own."""
    from ..predict.inference import _iter_plane

    gen = _iter_plane(
        loaded,
        image,
        channels,
        tile,
        overlap,
        settings.batch,
        dtype,
        settings.tta,
        percentiles=(lo, hi),
    )
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return done.value
