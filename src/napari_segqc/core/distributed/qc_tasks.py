"""Quality control and model evaluation on a dask cluster.

* ``segqc qc``: every pair of a folder is one task (:func:`submit_pair`: the same function as
  in one process, so the same report); a huge label pair is matched block by block
  (:func:`submit_blocks`): each task reads only its block (and the SSIM halo) from the
  files, by reference (:class:`ImageRef`: memory-mapped or chunked TIFF, ``.npy``, zarr /
  OME-Zarr), and returns a small table of ids, areas and intersections; the client adds the
  tables up and scores them (:mod:`napari_segqc.core.qc.blockwise`: exact).
* ``segqc evaluate``: every (model, image) is one task (:func:`evaluate_runner`): the worker
  predicts with the models it keeps (:func:`.models.worker_models`, loaded once per worker,
  never shipped) and scores, as :func:`napari_segqc.core.qc.evaluate.iter_evaluate` does.

Results are gathered in submission order, so reports, rows and printed lines come out in the
order of a single-process run.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SegQCError
from .models import worker_models
from .zarr_io import ZarrImage, is_zarr, open_zarr_image


@dataclass(frozen=True)
class ImageRef:
    """An image file or zarr store by path (what tasks are given); :meth:`open` gives an
    array-like that reads only what is indexed."""

    path: str

    @classmethod
    def of(cls, path: str | os.PathLike) -> ImageRef:
        return cls(str(Path(path).resolve()))

    @property
    def lazy(self) -> bool:
        """Whether :meth:`open` reads only what is indexed (zarr, TIFF, ``.npy``)."""
        return is_zarr(self.path) or Path(self.path).suffix.lower() in (".tif", ".tiff", ".npy")

    def open(self):
        """A lazily read array-like (``shape``, ``dtype``, numpy indexing): zarr / OME-Zarr
        (its full-resolution level), a TIFF memory-mapped (uncompressed) or read chunk by chunk
        (compressed, tiled or in strips), ``.npy`` memory-mapped; other files are read whole."""
        path = Path(self.path)
        if is_zarr(path):
            return LazyZarr(open_zarr_image(path))
        if not path.is_file():
            raise SegQCError(f"{path}: no such file")
        suffix = path.suffix.lower()
        try:
            if suffix in (".tif", ".tiff"):
                return _open_tiff(path)
            if suffix == ".npy":
                return np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise SegQCError(
                f"{path}: cannot be read as an image ({exc.__class__.__name__}: {exc})"
            ) from None
        from ..io import read_image

        return read_image(path)


def _open_tiff(path: Path):
    import tifffile

    try:
        return tifffile.memmap(path, mode="r")
    except ValueError:  # compressed or not contiguous: read chunk by chunk
        import zarr

        return zarr.open_array(tifffile.imread(path, aszarr=True), mode="r")


class LazyZarr:
    """A :class:`.zarr_io.ZarrImage` as an array-like in the package's layout: indexing reads
    only the chunks it touches (a 2-D window directly, anything else through dask, in this
    thread)."""

    def __init__(self, image: ZarrImage) -> None:
        self.image = image
        self.shape = tuple(image.shape)
        self.dtype = np.dtype(image.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        plain = len(key) == 2 and all(isinstance(k, slice) and k.step in (None, 1) for k in key)
        if plain and self.image.axes == ("y", "x"):
            (y0, y1, _), (x0, x1, _) = (k.indices(n) for k, n in zip(key, self.shape, strict=True))
            return self.image.read((y0, max(y0, y1), x0, max(x0, x1)))
        return np.asarray(self.image.lazy()[key].compute(scheduler="synchronous"))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[(slice(None),) * self.ndim]
        return out if dtype is None else out.astype(dtype)


def _run_here(fn: Callable, *args: Any) -> Any:
    """``fn(*args)`` on a worker; lazy (dask) arrays it reads are computed in this thread, not
    sent back to the cluster."""
    import dask

    with dask.config.set(scheduler="synchronous"):
        return fn(*args)


def submit_pair(client, fn: Callable, *args: Any, **kwargs: Any):
    """A future of ``fn(*args, **kwargs)`` (one whole pair, read and scored on a worker)."""
    return client.submit(_run_here, partial(fn, **kwargs), *args, pure=False)


def _block_task(gt: ImageRef, pred: ImageRef, index: tuple[int, ...], window):
    from ..qc.blockwise import window_counts

    return window_counts(gt.open(), pred.open(), index, window)


class BlockwisePair:
    """The block tasks of one label pair, submitted; :meth:`result` gathers and scores them."""

    def __init__(self, client, gt, pred, shape, *, name: str, threshold: float, block: int):
        from ..qc.blockwise import block_jobs

        self.shape, self.name, self.threshold = tuple(shape), name, threshold
        self.jobs = block_jobs(self.shape, block)
        n = len(self.jobs)
        self.futures = client.map(
            _block_task,
            [gt] * n,
            [pred] * n,
            [index for index, _ in self.jobs],
            [window for _, window in self.jobs],
            pure=False,
        )
        self.client = client

    def result(self) -> dict[str, Any]:
        from ..qc.blockwise import report_from_counts

        counts = self.client.gather(self.futures)
        return report_from_counts(
            self.shape, self.jobs, counts, name=self.name, threshold=self.threshold
        )

    def cancel(self) -> None:
        self.client.cancel(self.futures)


def submit_blocks(
    client, gt: ImageRef, pred: ImageRef, shape, *, name: str, threshold: float, block: int
) -> BlockwisePair:
    """Submit the blocks of a label pair of ``shape`` ``(..., Y, X)``: one task per block of
    each 2-D slice, each reading only its block (plus the SSIM halo) from ``gt`` and ``pred``."""
    return BlockwisePair(client, gt, pred, shape, name=name, threshold=threshold, block=block)


def gather_in_order(pending: Iterable) -> Iterator[Any]:
    """The results of futures (or :class:`BlockwisePair`) in their order, each let go once
    handed on (so workers free it); on an error, or when the caller stops early, the rest are
    cancelled."""
    queue = deque(pending)
    try:
        while queue:
            result = queue[0].result()
            queue.popleft()
            yield result
    finally:
        for item in queue:
            item.cancel()


def model_source(source: str) -> str:
    """A model as workers get it: a built-in name or ``auto`` as it is, a file or folder by its
    full path (workers may run elsewhere)."""
    from ..models.builtin import BUILTIN_MODELS
    from ..predict.auto import AUTO

    if source == AUTO or source in BUILTIN_MODELS or not Path(source).exists():
        return source
    return str(Path(source).resolve())


def _evaluate_task(
    source: str, pair, threshold: float, tta: bool, device: str, precision: str, backend: str
):
    from ..device import autocast_dtype, pick_device
    from ..qc.evaluate import score_pair

    dev = pick_device(device)
    models = worker_models()
    return score_pair(
        source,
        pair,
        threshold=threshold,
        tta=tta,
        dtype=autocast_dtype(precision, dev),
        get_model=lambda name: models.get(name, dev, backend),
    )


def evaluate_runner(
    client, *, threshold: float, tta: bool, device: str, precision: str, backend: str
) -> Callable:
    """A ``runner`` for :func:`napari_segqc.core.qc.evaluate.iter_evaluate`: every (spec, pair)
    predicted and scored on a worker, each image sent to the cluster once, results in order."""

    def run(todo: list) -> Iterator[tuple[np.ndarray, dict]]:
        pairs = {id(pair): pair for _, pair in todo}
        sent = dict(zip(pairs, client.scatter(list(pairs.values())), strict=True))
        args = (threshold, tta, device, precision, backend)
        yield from gather_in_order(
            client.submit(
                _evaluate_task, model_source(spec.source), sent[id(pair)], *args, pure=False
            )
            for spec, pair in todo
        )

    return run
