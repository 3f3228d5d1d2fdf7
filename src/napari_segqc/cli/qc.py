"""``segqc qc``: score predictions against ground truth (the work is in ``core.qc``)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import add_cluster_options, output_folder

KINDS = ("auto", "labels", "image")


def add_parser(sub) -> None:
    qc = sub.add_parser(
        "qc",
        help="score predictions against ground truth (pixel, object and image scores, maps)",
        description="Compare predictions with ground truth. PATH: a file, a .zarr / OME-Zarr "
        "image, or a folder whose files are paired by name (suffix ignored). With --scheduler "
        "or --workers the pairs are compared on a dask cluster, one task per pair, and label "
        "pairs larger than --block block by block; the report is the same.",
    )
    qc.add_argument("--gt", required=True, metavar="PATH", help="ground-truth file or folder")
    qc.add_argument("--pred", required=True, metavar="PATH", help="prediction file or folder")
    qc.add_argument(
        "--out",
        metavar="DIR",
        help="write qc_report.json and qc_scores.csv here (default: the report is not written)",
    )
    qc.add_argument("--maps", action="store_true", help="also write the maps as TIFFs into --out")
    qc.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    qc.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        metavar="TAU",
        help="IoU threshold for matching objects in the maps, the CSV and the text summary",
    )
    for side in ("gt", "pred"):
        qc.add_argument(
            f"--{side}-kind",
            choices=KINDS,
            default="auto",
            help=f"{side} files are instance labels or grey-value images "
            "(auto: integer files are labels, float files are images)",
        )
    qc.add_argument(
        "--foreground-threshold",
        type=float,
        default=None,
        metavar="T",
        help="threshold turning grey-value images into foreground (default: Otsu's)",
    )
    cluster = add_cluster_options(qc, readable="images")
    cluster.add_argument(
        "--block",
        type=int,
        metavar="N",
        help="label pairs larger than N pixels a side are matched block by block, each block "
        "read on its own (TIFF, .npy, zarr), in parallel on the cluster; the same scores "
        "(SSIM to ~1e-9); not with --maps (default: 4096 with --scheduler/--workers, else "
        "pairs are compared whole)",
    )
    qc.set_defaults(func=run_qc_command)


@dataclass(frozen=True)
class PairSettings:
    """How every pair is compared (what a worker is given with each pair)."""

    gt_kind: str = "auto"
    pred_kind: str = "auto"
    threshold: float = 0.5
    foreground_threshold: float | None = None
    maps: bool = False


def _kind(data: np.ndarray, kind: str) -> bool:
    """True if ``data`` is to be read as instance labels."""
    return data.dtype.kind in "biu" if kind == "auto" else kind == "labels"


def _as_side(data: np.ndarray, kind: str, other_shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    """One side as (array, is_labels); an RGB(A) file facing a grey one becomes grey values."""
    from ..core.qc.inputs import to_grayscale

    looks_rgb = data.ndim == 3 and data.shape[-1] in (3, 4)
    if looks_rgb and kind != "labels" and (kind == "image" or other_shape == data.shape[:-1]):
        return to_grayscale(data), False
    return data, _kind(data, kind)


def _read(path: Path):
    """A file as numpy, a zarr / OME-Zarr image as a lazily read array."""
    from ..core.distributed.qc_tasks import ImageRef
    from ..core.distributed.zarr_io import is_zarr
    from ..core.io import read_image

    return ImageRef.of(path).open() if is_zarr(path) else read_image(path)


def _warn(line: str) -> None:
    print(line, file=sys.stderr)


def _warnings(sides) -> list[str]:
    """A warning for each side read as labels that looks like a grey-value image."""
    from ..core.qc.inputs import looks_like_image

    return [
        f"segqc qc: warning: {path} is read as labels but looks like a grey-value "
        f"image (most pixels non-zero, many values, no uniform regions): if it is "
        f"one, pass --{side}-kind image"
        for side, data, is_labels, path in sides
        if is_labels and looks_like_image(data)
    ]


def qc_pair(name, gt_file, pred_file, settings: PairSettings, *, read_from=None, warn=None):
    """One pair read and compared whole, here or on a dask worker: ``(report, maps or None,
    warnings)``. ``read_from``: the (gt, pred) paths to read, if not the ones named in
    messages (workers get full paths); ``warn``: called with each warning now (else they are
    returned)."""
    from ..core.errors import SegQCError
    from ..core.qc.run import run_qc

    gt_raw, pred_raw = (_read(Path(f)) for f in read_from or (gt_file, pred_file))
    gt, gt_is_labels = _as_side(gt_raw, settings.gt_kind, pred_raw.shape)
    pred, pred_is_labels = _as_side(pred_raw, settings.pred_kind, gt_raw.shape)
    warnings = _warnings(
        [
            ("gt", gt, gt_is_labels, gt_file),
            ("pred", pred, pred_is_labels, pred_file),
        ]
    )
    for line in warnings if warn else []:
        warn(line)
    if gt.shape != pred.shape:
        raise SegQCError(
            f"{name}: prediction {pred_file} has shape {pred.shape} but ground truth "
            f"{gt_file} has shape {gt.shape}"
        )
    try:
        result = run_qc(
            gt,
            pred,
            name=name,
            gt_is_labels=gt_is_labels,
            pred_is_labels=pred_is_labels,
            threshold=settings.threshold,
            foreground_threshold=settings.foreground_threshold,
            maps=settings.maps,
        )
    except SegQCError as exc:
        raise SegQCError(f"{name}: {exc}") from None
    return result.report, result.maps, [] if warn else warnings


def _pairs(gt: str, pred: str) -> list[tuple[str, Path, Path]]:
    """(name, gt, pred): files or folders paired by name, or one pair with a zarr store."""
    from ..core.distributed.zarr_io import is_zarr, zarr_stem
    from ..core.errors import SegQCError
    from ..core.io import pair_files

    if not (is_zarr(gt) or is_zarr(pred)):
        return pair_files(gt, pred)
    for p, what in ((gt, "ground truth"), (pred, "prediction")):
        if not Path(p).exists():
            raise SegQCError(f"{what} {p}: no such file or folder")
    name = zarr_stem(pred) if is_zarr(pred) else Path(pred).stem
    return [(name, Path(gt), Path(pred))]


class _Here:
    """A pair's work run in this process when its result is asked for."""

    def __init__(self, fn, *args, **kwargs) -> None:
        self.call = lambda: fn(*args, **kwargs)

    def result(self):
        return self.call()

    def cancel(self) -> None:
        pass


