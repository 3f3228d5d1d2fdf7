"""Zarr and OME-Zarr images in, OME-Zarr labels out.

Reading (:func:`open_zarr_image`): a plain zarr array, or an OME-Zarr image (NGFF 0.4 or 0.5;
also the ``0/`` series of a bioformats2raw store), of which the full-resolution level is used.
OME axes of size 1 (``t``, ``c``, ``z``) are dropped, a channel axis of 3 or 4 becomes the
last (RGB), so the image has the layout the rest of the package takes: ``(..., H, W)`` or
``(..., H, W, 3|4)``. Nothing is read but metadata: :meth:`ZarrImage.lazy` is a dask array
and :meth:`ZarrImage.read` reads one window, so that workers read only their own blocks.

Writing (:mod:`.label_writer`) makes an OME-Zarr label image with a multiscale pyramid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SegQCError

ZARR_SUFFIX = ".zarr"
#: Files that mark a folder as a zarr node (zarr 3, zarr 2).
ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")
#: Axes a plain zarr array (no OME metadata) is taken to have, by its number of dimensions.
SPACE = ("y", "x")


def is_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a zarr store: a ``.zarr`` name, or a folder holding zarr
    metadata."""
    path = Path(path)
    if path.suffix.lower() == ZARR_SUFFIX:
        return True
    return path.is_dir() and any((path / m).is_file() for m in ZARR_MARKERS)


def zarr_stem(path: str | os.PathLike) -> str:
    """The name of a zarr store without ``.zarr`` (``cells.ome.zarr`` -> ``cells.ome``)."""
    name = Path(path).name
    return name[: -len(ZARR_SUFFIX)] if name.lower().endswith(ZARR_SUFFIX) else name


