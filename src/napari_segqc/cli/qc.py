"""``segqc qc``: score predictions against ground truth (the work is in ``core.qc``)."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .common import output_folder

KINDS = ("auto", "labels", "image")


def add_parser(sub) -> None:
    qc = sub.add_parser(
        "qc",
        help="score predictions against ground truth (pixel, object and image scores, maps)",
        description="Compare predictions with ground truth. PATH: a file, or a folder whose "
        "files are paired by name (suffix ignored).",
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
    qc.set_defaults(func=run_qc_command)


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


def run_qc_command(args: argparse.Namespace) -> int:
    from ..core.errors import SegQCError
    from ..core.io import pair_files, read_image, write_text, write_tiff
    from ..core.qc.inputs import looks_like_image
    from ..core.qc.report import dataset_report, scores_csv, to_json
    from ..core.qc.run import run_qc

    if args.maps and not args.out:
        raise SegQCError("--maps needs --out DIR to write the maps into")
    if not 0.0 < args.threshold <= 1.0:
        raise SegQCError(f"--threshold must be in (0, 1], got {args.threshold}")
    pairs = pair_files(args.gt, args.pred)
    out = output_folder(args.out) if args.out else None
    entries = []
    for name, gt_file, pred_file in pairs:
        gt_raw, pred_raw = read_image(gt_file), read_image(pred_file)
        gt, gt_is_labels = _as_side(gt_raw, args.gt_kind, pred_raw.shape)
        pred, pred_is_labels = _as_side(pred_raw, args.pred_kind, gt_raw.shape)
        for side, data, is_labels, path in (
            ("gt", gt, gt_is_labels, gt_file),
            ("pred", pred, pred_is_labels, pred_file),
        ):
            if is_labels and looks_like_image(data):
                print(
                    f"segqc qc: warning: {path} is read as labels but looks like a grey-value "
                    f"image (most pixels non-zero, many values, no uniform regions): if it is "
                    f"one, pass --{side}-kind image",
                    file=sys.stderr,
                )
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
                threshold=args.threshold,
                foreground_threshold=args.foreground_threshold,
                maps=args.maps,
            )
        except SegQCError as exc:
            raise SegQCError(f"{name}: {exc}") from None
        entries.append(result.report)
        if not args.json:
            print(summary_line(result.report, args.threshold))
        if args.maps:
            for kind, data in result.maps.items():
                write_tiff(out / f"{name}_{kind}.tif", data)
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