def _blockwise(name, gt_file, pred_file, settings: PairSettings, block: int, client):
    """The pending block-wise QC of a pair, or None if it is compared whole (not two label
    images of the same shape larger than ``block``); warnings are printed now."""
    from ..core.distributed.qc_tasks import ImageRef, submit_blocks
    from ..core.qc.blockwise import blockwise_qc_report, needs_blocks

    refs = ImageRef.of(gt_file), ImageRef.of(pred_file)
    if not all(ref.lazy for ref in refs):
        return None
    gt, pred = (ref.open() for ref in refs)
    shape = tuple(gt.shape)
    if shape != tuple(pred.shape) or not needs_blocks(shape, block):
        return None
    if not (_kind(gt, settings.gt_kind) and _kind(pred, settings.pred_kind)):
        return None
    for line in _warnings([("gt", gt, True, gt_file), ("pred", pred, True, pred_file)]):
        _warn(line)
    kwargs = {"name": name, "threshold": settings.threshold, "block": block}
    if client is None:
        return _Here(blockwise_qc_report, gt, pred, **kwargs)
    return submit_blocks(client, *refs, shape, **kwargs)


def _entries(pairs, settings: PairSettings, block: int | None, client, out, quiet: bool):
    """Every pair's report (on a cluster, all pairs are submitted at once), its line printed
    (unless ``quiet``) and its maps written as it comes, in order."""
    from ..core.distributed.qc_tasks import gather_in_order, submit_pair
    from ..core.errors import SegQCError
    from ..core.io import write_tiff

    pending, whole = [], []
    for name, gt_file, pred_file in pairs:
        task = None
        if block is not None and not settings.maps:
            task = _blockwise(name, gt_file, pred_file, settings, block, client)
        whole.append(task is None)
        if task is None and client is None:
            task = _Here(qc_pair, name, gt_file, pred_file, settings, warn=_warn)
        elif task is None:
            files = (Path(gt_file).resolve(), Path(pred_file).resolve())
            task = submit_pair(client, qc_pair, name, gt_file, pred_file, settings, read_from=files)
        pending.append(task)
    entries = []
    results = gather_in_order(pending)
    del pending  # each result is let go once handled
    for (name, _, _), is_whole in zip(pairs, whole, strict=True):
        try:
            result = next(results)
        except SegQCError as exc:
            results.close()
            raise exc if is_whole else SegQCError(f"{name}: {exc}") from None
        report, maps, warnings = result if is_whole else (result, None, [])
        for line in warnings:
            _warn(line)
        entries.append(report)
        if not quiet:
            print(summary_line(report, settings.threshold))
        if maps is not None:
            for kind, data in maps.items():
                write_tiff(out / f"{name}_{kind}.tif", data)
    return entries