@dataclass(frozen=True)
class ZarrImage:
    """A zarr image seen in the package's layout, by reference (small, picklable: workers
    open the store themselves).

    ``root`` is the store's folder, ``array`` the array's path in it ("" for a root array);
    ``stored_axes`` names the stored axes, ``take`` says for each whether it is dropped (0:
    an axis of size 1) or kept (None); ``order`` puts the kept axes in the package's layout;
    ``shape`` is that layout's shape, ``axes`` its axis names (``y``, ``x``, ``c``, ...)."""

    root: str
    array: str
    shape: tuple[int, ...]
    dtype: str
    axes: tuple[str, ...]
    take: tuple[int | None, ...]
    order: tuple[int, ...]
    stored_axes: tuple[str, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def plane_shape(self) -> tuple[int, int]:
        i = self.axes.index("y")
        return self.shape[i], self.shape[i + 1]

    def _array(self):
        import zarr

        return zarr.open_array(store=self.root, path=self.array or None, mode="r")

    def lazy(self):
        """The whole image as a dask array (read chunk by chunk when computed)."""
        import dask.array as da

        data = da.from_zarr(self._array())
        index = tuple(slice(None) if t is None else t for t in self.take)
        return data[index].transpose(self.order)

    def read(self, window: tuple[int, int, int, int]) -> np.ndarray:
        """The pixels of ``window`` (y0, y1, x0, x1) of a 2-D image (grey or RGB) as numpy:
        only the chunks it touches are read."""
        if self.axes not in (SPACE, (*SPACE, "c")):
            raise SegQCError(f"block-wise reading takes 2-D images, got axes {self.axes}")
        y0, y1, x0, x1 = window
        index = []
        for name, t in zip(self.stored_axes, self.take, strict=True):
            if t is not None:
                index.append(t)
            elif name == "y":
                index.append(slice(y0, y1))
            elif name == "x":
                index.append(slice(x0, x1))
            else:
                index.append(slice(None))
        data = np.asarray(self._array()[tuple(index)])
        return data.transpose(self.order)


def open_zarr_image(path: str | os.PathLike) -> ZarrImage:
    """A :class:`ZarrImage` for a zarr array or an OME-Zarr image (its full-resolution
    level); a :class:`SegQCError` in one line for anything else (missing, corrupt, foreign,
    a missing level, axes the package cannot segment)."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise SegQCError(f"{path}: no such zarr store")
    if not path.is_dir():
        raise SegQCError(f"{path}: a zarr store is a folder; this is a file")
    try:
        node = zarr.open(store=str(path), mode="r")
    except Exception as exc:
        raise SegQCError(
            f"{path}: cannot be read as zarr ({exc.__class__.__name__}: {_first_line(exc)})"
        ) from None
    if isinstance(node, zarr.Array):
        return _plain(path, "", node)
    group, prefix = node, ""
    meta = _multiscales(group)
    if meta is None and "0" in _member_names(group):
        child = _get(group, "0", path)
        if isinstance(child, zarr.Group) and _multiscales(child) is not None:
            group, prefix, meta = child, "0/", _multiscales(child)  # bioformats2raw layout
    if meta is None:
        arrays = sorted(_member_names(group))[:3]
        hint = f" (it holds {', '.join(arrays)}: name one of them)" if arrays else ""
        raise SegQCError(
            f"{path}: a zarr group without OME-Zarr multiscales metadata, not an image{hint}"
        )
    datasets = meta.get("datasets") or []
    if not datasets or "path" not in datasets[0]:
        raise SegQCError(f"{path}: its multiscales metadata lists no levels (datasets)")
    level = str(datasets[0]["path"])
    if level not in _member_names(group):
        raise SegQCError(
            f"{path}: the full-resolution level {level!r} named in its multiscales metadata "
            "is missing"
        )
    array = _get(group, level, path)
    if not isinstance(array, zarr.Array):
        raise SegQCError(f"{path}: level {level!r} is a group, not an array")
    axes = _axis_names(meta.get("axes"), array.ndim, path)
    return _ome(path, prefix + level, array, axes)


def _get(group, name: str, path: Path):
    try:
        return group[name]
    except Exception as exc:
        raise SegQCError(
            f"{path}/{name}: cannot be read as zarr ({exc.__class__.__name__}: {_first_line(exc)})"
        ) from None


def _member_names(group) -> set[str]:
    try:
        return {name for name, _ in group.members()}
    except Exception:
        return set()


def _multiscales(group) -> dict | None:
    attrs = dict(group.attrs)
    ome = attrs.get("ome", attrs)  # NGFF 0.5 nests its metadata under "ome"
    scales = ome.get("multiscales") if isinstance(ome, dict) else None
    if isinstance(scales, list) and scales and isinstance(scales[0], dict):
        return scales[0]
    return None


def _axis_names(axes, ndim: int, path: Path) -> tuple[str, ...]:
    if axes is None:  # NGFF 0.1-0.2: always t, c, z, y, x (the last ndim of them)
        names = ("t", "c", "z", "y", "x")[-ndim:]
    else:
        names = tuple(a["name"] if isinstance(a, dict) else str(a) for a in axes)
    if len(names) != ndim or names[-2:] != SPACE:
        raise SegQCError(
            f"{path}: axes {list(names)} do not fit an image of {ndim} dimensions ending in y, x"
        )
    return names


def _plain(path: Path, name: str, array) -> ZarrImage:
    _check_dtype(path, array.dtype)
    shape = tuple(int(n) for n in array.shape)
    if len(shape) < 2:
        raise SegQCError(f"{path}: need an image of at least 2 dimensions, got shape {shape}")
    rgb = len(shape) >= 3 and shape[-1] in (3, 4)
    lead = len(shape) - (3 if rgb else 2)
    axes = (*(f"dim{i}" for i in range(lead)), *SPACE, *(("c",) if rgb else ()))
    order = tuple(range(len(shape)))
    take = (None,) * len(shape)
    return ZarrImage(str(path), name, shape, str(array.dtype), axes, take, order, axes)


def _ome(path: Path, name: str, array, names: tuple[str, ...]) -> ZarrImage:
    _check_dtype(path, array.dtype)
    shape = tuple(int(n) for n in array.shape)
    take: list[int | None] = []
    kept: list[str] = []
    for axis, n in zip(names, shape, strict=True):
        if n == 1 and axis not in SPACE:
            take.append(0)
        else:
            take.append(None)
            kept.append(axis)
    if "c" in kept:
        channels = shape[names.index("c")]
        if channels not in (3, 4):
            raise SegQCError(
                f"{path}: {channels} channels; segqc segments grey or RGB images: save the "
                "nuclear channel on its own (or 3 channels as RGB)"
            )
    lead = [a for a in kept if a not in (*SPACE, "c")]
    layout = [*lead, *SPACE, *(["c"] if "c" in kept else [])]
    order = tuple(kept.index(a) for a in layout)
    out_shape = tuple(shape[names.index(a)] for a in layout)
    dtype = str(array.dtype)
    return ZarrImage(str(path), name, out_shape, dtype, tuple(layout), tuple(take), order, names)


def _check_dtype(path: Path, dtype) -> None:
    kind = np.dtype(dtype).kind if not hasattr(dtype, "to_native_dtype") else None
    if kind is None:
        kind = np.dtype(dtype.to_native_dtype()).kind
    if kind not in "biuf":
        raise SegQCError(f"{path}: values of type {dtype} are not an image")


def read_zarr_image(path: str | os.PathLike):
    """A zarr / OME-Zarr image (full-resolution level) as a lazy dask array."""
    return open_zarr_image(path).lazy()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
