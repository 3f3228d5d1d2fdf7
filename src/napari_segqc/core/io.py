"""Reading and writing images and tables, and pairing ground-truth and prediction files by
name."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SegQCError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".npy")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a TIFF, PNG/JPEG/BMP or ``.npy`` file into a numpy array.

    ``.npy`` files are read with ``allow_pickle=False``: a file holding Python objects is
    refused rather than executed.
    """
    path = Path(path)
    if not path.is_file():
        raise SegQCError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(path))
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix in IMAGE_SUFFIXES:
            import skimage.io

            return np.asarray(skimage.io.imread(path))
    except Exception as exc:  # corrupt or foreign file: one clear line, no traceback
        msg = f"{path}: cannot be read as an image ({exc.__class__.__name__}: {exc})"
        raise SegQCError(msg) from None
    raise SegQCError(f"{path}: unsupported file type {suffix!r}; use one of {IMAGE_SUFFIXES}")


def list_images(folder: Path) -> dict[str, Path]:
    """Image files of a folder keyed by their name without suffix (hidden files skipped)."""
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in files:
                raise SegQCError(
                    f"{folder}: two files are named {p.stem!r} ({files[p.stem].name}, {p.name})"
                )
            files[p.stem] = p
    return files


def pair_files(gt: str | os.PathLike, pred: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """Pair ground-truth and prediction files: two files, or two folders paired by file name.

    Returns ``(name, gt_file, pred_file)`` tuples sorted by name. Names present on one side
    only are an error, so that a QC report never silently covers fewer images than asked.
    """
    gt, pred = Path(gt), Path(pred)
    for p, what in ((gt, "ground truth"), (pred, "prediction")):
        if not p.exists():
            raise SegQCError(f"{what} {p}: no such file or folder")
    if gt.is_file() and pred.is_file():
        return [(pred.stem, gt, pred)]
    if gt.is_dir() and pred.is_dir():
        g, p = list_images(gt), list_images(pred)
        only_gt, only_pred = sorted(set(g) - set(p)), sorted(set(p) - set(g))
        if only_gt or only_pred:
            parts = []
            if only_gt:
                parts.append(f"no prediction for {_few(only_gt)}")
            if only_pred:
                parts.append(f"no ground truth for {_few(only_pred)}")
            raise SegQCError(f"unpaired files between {gt} and {pred}: " + "; ".join(parts))
        if not g:
            raise SegQCError(f"{gt}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        return [(name, g[name], p[name]) for name in sorted(g)]
    raise SegQCError(f"--gt {gt} and --pred {pred} must both be files or both be folders")


def _few(names: list[str], n: int = 5) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def write_atomic(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` and then rename the temporary file onto ``path``.

    A crash or an error while writing never leaves a half-written file at ``path``. The file
    gets the permissions a plainly created file would (``0o666`` less the umask), not the
    owner-only ones of temporary files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return mask


def write_tiff(path: str | os.PathLike, data: np.ndarray) -> Path:
    """Write ``data`` as a (zlib-compressed) TIFF, atomically."""
    import tifffile

    return write_atomic(path, lambda tmp: tifffile.imwrite(tmp, data, compression="zlib"))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a UTF-8 text file atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as CSV text with a header of ``columns`` (keys outside them are left out)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
