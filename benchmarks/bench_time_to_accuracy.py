"""Time to accuracy: train on DSB 2018 for a wall-clock budget, score the held-out split.

Trains the default model (instance targets, U-Net resnet34, patch 256, batch 8, bf16 on the
CPU) on ``../shared/data/dsb2018/train`` with the trainer's own seeded 15 % validation split,
saving a checkpoint every epoch, and stops when the budget is spent. Afterwards the checkpoints
that had finished by each mark (default 10 and 30 minutes) are scored on the validation images:
object accuracy TP/(TP+FP+FN) at IoU 0.5 and 0.7 (counts summed over images), the measure of
the StarDist paper (StarDist .864 / .685; U-Net 3-class .806 / .654; 2-class .674 / .534)::

    python benchmarks/bench_time_to_accuracy.py [--minutes 10 30] [--out /tmp/tta_run]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

from napari_segqc.core.device import autocast_dtype
from napari_segqc.core.instances.decoding import decode_instances
from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.models.weights import load_weights
from napari_segqc.core.qc.matching import match_objects, object_scores_from_counts
from napari_segqc.core.train.config import TrainConfig
from napari_segqc.core.train.data import load_training_data, split_samples
from napari_segqc.core.train.loop import EpochReport, iter_train
from napari_segqc.core.train.validation import predict_probs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dsb2018" / "train"


def score(weights: Path, val, config: TrainConfig) -> dict[str, float]:
    state, meta = load_weights(weights)
    model = build_model(ModelConfig.from_dict(meta["config"]["model"]))
    model.load_state_dict(state)
    model = model.eval().to(memory_format=torch.channels_last)
    device = torch.device("cpu")
    counts = {t: [0, 0, 0, 0.0] for t in ("0.50", "0.70")}
    for sample in val:
        logits = predict_probs(model, sample.image, device, autocast_dtype("auto", device))
        pred = decode_instances(torch.sigmoid(logits).numpy(), config.target_mode)
        result = match_objects(sample.labels, pred, thresholds=(0.5, 0.7))
        for key, c in counts.items():
            r = result[key]
            c[0], c[1], c[2], c[3] = (
                c[0] + r["tp"],
                c[1] + r["fp"],
                c[2] + r["fn"],
                c[3] + r["sum_matched_iou"],
            )
    return {key: object_scores_from_counts(*c)["accuracy"] for key, c in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 30.0])
    parser.add_argument("--out", default="/tmp/segqc_tta_run")
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    args = parser.parse_args()
    samples = load_training_data(DATA)
    budget = max(args.minutes) * 60
    config = TrainConfig(
        model=ModelConfig(arch="unet", encoder="resnet34"),
        epochs=int(budget // 80) + 1,  # ~80 s per epoch here: the cosine schedule ends on time
        steps_per_epoch=args.steps_per_epoch,
        checkpoint_every=1,
        patience=0,
    )
    _, val = split_samples(samples, config.val_fraction, config.seed)
    print(
        f"{len(samples)} images, {len(val)} held out; {config.epochs} epochs planned, "
        f"budget {budget / 60:.0f} min, {torch.get_num_threads()} threads",
        flush=True,
    )
    start = time.perf_counter()
    ends = {}
    for report in iter_train(
        config, samples, args.out, stop=lambda: time.perf_counter() - start > budget
    ):
        if isinstance(report, EpochReport):
            ends[report.epoch] = time.perf_counter() - start
            print(
                f"epoch {report.epoch + 1}: {ends[report.epoch] / 60:.1f} min, val F1 "
                f"{report.val_f1:.3f}, {report.images_per_s:.1f} patches/s",
                flush=True,
            )
    print("\n| training time | epochs | accuracy IoU 0.5 | accuracy IoU 0.7 |")
    print("| ---: | ---: | ---: | ---: |")
    for minutes in args.minutes:
        done = [e for e, t in ends.items() if t <= minutes * 60 + 1]
        if not done:
            print(f"| {minutes:.0f} min | 0 | – | – |")
            continue
        epoch = max(done)
        acc = score(Path(args.out) / f"epoch_{epoch + 1:03d}.safetensors", val, config)
        print(f"| {minutes:.0f} min | {epoch + 1} | {acc['0.50']:.3f} | {acc['0.70']:.3f} |")
    with open(Path(args.out) / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    print(f"\nhistory: {len(rows)} epochs in {Path(args.out) / 'history.csv'}")


if __name__ == "__main__":
    main()
