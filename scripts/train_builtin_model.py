"""Train the built-in "nuclei" model (second stage) and print one line per epoch.

How the shipped model was made (see the model card in the README):

1. ``segqc train --images ../shared/data/dsb2018/train --out RUN1 --epochs 23
   --steps-per-epoch 50`` - the default resnet34 U-Net (encoder depth 5), 30 CPU minutes.
2. This script: the same data, split (seed 0, 15 % validation) and targets, with a smaller
   network - resnet34 encoder depth 4 (layer4, 13 M weights that only see 1/32-scale features,
   dropped) and decoder widths 128-64-32-16 - warm-started from RUN1 (the kept encoder stages
   and the four finest decoder blocks have the same shapes, shifted by one block), then trained
   for ``--epochs`` more epochs.
3. The same with ``--finetune RUN2 --out RUN3 --epochs 35 --lr 2e-4 --affine``: 35 more epochs
   from stage 2's best weights, affine augmentation added.
4. Again with ``--finetune RUN3 --out RUN4 --epochs 40 --lr 1.5e-4 --affine``: 40 more epochs
   from stage 3's best weights; the last epoch (``RUN4/last.safetensors``) is shipped.
5. ``python scripts/finish_builtin_model.py --run RUN4/last.safetensors --out
   src/napari_segqc/core/models/nuclei.safetensors`` (decoding tuned, float16 export, model card).

    python scripts/train_builtin_model.py --stage1 RUN1 --out RUN2 [--epochs 95]
    python scripts/train_builtin_model.py --finetune RUN2 --out RUN3 --epochs 35 --lr 2e-4 --affine
    python scripts/train_builtin_model.py --finetune RUN3 --out RUN4 --epochs 40 --lr 1.5e-4 \
        --affine
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

from napari_segqc.core.models.builtin import resolve_model_path
from napari_segqc.core.models.registry import ModelConfig
from napari_segqc.core.models.weights import load_weights, save_weights
from napari_segqc.core.train.augment import AugmentConfig
from napari_segqc.core.train.config import TrainConfig
from napari_segqc.core.train.data import load_training_data
from napari_segqc.core.train.loop import EpochReport, iter_train
from napari_segqc.core.train.optim import ScheduleConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018" / "train"

BUILTIN = TrainConfig(
    model=ModelConfig(encoder="resnet34", encoder_depth=4, decoder_channels=(128, 64, 32, 16)),
    lr=5e-4,
    schedule=ScheduleConfig(name="cosine", min_lr_ratio=0.02),
    epochs=90,
    steps_per_epoch=50,
    patience=0,
    checkpoint_every=5,
    augment=AugmentConfig(),
)


def depth4_init(stage1: Path, out: Path) -> Path:
    """Rename a depth-5 U-Net's weights to the depth-4 model's names (decoder block i+1 -> i)."""
    weights, _ = load_weights(resolve_model_path(stage1))
    renamed = {}
    for key, value in weights.items():
        if key.startswith("encoder.layer4.") or key.startswith("decoder.blocks.0."):
            continue
        m = re.match(r"decoder\.blocks\.(\d+)\.(.*)", key)
        if m:
            key = f"decoder.blocks.{int(m.group(1)) - 1}.{m.group(2)}"
        renamed[key] = value
    return save_weights(out, renamed, {"note": f"depth-4 renaming of {stage1}"})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--stage1", type=Path, help="run folder of the first stage")
    start.add_argument("--finetune", type=Path, help="a run of this script to continue from")
    p.add_argument("--lr", type=float, default=BUILTIN.lr)
    p.add_argument("--affine", action="store_true", help="add affine augmentation")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--epochs", type=int, default=BUILTIN.epochs)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    if args.finetune:
        init = resolve_model_path(args.finetune)
    else:
        init = args.out / "init_from_stage1.safetensors"
        if not args.resume:
            depth4_init(args.stage1, init)
    augment = replace(BUILTIN.augment, affine=args.affine)
    config = replace(BUILTIN, epochs=args.epochs, lr=args.lr, augment=augment, init=str(init))
    samples = load_training_data(args.data)
    print_epochs(iter_train(config, samples, args.out, resume=args.resume))
    return 0


def print_epochs(gen) -> None:
    """Run a training generator, printing one line per epoch."""
    t0 = time.perf_counter()
    for report in gen:
        if isinstance(report, EpochReport):
            print(
                f"epoch {report.epoch + 1}/{report.epochs} loss {report.train_loss:.4f} "
                f"val_f1 {report.val_f1:.4f} val_iou {report.val_iou:.4f} lr {report.lr:.2e} "
                f"{report.images_per_s:.1f} patches/s {(time.perf_counter() - t0) / 60:.1f} min"
                + (" best" if report.best else ""),
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
