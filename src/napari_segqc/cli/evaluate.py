"""``segqc evaluate``: models (or every checkpoint of a run) scored over a QC set, compared,
with a self-contained HTML report (the work is in ``core.qc.evaluate``)."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from .common import add_cluster_options, add_device_options, output_folder


def add_parser(sub) -> None:
    from ..core.qc.evaluate import METRICS

    p = sub.add_parser(
        "evaluate",
        help="score models or a run's checkpoints on a QC set; compare; HTML report",
        description="Run each model over the images of --images, decode with its settings and "
        "score the labels against --gt exactly as `segqc qc` does. Writes evaluation.csv (one "
        "row per model and image), summary.csv (one row per model or checkpoint, counts "
        "summed; best marked), evaluation.json (a QC report per model) and report.html. With "
        "--scheduler or --workers every (model, image) is predicted and scored on a dask "
        "cluster, with the same results.",
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="MODEL",
        help="'auto' (the built-in model that fits each image), a built-in name, a run folder "
        "(its best, else last), a model file (.safetensors, .onnx, .pt) or a bioimage.io "
        "package (.zip); repeat to compare models",
    )
    p.add_argument(
        "--checkpoints",
        action="store_true",
        help="score every epoch_NNN, best and last checkpoint of each run folder --model",
    )
    p.add_argument("--images", required=True, metavar="DIR", help="images of the QC set")
    p.add_argument("--gt", required=True, metavar="DIR", help="ground-truth labels (by name)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    p.add_argument(
        "--threshold", type=float, default=0.5, metavar="TAU", help="IoU threshold of the scores"
    )
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation")
    p.add_argument(
        "--metric", default="accuracy", choices=METRICS, help="what the best model is chosen by"
    )
    p.add_argument(
        "--promote",
        action="store_true",
        help="with --checkpoints: copy the best checkpoint to best_qc.safetensors in the run",
    )
    p.add_argument("--top", type=int, default=3, help="best and worst images shown per model")
    add_device_options(p, backend=True)
    add_cluster_options(p)
    p.set_defaults(func=run_evaluate_command)


def _history(run: Path) -> list[dict]:
    path = run / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _evaluate(specs, qc_set, cache, **kwargs):
    """:func:`iter_evaluate` to the end, a line printed after each model."""
    from ..core.qc.evaluate import iter_evaluate

    gen = iter_evaluate(specs, qc_set, cache=cache, **kwargs)
    while True:
        try:
            progress = next(gen)
        except StopIteration as finished:
            return finished.value
        if progress.done % len(qc_set) == 0:
            print(f"  {progress.model}: {len(qc_set)} images scored", flush=True)


def run_evaluate_command(args: argparse.Namespace) -> int:
    from ..core.device import autocast_dtype, pick_device
    from ..core.errors import SegQCError
    from ..core.io import csv_text, write_atomic, write_text
    from ..core.qc.evaluate import (
        EVALUATION_COLUMNS,
        SUMMARY_COLUMNS,
        PredictionCache,
        load_qc_set,
        model_specs,
    )
    from ..core.qc.html_report import render_report, report_labels
    from ..core.qc.report import to_json

    if not 0.0 < args.threshold <= 1.0:
        raise SegQCError(f"--threshold must be in (0, 1], got {args.threshold}")
    if args.promote and not args.checkpoints:
        raise SegQCError("--promote needs --checkpoints (it copies a run's best checkpoint)")
    if args.promote and len(args.model) != 1:
        raise SegQCError("--promote takes one run folder as --model")
    specs = model_specs(args.model, checkpoints=args.checkpoints)
    qc_set = load_qc_set(args.images, args.gt)
    out = output_folder(args.out)
    cache = PredictionCache()
    print(f"evaluating {len(specs)} model(s) on {len(qc_set)} images", flush=True)
    options = {"threshold": args.threshold, "tta": args.tta, "backend": args.backend}
    if bool(args.scheduler) or args.workers is not None:
        from ..core.distributed.cluster import dask_client
        from ..core.distributed.qc_tasks import evaluate_runner

        with dask_client(args.scheduler, args.workers) as client:
            runner = evaluate_runner(
                client, device=args.device, precision=args.precision, **options
            )
            evaluation = _evaluate(specs, qc_set, cache, runner=runner, **options)
    else:
        device = pick_device(args.device)
        dtype = autocast_dtype(args.precision, device)
        evaluation = _evaluate(specs, qc_set, cache, device=device, dtype=dtype, **options)
    summary = evaluation.summary_rows(args.metric)
    write_text(out / "evaluation.csv", csv_text(evaluation.rows, EVALUATION_COLUMNS))
    write_text(out / "summary.csv", csv_text(summary, SUMMARY_COLUMNS))
    models = [
        {"model": s.label, "checkpoint": s.checkpoint, "epoch": s.epoch, **report}
        for s, report in zip(evaluation.specs, evaluation.reports, strict=True)
    ]
    document = {"threshold": f"{args.threshold:.2f}", "metric": args.metric, "models": models}
    write_text(out / "evaluation.json", to_json(document, indent=1) + "\n")
    labels = report_labels(evaluation, cache)
    history = _history(Path(args.model[0])) if args.checkpoints else None
    html_text = render_report(
        evaluation,
        qc_set,
        labels,
        metric=args.metric,
        qc_set_name=f"{args.images} vs {args.gt}",
        history=history,
        top=args.top,
    )
    write_text(out / "report.html", html_text)
    for row in summary:
        mark = "  <- best" if row["best"] else ""
        name = f"{row['model']} {row['checkpoint']}".strip()
        print(
            f"{name}: {args.metric} {row[args.metric]:.4f} ({row['tp']} TP, {row['fp']} FP, "
            f"{row['fn']} FN, {row['merges']} merges, {row['splits']} splits){mark}"
        )
    best = evaluation.best(args.metric)
    if args.promote:
        import shutil

        target = Path(args.model[0]) / "best_qc.safetensors"
        write_atomic(target, lambda tmp: shutil.copyfile(best.source, tmp))
        print(f"promoted {Path(best.source).name} to {target}")
    print(f"wrote {out}/evaluation.csv, summary.csv, evaluation.json, report.html")
    sys.stdout.flush()
    return 0
