"""Training throughput: napari-segqc's training step vs a plain PyTorch loop, side by side.

Both train the same network (U-Net, resnet34 encoder, 3 output channels, patch 256, batch 8)
on the same data and count training patches per second over the same number of steps, after a
warm-up step each:

* plain: fp32, contiguous memory, a ``Dataset`` that crops and augments one sample at a time in
  numpy (:func:`napari_segqc.core.train.augment.augment_sample_numpy`), the default ``DataLoader``;
* napari-segqc: ``core.train.loop._train_step`` — numpy patch sampling, batched augmentation with
  torch, channels_last memory, bf16 autocast on the CPU (fp16/bf16 on a GPU).

Data: ``../shared/data/dsb2018/train`` if present (first 60 images), else ``sample_data/``::

    python benchmarks/bench_train.py [--steps 6] [--device auto]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from napari_segqc.core.device import autocast_dtype, pick_device
from napari_segqc.core.instances.targets import make_targets
from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.train.augment import AugmentConfig, augment_sample_numpy
from napari_segqc.core.train.config import TrainConfig
from napari_segqc.core.train.data import PatchSampler, load_training_data
from napari_segqc.core.train.loop import _train_step
from napari_segqc.core.train.losses import make_loss
from napari_segqc.core.train.optim import make_optimizer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "dsb2018" / "train"


class PlainDataset(torch.utils.data.Dataset):
    """One random crop + numpy augmentation per item: the usual hand-written pipeline."""

    def __init__(self, samples, targets, patch: int, length: int) -> None:
        self.sampler = PatchSampler(samples, targets, patch, seed=1)
        self.rng = np.random.default_rng(1)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i):
        image, target = self.sampler.sample(1)
        image, target = augment_sample_numpy(image[0], target[0], self.rng, AugmentConfig())
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(
            np.ascontiguousarray(target)
        )


def time_plain(samples, targets, config, device, steps: int) -> float:
    torch.manual_seed(0)
    model = build_model(config.model).to(device)
    opt = make_optimizer("adam", model.parameters(), lr=1e-3)
    loss_fn = make_loss(config.loss)
    data = PlainDataset(samples, targets, config.patch, (steps + 1) * config.batch)
    loader = torch.utils.data.DataLoader(data, batch_size=config.batch, shuffle=True)
    model.train()
    start = None
    for i, (x, y) in enumerate(loader):
        if i == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        x, y = x.to(device), y.to(device)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()  # what a plain loop does to log the loss
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * config.batch / (time.perf_counter() - start)


def time_ours(samples, targets, config, device, steps: int) -> float:
    torch.manual_seed(0)
    fmt = torch.channels_last
    model = build_model(config.model).to(device, memory_format=fmt)
    opt = make_optimizer("adam", model.parameters(), lr=1e-3)
    loss_fn = make_loss(config.loss)
    sampler = PatchSampler(samples, targets, config.patch, seed=1)
    gen = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(1)
    dtype = autocast_dtype(config.precision, device)
    model.train()
    args = (model, opt, loss_fn, sampler, gen, config, device, dtype, fmt)
    _train_step(*args)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    total = torch.zeros((), device=device)
    for _ in range(steps):
        total += _train_step(*args).detach()
    float(total)  # one sync at the end, as the trainer does per epoch
    return steps * config.batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    folder = SHARED if SHARED.is_dir() else ROOT / "sample_data"
    samples = load_training_data(folder)[:60]
    targets = [make_targets(s.labels) for s in samples]
    config = TrainConfig(model=ModelConfig(arch="unet", encoder="resnet34", in_channels=1))
    device = pick_device(args.device)
    print(
        f"data: {len(samples)} images from {folder}; device {device}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    plain = time_plain(samples, targets, config, device, args.steps)
    ours = time_ours(samples, targets, config, device, args.steps)
    print(
        f"\nU-Net resnet34, patch {config.patch}, batch {config.batch}, {args.steps} steps each\n"
    )
    print("| training loop | patches/s | speed-up |\n| --- | ---: | ---: |")
    print(f"| plain: fp32, per-sample numpy augmentation, DataLoader | {plain:.2f} | 1.0× |")
    print(
        f"| napari-segqc: batched torch augmentation, channels_last, "
        f"{autocast_dtype(config.precision, device)} autocast | {ours:.2f} | {ours / plain:.2f}× |"
    )


if __name__ == "__main__":
    main()