def run_qc_command(args: argparse.Namespace) -> int:
    from ..core.errors import SegQCError
    from ..core.io import write_text
    from ..core.qc.blockwise import DEFAULT_BLOCK, check_block
    from ..core.qc.report import dataset_report, scores_csv, to_json

    if args.maps and not args.out:
        raise SegQCError("--maps needs --out DIR to write the maps into")
    if args.maps and args.block is not None:
        raise SegQCError("--block does not go with --maps: pairs with maps are compared whole")
    if not 0.0 < args.threshold <= 1.0:
        raise SegQCError(f"--threshold must be in (0, 1], got {args.threshold}")
    cluster = bool(args.scheduler) or args.workers is not None
    block = args.block
    if block is not None:
        check_block(block)
    elif cluster:
        block = DEFAULT_BLOCK
    pairs = _pairs(args.gt, args.pred)
    out = output_folder(args.out) if args.out else None
    settings = PairSettings(
        args.gt_kind, args.pred_kind, args.threshold, args.foreground_threshold, args.maps
    )
    if cluster:
        from ..core.distributed.cluster import dask_client

        with dask_client(args.scheduler, args.workers) as client:
            entries = _entries(pairs, settings, block, client, out, args.json)
    else:
        entries = _entries(pairs, settings, block, None, out, args.json)
    report = dataset_report(entries)
    if out is not None:
        write_text(out / "qc_report.json", to_json(report, indent=2) + "\n")
        write_text(out / "qc_scores.csv", scores_csv(report, args.threshold))
    if args.json:
        print(to_json(report, indent=2))
    else:
        print(summary_line({"name": "summary", **report["summary"]}, args.threshold))
    return 0


def summary_line(entry: dict, threshold: float) -> str:
    from ..core.qc.report import score_row

    r = score_row(entry, threshold)
    dsb = "n/a" if r["dsb_score"] is None else f"{r['dsb_score']:.3f}"
    return (
        f"{r['name']}: pixel IoU {r['pixel_iou']:.3f} | objects@{threshold:.2f} "
        f"F1 {r['f1']:.3f} accuracy {r['accuracy']:.3f} (TP {r['tp']} FP {r['fp']} FN {r['fn']})"
        f" | DSB {dsb} | SSIM {r['ssim']:.3f}"
    )
