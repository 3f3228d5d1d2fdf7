"""Finish a version-2 built-in model: tune its decoding on the validation split, export it
(float16) with its model card, score it on the validation and the test split, draw its worst
test images.

    python scripts/finish_builtin_v2.py --kind fluo --run RUN_FLUO \\
        --out src/napari_segqc/core/models/nuclei.safetensors
    python scripts/finish_builtin_v2.py --kind stained --run RUN_STAINED \\
        --out src/napari_segqc/core/models/nuclei_stained.safetensors

The validation split chooses the checkpoint (the run's ``best.safetensors``, best validation
F1) and the decoding (``segqc tune``); the test split (``splits/*_test.txt``) is scored once,
at the end, and chooses nothing. Scores: object accuracy TP / (TP + FP + FN), counts summed
over the images, at IoU 0.5 ... 0.9, with ``--diameter auto`` as ``segqc predict`` runs.
Writes the card (a JSON in the file's metadata) and ``docs/images/<name>_worst_test.png``, and
prints the card's tables for the README.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_builtin_v2 import CONFIGS, DATA, DATASET, ROOT, split_names

TAUS = (0.5, 0.6, 0.7, 0.8, 0.9)
KIND_TEXT = {
    "fluo": "grey fluorescence images of nuclei (DSB 2018 stage 1 training set, BBBC038v1, "
    "corrected annotations, CC0): dsb2018/train",
    "stained": "colour images of stained tissue (H&E-like) and grey brightfield images given "
    "as three equal channels (DSB 2018 stage 1 training set, BBBC038v1, CC0): "
    "dsb2018_other/train",
}


def split_folder(dataset: str, part: str, root: Path) -> tuple[Path, Path]:
    """images/ and masks/ folders of symbolic links to one split's files."""
    images, masks = root / part / "images", root / part / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    source = DATA / dataset / "train"
    for name in split_names(dataset, part):
        (images / f"{name}.tif").symlink_to(source / "images" / f"{name}.tif")
        (masks / f"{name}.tif").symlink_to(source / "masks" / f"{name}.tif")
    return images, masks


def scores(model: str, images: Path, masks: Path, worst_png: Path | None = None) -> dict:
    """Accuracy and counts at each IoU threshold, summed over the split's images."""
    from napari_segqc.core.qc.evaluate import (
        PredictionCache,
        evaluate,
        load_qc_set,
        model_specs,
        score_evaluation,
    )

    qc_set = load_qc_set(images, masks)
    cache = PredictionCache()
    evaluation = evaluate(model_specs([model]), qc_set, cache=cache)
    out = {"images": len(qc_set), "seconds": round(evaluation.seconds[0], 1)}
    for tau in TAUS:
        scored = score_evaluation(evaluation, qc_set, cache, tau)
        row = scored.summary_rows()[0]
        out[f"{tau:.1f}"] = {k: row[k] for k in ("accuracy", "tp", "fp", "fn", "f1")}
    if worst_png is not None:
        out["worst"] = worst_figure(evaluation, qc_set, cache, worst_png)
    return out


