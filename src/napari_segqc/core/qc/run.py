"""Quality control of one prediction against its ground truth: scores and maps, slice by slice.

The inputs are arrays of the same shape, 2-D ``(Y, X)`` or stacks ``(..., Y, X)`` where every
2-D slice is an independent image (time-lapse frames, z-slices). Each side is either an
instance label image (``is_labels=True``: 0 = background) or a grey-value image (a probability
map, a restoration, a raw image). What is compared:

* objects and pixels: label images as they are; a grey-value image is thresholded
  (``foreground_threshold``, Otsu's threshold by default) and split into connected components;
* image similarity (SSIM, RSE, NRMSE, PSNR): a label image as its binary foreground (0/1); a
  grey-value ground truth percentile-normalised 0.1-99.9 %; a grey-value prediction mapped onto
  the ground truth's scale by a least-squares affine fit (the ZeroCostDL4Mic normalisation, see
  :func:`napari_segqc.core.qc.similarity.normalize_pair`). SSIM then uses ``data_range=1``.

:func:`iter_qc` is a generator that yields a :class:`QCProgress` after every slice and returns a
:class:`QCResult`, so a GUI can run it in a worker thread, show progress and stop it between
slices; :func:`run_qc` and :func:`qc_report` are the plain-call versions.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SegQCError, Stopped
from .inputs import as_intensity, as_labels, check_pair, read_slice
from .matching import THRESHOLD_SWEEP, match_objects, match_pairs, threshold_key
from .pixel import error_map, object_iou_map, pixel_counts
from .report import combine_reports, make_entry
from .similarity import fit_to, nrmse, psnr, rse_map, ssim


@dataclass(frozen=True)
class QCProgress:
    """Progress of a QC run: ``done`` of ``total`` slices finished."""

    done: int
    total: int


@dataclass
class QCMaps:
    """Per-pixel maps, each of the inputs' (grey-level) shape.

    ``error``: uint8 classes of :data:`napari_segqc.core.qc.pixel.ERROR_CLASSES`;
    ``object_iou``: float32, each ground-truth object painted with its matched IoU (0 when
    missed, NaN on background); ``ssim``: float32 local SSIM; ``rse``: float32 root squared error.
    """

    error: np.ndarray
    object_iou: np.ndarray
    ssim: np.ndarray
    rse: np.ndarray

    def items(self) -> list[tuple[str, np.ndarray]]:
        return [
            ("error", self.error),
            ("object_iou", self.object_iou),
            ("ssim", self.ssim),
            ("rse", self.rse),
        ]


@dataclass
class QCResult:
    """The report entry of the pair (with ``"slices"`` for stacks) and, if asked, the maps."""

    report: dict[str, Any]
    maps: QCMaps | None = None


def iter_qc(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    name: str = "",
    gt_is_labels: bool = True,
    pred_is_labels: bool = True,
    threshold: float = 0.5,
    foreground_threshold: float | None = None,
    maps: bool = True,
    stop: Callable[[], bool] | None = None,
) -> Generator[QCProgress, None, QCResult]:
    """Compare ``pred`` with ``gt`` slice by slice, yielding progress; return a :class:`QCResult`.

    Parameters
    ----------
    gt, pred : array-like
        Same shape, ``(Y, X)`` or ``(..., Y, X)``; numpy, or lazy arrays (dask, zarr) that are
        read one 2-D slice at a time. RGB images must be converted first
        (:func:`.inputs.to_grayscale`).
    name : str
        Name of the pair in the report.
    gt_is_labels, pred_is_labels : bool
        Whether each side is an instance label image or a grey-value image.
    threshold : float
        IoU threshold τ used for the maps; the report holds the sweep 0.50:0.05:0.95 plus τ.
    foreground_threshold : float, optional
        Threshold that turns a grey-value image into foreground; Otsu's when None.
    maps : bool
        Also compute the error, object-IoU, SSIM and RSE maps.
    stop : callable, optional
        Polled before each slice; when it returns True, :class:`Stopped` is raised.
    """
    gt, pred = (
        x if hasattr(x, "shape") and hasattr(x, "dtype") else np.asarray(x) for x in (gt, pred)
    )
    check_pair(gt, pred)
    thresholds = report_thresholds(threshold)
    indices = list(np.ndindex(gt.shape[:-2]))
    out = None
    if maps:
        out = QCMaps(
            error=np.zeros(gt.shape, np.uint8),
            object_iou=np.full(gt.shape, np.nan, np.float32),
            ssim=np.zeros(gt.shape, np.float32),
            rse=np.zeros(gt.shape, np.float32),
        )
    entries = []
    for done, index in enumerate(indices):
        if stop is not None and stop():
            raise Stopped("quality control stopped")
        g, p = read_slice(gt, index, "ground truth"), read_slice(pred, index, "prediction")
        gl = as_labels(
            g,
            is_labels=gt_is_labels,
            foreground_threshold=foreground_threshold,
            name="ground truth",
        )
        pl = as_labels(
            p,
            is_labels=pred_is_labels,
            foreground_threshold=foreground_threshold,
            name="prediction",
        )
        gi = as_intensity(g, gl, is_labels=gt_is_labels)
        pi = (pl > 0).astype(np.float32) if pred_is_labels else fit_to(p, gi)
        objects = match_objects(gl, pl, thresholds=thresholds)
        image = {
            "nrmse": nrmse(gi, pi, normalize=False),
            "psnr": psnr(gi, pi, data_range=1.0, normalize=False),
        }
        if maps:
            image["ssim"], out.ssim[index] = ssim(
                gi, pi, data_range=1.0, normalize=False, full=True
            )
            out.rse[index] = rse_map(gi, pi, normalize=False)
            match = match_pairs(gl, pl, threshold=threshold)
            out.error[index] = error_map(gl, pl, threshold=threshold, match=match)
            out.object_iou[index] = object_iou_map(gl, pl, threshold=threshold, match=match)
        else:
            image["ssim"] = ssim(gi, pi, data_range=1.0, normalize=False)
        entries.append(slice_entry(name, index, pixel_counts(gl, pl), objects, image))
        yield QCProgress(done + 1, len(indices))
    return QCResult(report=pair_report(entries, name, threshold), maps=out)


def report_thresholds(threshold: float) -> list[float]:
    """The IoU thresholds a report holds: the sweep 0.50:0.05:0.95 and ``threshold`` (checked)."""
    if not 0.0 < threshold <= 1.0:
        raise SegQCError(f"IoU threshold must be in (0, 1], got {threshold}")
    return sorted({*THRESHOLD_SWEEP, round(float(threshold), 2)})


def slice_entry(name: str, index: tuple[int, ...], pixel, objects, image) -> dict[str, Any]:
    """The report entry of one 2-D slice (``index`` into the leading axes, () for 2-D)."""
    entry = make_entry(_slice_name(name, index), pixel, objects, image)
    if index:
        entry["index"] = [int(i) for i in index]
    return entry


def pair_report(entries: list[dict[str, Any]], name: str, threshold: float) -> dict[str, Any]:
    """The report of a pair from its slices' entries (a stack's lists them as ``"slices"``)."""
    if len(entries) == 1:
        report = entries[0]
        report["name"] = name
    else:
        report = combine_reports(entries, name=name)
        report["slices"] = entries
    report["threshold"] = threshold_key(threshold)
    return report


def _slice_name(name: str, index: tuple[int, ...]) -> str:
    return f"{name}[{', '.join(map(str, index))}]" if index else name


def run_qc(gt: np.ndarray, pred: np.ndarray, **kwargs: Any) -> QCResult:
    """:func:`iter_qc` run to the end (same arguments)."""
    gen = iter_qc(gt, pred, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return done.value


def qc_report(gt: np.ndarray, pred: np.ndarray, *, name: str = "", **kwargs: Any) -> dict[str, Any]:
    """The JSON-able report of SPEC.md for one pair, without maps; see :func:`iter_qc`.

    Combine the reports of many pairs with :func:`napari_segqc.core.qc.report.dataset_report`.
    """
    return run_qc(gt, pred, name=name, maps=False, **kwargs).report
