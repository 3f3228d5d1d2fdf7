"""OME-Zarr label images, written chunk by chunk, atomically, with a multiscale pyramid.

The store is built in a hidden folder beside the target (``.NAME.tmp-XXXX``) and renamed onto
it when complete; on any error the hidden folder is removed, so a failed or stopped run never
leaves a half-written store, and an older store at the target stays as it was until the new one
replaces it. Level 0 holds the labels (uint32, chunks of :data:`CHUNK` pixels or the block
side's divisor); each further level halves both sides, every output pixel taking the most
frequent label of its 2 x 2 pixels (ties: the top-left one), so outlines stay crisp and no id is
invented. Pyramid levels are computed chunk by chunk from the level below (bounded memory,
independent tasks that a cluster can run in parallel). The metadata (NGFF multiscales, via
``ome_zarr``, plus ``image-label``) lets napari and ``ome_zarr`` open the result lazily.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..errors import SegQCError
from .zarr_io import ZARR_MARKERS, zarr_stem

#: Chunk side of label stores (pixels).
CHUNK = 1024
#: Pyramid levels stop once the longest side is at most this many pixels ...
PYRAMID_SMALLEST = 512
#: ... or at this many levels (napari sorts level names as text: keep them one digit).
MAX_LEVELS = 8
LABEL_DTYPE = np.uint32


def chunk_for(block: int | None) -> int:
    """Chunk side for a label store written by blocks of side ``block``: a divisor of it (so
    that two blocks never write into one chunk), at most :data:`CHUNK`."""
    return CHUNK if block is None else math.gcd(int(block), CHUNK)


def level_shapes(shape: tuple[int, int]) -> list[tuple[int, int]]:
    """Shapes of the pyramid's levels, full resolution first."""
    shapes = [tuple(int(n) for n in shape)]
    while max(shapes[-1]) > PYRAMID_SMALLEST and len(shapes) < MAX_LEVELS:
        h, w = shapes[-1]
        shapes.append((-(-h // 2), -(-w // 2)))
    return shapes


def downsample_labels(labels: np.ndarray) -> np.ndarray:
    """Labels at half the size (odd sides rounded up): each pixel the most frequent label of
    its 2 x 2 pixels, ties to the first (top-left, top-right, bottom-left, bottom-right)."""
    h, w = labels.shape
    if h % 2 or w % 2:
        labels = np.pad(labels, ((0, h % 2), (0, w % 2)), mode="edge")
    quad = [labels[0::2, 0::2], labels[0::2, 1::2], labels[1::2, 0::2], labels[1::2, 1::2]]
    counts = [sum((q == r).astype(np.uint8) for r in quad) for q in quad]
    best, top = quad[0].copy(), counts[0]
    for q, c in zip(quad[1:], counts[1:], strict=True):
        better = c > top
        best[better] = q[better]
        top = np.maximum(top, c)
    return best


def check_target(path: str | os.PathLike, option: str = "--out") -> Path:
    """A target for a label store: refused (one line) when it is a file or a folder that is
    not a zarr store (it would be replaced)."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise SegQCError(f"{option} {path} is a file: name a new .zarr store")
        if any(path.iterdir()) and not any((path / m).is_file() for m in ZARR_MARKERS):
            raise SegQCError(
                f"{option} {path} is a folder that is not a zarr store: it would be replaced; "
                "name a new .zarr store"
            )
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise SegQCError(f"{option} {path}: cannot create it ({parent} is not a writable folder)")
    return path


def downsample_chunk(tmp: str, level: int, box: tuple[int, int, int, int]) -> None:
    """Level ``level``'s chunk ``box`` (y0, y1, x0, x1) from level ``level - 1``."""
    import zarr

    y0, y1, x0, x1 = box
    src = zarr.open_array(store=tmp, path=str(level - 1), mode="r")
    dst = zarr.open_array(store=tmp, path=str(level), mode="r+")
    below = np.asarray(src[2 * y0 : 2 * y1, 2 * x0 : 2 * x1])
    dst[y0:y1, x0:x1] = downsample_labels(below)[: y1 - y0, : x1 - x0]


def _boxes(shape: tuple[int, int], chunk: int) -> list[tuple[int, int, int, int]]:
    h, w = shape
    return [
        (y, min(y + chunk, h), x, min(x + chunk, w))
        for y in range(0, h, chunk)
        for x in range(0, w, chunk)
    ]


def run_here(fn: Callable, jobs: Iterable[tuple]) -> None:
    """Run ``fn(*job)`` for every job, in this process (the default task runner)."""
    for job in jobs:
        fn(*job)


class LabelStoreWriter:
    """An OME-Zarr label image of ``shape`` (H, W) being written at ``path``.

    Use as a context manager: level 0 (:attr:`level0`, a store path and array name that
    workers open themselves) is filled by the caller, chunk-aligned; :meth:`finish` builds the
    pyramid (``runner(fn, jobs)`` runs its chunk tasks: here, or on a cluster), writes the
    metadata and renames the store into place. Leaving the block with an error, or without
    :meth:`finish`, removes everything written."""

    def __init__(
        self, path: str | os.PathLike, shape: tuple[int, int], *, chunk: int = CHUNK, name=None
    ) -> None:
        self.path = check_target(path)
        self.shape = (int(shape[0]), int(shape[1]))
        self.chunk = int(chunk)
        self.name = name or zarr_stem(self.path)
        self.tmp = self.path.parent / f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}"
        self._done = False

    def __enter__(self) -> LabelStoreWriter:
        import zarr

        self.path.parent.mkdir(parents=True, exist_ok=True)
        group = zarr.open_group(store=str(self.tmp), mode="w-", zarr_format=3)
        for level, shape in enumerate(level_shapes(self.shape)):
            group.create_array(
                str(level),
                shape=shape,
                chunks=(min(self.chunk, shape[0]), min(self.chunk, shape[1])),
                dtype=LABEL_DTYPE,
                fill_value=0,
                dimension_names=("y", "x"),
            )
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if not self._done:
            shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def level0(self) -> tuple[str, str]:
        """Where level 0 is: (store folder, array name)."""
        return str(self.tmp), "0"

    def write(self, labels: np.ndarray) -> None:
        """Level 0 from an in-memory label image, chunk row by chunk row."""
        import zarr

        if labels.shape != self.shape:
            raise ValueError(f"labels of shape {labels.shape} for a store of {self.shape}")
        if labels.size and int(labels.max()) > np.iinfo(LABEL_DTYPE).max:
            raise SegQCError("more objects than uint32 ids can number")
        array = zarr.open_array(store=str(self.tmp), path="0", mode="r+")
        for y in range(0, self.shape[0], self.chunk):
            array[y : y + self.chunk] = labels[y : y + self.chunk].astype(LABEL_DTYPE, copy=False)

    def finish(self, runner: Callable = run_here, *, count: int | None = None) -> Path:
        """Pyramid, metadata, then the store renamed onto the target (an older store there is
        replaced only now). ``count``: the number of objects, kept in the metadata."""
        shapes = level_shapes(self.shape)
        for level in range(1, len(shapes)):
            jobs = [(str(self.tmp), level, box) for box in _boxes(shapes[level], self.chunk)]
            runner(downsample_chunk, jobs)
        self._write_metadata(len(shapes), count)
        _swap_into_place(self.tmp, self.path)
        self._done = True
        return self.path

    def _write_metadata(self, levels: int, count: int | None) -> None:
        import zarr
        from ome_zarr.format import CurrentFormat
        from ome_zarr.writer import write_multiscales_metadata

        group = zarr.open_group(store=str(self.tmp), mode="r+")
        datasets = [
            {
                "path": str(level),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [float(2**level), float(2**level)]}
                ],
            }
            for level in range(levels)
        ]
        fmt = CurrentFormat()
        write_multiscales_metadata(
            group, datasets, fmt=fmt, axes=["y", "x"], name=self.name, metadata={"method": MODE}
        )
        ome = dict(group.attrs["ome"])
        ome["image-label"] = {"version": fmt.version}
        attrs = {"ome": ome}
        if count is not None:
            attrs["napari_segqc"] = {"objects": int(count)}
        group.attrs.update(attrs)


MODE = "napari_segqc: most frequent label of each 2 x 2 pixels"


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished store ``tmp`` onto ``path``; an older store there is moved aside
    first and removed once the new one is in place (put back if the rename fails)."""
    if not path.exists():
        os.replace(tmp, path)
        return
    old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_label_store(path: str | os.PathLike, labels: np.ndarray, *, name=None) -> Path:
    """Write an in-memory 2-D label image as an OME-Zarr label store at ``path``, atomically,
    with its pyramid."""
    if labels.ndim != 2:
        raise SegQCError(
            f"OME-Zarr label output takes 2-D label images, got shape {labels.shape}: write "
            "stacks as TIFF (--out a folder)"
        )
    with LabelStoreWriter(path, labels.shape, name=name) as writer:
        writer.write(labels)
        return writer.finish(count=int(labels.max()) if labels.size else 0)
