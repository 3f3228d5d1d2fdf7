"""Prediction on a dask cluster: a folder image by image, a big image block by block.

:func:`predict_paths` sends every image that fits one block to a worker whole
(:func:`.images.predict_file`: the same code as single-process prediction) and runs every
bigger zarr image block by block (:func:`predict_blocks`). Block by block:

1. On the client, from strided samples only (computed on the cluster): the model (``auto``
   picks it from the image), the input recipe and the image's percentiles; the object size is
   estimated once, on a worker, from the image's centre (``--diameter auto``), so every block
   runs at one scale.
2. Each block (:func:`.window.run_block`) reads its window from the zarr store, segments it and
   writes its core's labels into level 0 of the output store (hidden until done); it hands on
   its labels over the regions shared with its neighbours.
3. Seam tasks pair the objects two neighbours both see; the client stitches the ids
   (:func:`.blocks.stitch`), each block's core is rewritten with final ids, the pyramid is built
   chunk by chunk on the cluster, and the store is renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SegQCError
from .blocks import check_block, halo_for, neighbour_pairs, neighbours_of, plan_blocks, stitch
from .settings import PredictSettings
from .window import (
    BlockJob,
    block_summary,
    estimate_scale,
    make_recipe,
    match_seam,
    relabel_block,
    run_block,
)
from .zarr_io import ZarrImage, is_zarr, open_zarr_image

#: Side of the centre crop on which ``--diameter auto`` measures a block-wise image.
ESTIMATE_SIDE = 1024


@dataclass
class BlockRun:
    """How a block-wise prediction went: objects, blocks, halo, the model choice and scale."""

    objects: int
    blocks: int
    halo: int
    picked: str
    scale: object
    path: Path

    def describe(self, name: str) -> str:
        return (
            f"{name}: {self.picked}{self.scale.describe()}; {self.objects} objects "
            f"({self.blocks} blocks, halo {self.halo} px) -> {self.path}"
        )


def runner_for(client) -> Callable:
    """Runs ``fn(*job)`` for every job on the cluster and waits (the first error raised)."""

    def run(fn, jobs) -> None:
        jobs = list(jobs)
        if jobs:
            futures = client.map(fn, *zip(*jobs, strict=True), pure=False)
            try:
                client.gather(futures)
            except BaseException:
                stop_and_wait(client, futures)
                raise

    return run


def stop_and_wait(client, futures, timeout: float = 120.0) -> None:
    """Cancel ``futures`` and wait (up to ``timeout`` seconds) until no worker still runs one
    of them, so that nothing writes into a store that is being removed."""
    import time

    keys = {f.key for f in futures}
    client.cancel(futures)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = client.run(_executing)
        if not any(keys & set(found) for found in busy.values()):
            return
        time.sleep(0.2)


def _executing(dask_worker) -> list:
    """Keys of the tasks a worker is executing (cancelled ones included)."""
    return [ts.key for ts in dask_worker.state.executing]


def needs_blocks(source: ZarrImage, block: int) -> bool:
    """Whether a zarr image is segmented block by block: a 2-D image larger than one block."""
    h, w = source.plane_shape
    return (h > block or w > block) and source.axes in (("y", "x"), ("y", "x", "c"))


def _model_and_recipe(lazy, settings: PredictSettings):
    from ..predict.auto import AUTO, choose_model
    from ..predict.loading import read_config

    if settings.model == AUTO:
        choice = choose_model(lazy)
        model, invert, picked = choice.model, choice.invert, choice.describe() + "; "
    else:
        model, invert, picked = settings.model, False, ""
    config = read_config(model)
    recipe = make_recipe(lazy, config.model.in_channels, auto=settings.model == AUTO, invert=invert)
    return model, config, recipe, picked


def _scale(client, source, recipe, model, config, settings):
    """(ScaleInfo, object size for tile context at the network's scale), mirroring
    :func:`~napari_segqc.core.predict.segmentation.iter_scaled_maps`."""
    from ..predict.scale import SHRINK_TOLERANCE, ScaleInfo, scale_factor

    model_d = float(config.diameter or 0.0)
    if settings.diameter == "auto":
        h, w = source.plane_shape
        side = min(ESTIMATE_SIDE, settings.block)  # no read bigger than a block's
        sh, sw = min(h, side), min(w, side)
        y0, x0 = (h - sh) // 2 // 32 * 32, (w - sw) // 2 // 32 * 32
        window = (y0, y0 + sh, x0, x0 + sw)
        info = client.submit(
            estimate_scale, source, window, recipe, model, settings, pure=False
        ).result()
        if info.factor == 1.0:
            return info, (model_d * SHRINK_TOLERANCE if model_d else None)
        return info, info.diameter * info.factor
    d = settings.diameter
    factor = scale_factor(d, config)
    return ScaleInfo(d, False, factor, model_d), (d * factor if d else None)


def image_percentiles(data, channels: int, factor: float = 1.0) -> tuple[np.ndarray, ...]:
    """The whole image's normalisation percentiles, as single-process prediction takes them:
    from a strided sample (computed where dask computes: on the cluster); with a resize
    ``factor``, of the image as the network sees it, from :data:`PATCHES` patches spread
    over the image, each resized (antialiased when shrinking lowers the top percentile)."""
    from ..models.normalize import HIGH, LOW
    from ..predict.inference import _percentiles
    from ..predict.scale import resize_plane, scaled_shape

    if factor == 1.0:
        return tuple(_percentiles(data, channels))
    import dask

    h, w = data.shape[:2]
    side = min(h, w, PATCH_SIDE)
    per_axis = int(np.sqrt(PATCHES))
    ys = np.linspace(0, h - side, per_axis).astype(int)
    xs = np.linspace(0, w - side, per_axis).astype(int)
    patches = dask.compute(*[data[y : y + side, x : x + side] for y in ys for x in xs])
    pixels = []
    for patch in patches:
        patch = np.asarray(patch, np.float32)
        patch = patch[..., :channels] if patch.ndim == 3 else patch
        resized = resize_plane(patch, scaled_shape(side, side, factor))
        pixels.append(resized.reshape(-1, channels))
    sample = np.concatenate(pixels)
    if not np.isfinite(sample).all():
        raise SegQCError("the image contains NaN or infinite values")
    return tuple(np.percentile(sample, [LOW, HIGH], axis=0).astype(np.float32))


#: Patches (and their side) sampled for the percentiles of a resized image.
PATCHES, PATCH_SIDE = 64, 256


def predict_blocks(client, source: ZarrImage | str | os.PathLike, target, settings) -> BlockRun:
    """Segment a big 2-D zarr image block by block on the cluster of ``client`` into an
    OME-Zarr label store at ``target`` (see the module)."""
    from ..predict.inference import image_layout
    from .label_writer import LabelStoreWriter, chunk_for

    if not isinstance(source, ZarrImage):
        source = open_zarr_image(source)
    if source.axes not in (("y", "x"), ("y", "x", "c")):
        raise SegQCError(
            f"{source.root}: block-wise prediction takes 2-D images (axes {source.axes})"
        )
    if Path(target).resolve() == Path(source.root).resolve():
        raise SegQCError(f"--out {target} is the input: name another store")
    block = check_block(settings.block)
    lazy = source.lazy()
    model, config, recipe, picked = _model_and_recipe(lazy, settings)
    data = recipe.apply(lazy)
    _, channels = image_layout(data.shape, config.model.in_channels)
    scale, context = _scale(client, source, recipe, model, config, settings)
    lo, hi = image_percentiles(data, channels, scale.factor)
    largest = config.diameter_range[1] if config.diameter else 0.0
    halo = settings.halo or halo_for(scale.diameter, scale.factor, largest)
    blocks = plan_blocks(source.plane_shape, block, halo)
    with LabelStoreWriter(target, source.plane_shape, chunk=chunk_for(block)) as writer:
        jobs = [
            BlockJob(
                source,
                b,
                tuple(neighbours_of(b, blocks)),
                recipe,
                model,
                tuple(float(v) for v in lo),
                tuple(float(v) for v in hi),
                float(scale.factor),
                context,
                settings,
                writer.level0,
            )
            for b in blocks
        ]
        summaries, matches = _run_blocks(client, jobs, blocks)
        luts, count = stitch([s[0] for s in summaries], [s[1] for s in summaries], matches)
        del summaries, matches
        run = runner_for(client)
        cores = [b.core for b in blocks]
        run(relabel_block, [(writer.level0, c, lut) for c, lut in zip(cores, luts, strict=True)])
        path = writer.finish(run, count=count)
    return BlockRun(count, len(blocks), halo, picked, scale, path)


def _run_blocks(client, jobs: list[BlockJob], blocks) -> tuple[list, list]:
    """Run the blocks, their summaries and their seams; each block's result (its bands) is
    released as soon as its summary and seams are done, so that workers hold the bands of
    about one row of blocks, not of the whole image. Returns (summaries, matches)."""
    from distributed import as_completed

    futures = client.map(run_block, jobs, pure=False)
    pairs = neighbour_pairs(blocks)
    pending = [1] * len(blocks)
    for i, j in pairs:
        pending[i] += 1
        pending[j] += 1
    what = {}
    for b, f in enumerate(futures):
        what[client.submit(block_summary, f, pure=False, priority=1)] = (b,)
    for i, j in pairs:
        what[client.submit(match_seam, futures[i], futures[j], pure=False, priority=1)] = (i, j)
    summaries: list = [None] * len(blocks)
    matches = []
    try:
        for done in as_completed(list(what)):
            result, ids = done.result(), what.pop(done)
            if len(ids) == 1:
                summaries[ids[0]] = result
            else:
                matches.append(result)
            for b in ids:
                pending[b] -= 1
                if not pending[b]:
                    futures[b] = None  # the scheduler may now forget its bands
    except BaseException:
        stop_and_wait(client, [f for f in futures if f is not None] + list(what))
        raise
    return summaries, matches


def predict_paths(
    client,
    items: list[tuple[Path, Path]],
    settings: PredictSettings,
    *,
    report: Callable[[str], None] = print,
    fail: Callable[[str, BaseException], None] | None = None,
) -> list[str]:
    """Segment ``(input, target)`` pairs on the cluster: big zarr images block by block, the
    others one task per image (whole, on one worker). ``report(line)`` is called as each is
    done; a failed image goes to ``fail(name, error)`` (by default its error is raised).
    Returns the names that failed."""
    from distributed import as_completed

    failed: list[str] = []

    def failure(name: str, exc: BaseException) -> None:
        if fail is None:
            raise exc
        fail(name, exc)
        failed.append(name)

    whole, big = [], []
    for path, target in items:
        source = None
        if is_zarr(path):
            try:
                source = open_zarr_image(path)
            except SegQCError as exc:
                failure(Path(path).name, exc)
                continue
        if source is not None and needs_blocks(source, settings.block):
            big.append((path, source, target))
        else:
            whole.append((path, target))
    from .images import predict_file

    futures = {
        client.submit(predict_file, str(p), str(t), settings, pure=False): Path(p).name
        for p, t in whole
    }
    try:
        for path, source, target in big:
            try:
                report(predict_blocks(client, source, target, settings).describe(path.name))
            except (SegQCError, OSError, ValueError) as exc:
                failure(Path(path).name, exc)
        for future in as_completed(list(futures)):
            try:
                report(future.result())
            except (SegQCError, OSError, ValueError) as exc:
                failure(futures[future], exc)
    finally:
        client.cancel(list(futures))
    return failed
