"""Train the version-2 built-in models on the fixed splits of ../shared/data (splits/*.txt).

    python scripts/train_builtin_v2.py --kind fluo --out RUN_FLUO [--epochs 100] [--resume]
    python scripts/train_builtin_v2.py --kind stained --out RUN_STAINED [--epochs 40] [--resume]
    python scripts/train_builtin_v2.py --kind fluo --out RUN2 --init RUN/last.safetensors --lr 3e-4

* ``fluo`` ("nuclei"): grey fluorescence, ``dsb2018`` train split, validation on its val split;
  from random weights (the version-1 model saw the test images, so nothing of it is reused).
* ``stained`` ("nuclei-stained"): colour input, ``dsb2018_other`` train split (stained tissue and
  grey brightfield given as three equal channels); warm-started from the version-1 ``nuclei``
  model (which never saw these images), its first convolution spread over the three channels
  with the sign flipped (dark nuclei on a light background look like bright nuclei at first).

Both: U-Net, resnet34 encoder with 4 stages, decoder 128-64-32-16, random zoom 0.6-1.7x
(scale augmentation), flips, 90-degree turns, intensity jitter; the stained model adds colour
jitter and random grey. The test split is never loaded here. One line per epoch; the run
folder (``--resume``) carries a run over several sessions.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from train_builtin_model import print_epochs

from napari_segqc.core.models.builtin import resolve_model_path
from napari_segqc.core.models.registry import ModelConfig
from napari_segqc.core.models.weights import load_weights, save_weights
from napari_segqc.core.train.augment import AugmentConfig
from napari_segqc.core.train.config import TrainConfig
from napari_segqc.core.train.data import load_folder
from napari_segqc.core.train.loop import iter_train
from napari_segqc.core.train.optim import ScheduleConfig

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DATASET = {"fluo": "dsb2018", "stained": "dsb2018_other"}

NETWORK = ModelConfig(encoder="resnet34", encoder_depth=4, decoder_channels=(128, 64, 32, 16))
AUGMENT = AugmentConfig(affine=True, zoom=(0.6, 1.7), shear=0.1, spatial_p=0.6)
CONFIGS = {
    "fluo": TrainConfig(
        model=NETWORK,
        lr=1e-3,
        schedule=ScheduleConfig(name="cosine", min_lr_ratio=0.02),
        epochs=100,
        steps_per_epoch=50,
        patience=0,
        checkpoint_every=5,
        augment=AUGMENT,
    ),
    "stained": TrainConfig(
        model=replace(NETWORK, in_channels=3),
        lr=5e-4,
        schedule=ScheduleConfig(name="cosine", min_lr_ratio=0.02),
        epochs=40,
        steps_per_epoch=40,
        patience=0,
        checkpoint_every=5,
        augment=replace(AUGMENT, channel_jitter=0.15, grey_p=0.15),
    ),
}


def split_names(dataset: str, part: str) -> list[str]:
    return (ROOT / "splits" / f"{dataset}_{part}.txt").read_text().split()


def load_split(dataset: str, part: str, data: Path = DATA, rgb: bool | None = None):
    folder = data / dataset / "train"
    return load_folder(folder / "images", folder / "masks", split_names(dataset, part), rgb=rgb)


def pseudo_stained(count: int, data: Path = DATA, seed: int = 0):
    """``count`` grey fluorescence images of the ``dsb2018`` train split turned into colour
    images of dark nuclei on a light background (issue 12 allows grey images coloured by
    augmentation): the image, scaled to [0, 1] by its 1 and 99.8 percentiles, mixes a
    background colour (where 0) and a nucleus colour (where 1), each drawn around the mean
    colours of the ``dsb2018_other`` train split (H&E-like: background ~(190, 180, 207),
    nuclei ~(135, 88, 183)); one in four is grey brightfield (background ~215, nuclei ~100).
    """
    from napari_segqc.core.io import read_image
    from napari_segqc.core.train.data import make_sample

    rng = np.random.default_rng(seed)
    names = split_names("dsb2018", "train")
    names = [names[i] for i in sorted(rng.choice(len(names), count, replace=False))]
    folder = data / "dsb2018" / "train"
    samples = []
    for name in names:
        image = read_image(folder / "images" / f"{name}.tif").astype(np.float32)
        image = image.mean(-1) if image.ndim == 3 else image
        lo, hi = np.percentile(image, [1, 99.8])
        level = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)[..., None]
        if rng.random() < 0.25:
            background = np.full(3, rng.normal(215, 8))
            nucleus = np.full(3, rng.normal(100, 10))
        else:
            background = rng.normal((190, 180, 207), (12, 20, 5))
            nucleus = rng.normal((135, 88, 183), (10, 10, 12))
        rgb = background * (1 - level) + nucleus * level + rng.normal(0, 3, (*image.shape, 3))
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
        labels = read_image(folder / "masks" / f"{name}.tif")
        samples.append(make_sample(rgb, labels, f"pseudo-stained {name}", rgb=True))
    return samples


def rgb_init(source: str, out: Path) -> Path:
    """A grey model's weights with the first convolution spread over three channels, negated."""
    weights, _ = load_weights(resolve_model_path(source))
    first = weights["encoder.conv1.weight"].float()
    weights = {k: v.float() for k, v in weights.items()}
    weights["encoder.conv1.weight"] = (-first / 3).repeat(1, 3, 1, 1)
    return save_weights(out, weights, {"note": f"RGB, inverted first layer of {source}"})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=sorted(CONFIGS), required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--epochs", type=int)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--init", help="start from these weights (a run's last.safetensors)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the kind's)")
    p.add_argument(
        "--pseudo-stained",
        type=int,
        default=0,
        help="stained: add this many dsb2018 train-split fluorescence images, coloured",
    )
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = CONFIGS[args.kind]
    if args.epochs:
        config = replace(config, epochs=args.epochs)
    if args.lr:
        config = replace(config, lr=args.lr)
    if args.init:
        config = replace(config, init=str(args.init))
    dataset, rgb = DATASET[args.kind], args.kind == "stained"
    if rgb and not args.resume and not args.init:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        init = args.out.parent / f"{args.out.name}_init.safetensors"
        config = replace(config, init=str(rgb_init("nuclei", init)))
    train = load_split(dataset, "train", args.data, rgb=rgb or None)
    val = load_split(dataset, "val", args.data, rgb=rgb or None)
    if rgb and args.pseudo_stained:
        train = train + pseudo_stained(args.pseudo_stained, args.data)
    print(f"{args.kind}: {len(train)} training and {len(val)} validation images", flush=True)
    print_epochs(iter_train(config, train, args.out, resume=args.resume, val_samples=val))
    return 0


if __name__ == "__main__":
    sys.exit(main())