def worst_figure(evaluation, qc_set, cache, path: Path, n: int = 4) -> list[dict]:
    """The ``n`` test images of lowest accuracy with their error maps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_segqc.core.qc.evaluate import PredictionCache
    from napari_segqc.core.qc.html_report import error_overlay

    rows = sorted(evaluation.rows, key=lambda r: r["accuracy"])[:n]
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.6), squeeze=False)
    pairs = {p.name: p for p in qc_set}
    spec = evaluation.specs[0]
    for ax, row in zip(axes[0], rows, strict=True):
        pair = pairs[row["image"]]
        labels = cache.labels[PredictionCache.key(spec.source, pair.name, False)]
        ax.imshow(error_overlay(pair.image, pair.gt, labels, 0.5), interpolation="nearest")
        ax.set_title(
            f"{pair.name[:10]}: accuracy {row['accuracy']:.2f}\n"
            f"{row['tp']} TP, {row['fp']} FP, {row['fn']} FN, {row['merges']} merges",
            fontsize=8,
        )
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    keys = ("image", "accuracy", "tp", "fp", "fn", "merges", "splits")
    return [{k: r[k] for k in keys} for r in rows]


def history(run: Path) -> dict:
    with open(run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    best = max(rows, key=lambda r: float(r["val_f1"]))
    seconds = sum(float(r.get("seconds", 0) or 0) for r in rows)
    return {
        "epochs": len(rows),
        "best_epoch": int(best["epoch"]) + 1,
        "best_val_f1": round(float(best["val_f1"]), 4),
        "train_seconds": round(seconds),
    }


def run_settings(kind: str, run: Path) -> dict:
    """Epochs, steps per epoch and peak learning rate the run was trained with (its
    ``config.json``; the kind's defaults for a run folder without one)."""
    default = CONFIGS[kind]
    saved = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    return {k: saved.get(k, getattr(default, k)) for k in ("epochs", "steps_per_epoch", "lr")}


def train_command(kind: str, ran: dict) -> str:
    """The training command, with the options that differ from the kind's defaults."""
    default, command = CONFIGS[kind], f"python scripts/train_builtin_v2.py --kind {kind} --out RUN"
    if ran["epochs"] != default.epochs:
        command += f" --epochs {ran['epochs']}"
    if ran["lr"] != default.lr:
        command += f" --lr {ran['lr']:g}"
    return command


def table(card: dict) -> str:
    lines = ["| split | images | " + " | ".join(f"τ {t}" for t in TAUS) + " |"]
    lines.append("| --- | ---: |" + " ---: |" * len(TAUS))
    for split in ("validation", "test"):
        s = card["scores"][split]
        values = " | ".join(f"{s[f'{t:.1f}']['accuracy']:.3f}" for t in TAUS)
        lines.append(f"| {split} | {s['images']} | {values} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    from napari_segqc.cli import main as segqc
    from napari_segqc.core.predict.loading import export_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=sorted(DATASET), required=True)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--checkpoint", default="best.safetensors")
    p.add_argument("--minutes", type=float, help="wall time of the training, for the card")
    args = p.parse_args(argv)
    dataset, name = DATASET[args.kind], args.out.stem.replace("_", "-")
    ran = run_settings(args.kind, args.run)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        val = split_folder(dataset, "val", tmp)
        test = split_folder(dataset, "test", tmp)
        tuned = tmp / "tuned.safetensors"
        weights = str(args.run / args.checkpoint)
        tune_args = ["tune", "--model", weights, "--images", str(val[0]), "--gt", str(val[1])]
        if segqc([*tune_args, "--out", str(tuned)]) != 0:
            return 1
        export_model(tuned, args.out, half=True)
        shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
        card = {
            "name": name,
            "data": KIND_TEXT[args.kind],
            "splits": {
                part: f"splits/{dataset}_{part}.txt ({len(split_names(dataset, part))} images)"
                for part in ("train", "val", "test")
            },
            "training": {
                "command": train_command(args.kind, ran),
                "finish": f"python scripts/finish_builtin_v2.py --kind {args.kind} --run RUN "
                f"--out {shown}",
                "config": ran,
                **history(args.run),
                "wall_minutes": args.minutes,
                "checkpoint": args.checkpoint,
                "machine": f"{platform.processor() or platform.machine()}, "
                f"{torch.get_num_threads()} CPU threads, no GPU",
            },
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "scores": {
                "metric": "accuracy TP / (TP + FP + FN), counts summed over images, "
                "--diameter auto, no TTA",
                "validation": scores(str(args.out), *val),
                "test": scores(
                    str(args.out), *test, ROOT / "docs" / "images" / f"{name}_worst_test.png"
                ),
            },
            "note": "the validation split chose the checkpoint and the decoding; the test split "
            "chose nothing",
        }
        from napari_segqc.core.models.weights import load_weights

        _, meta = load_weights(tuned, tensors=False)
        card["tuned_decoding"] = meta.get("card", {}).get("tuned_decoding", {})
        card["tuned_decoding"].pop("set", None)
        export_model(tuned, args.out, half=True, card=card)
    print(json.dumps(card, indent=1))
    print(table(card))
    return 0


if __name__ == "__main__":
    sys.exit(main())
