"""Benchmark batched augmentation (``augment_batch``) against a plain per-sample numpy loop.

Both do the same work on a batch of ``--batch`` 3 x 256 x 256 float32 images with 3-channel
targets: random flips, 90° rotations and intensity jitter (contrast, brightness, gamma). The
numpy baseline loops over samples (``augment_sample_numpy``) and stacks the results, as a
DataLoader-side augmentation would. Timings are the best of ``--repeat`` interleaved runs after
a warm-up. torch's threads are left as they are unless ``--threads`` is given: on a machine busy
with other work, multi-threaded torch ops wait for descheduled threads, so ``--threads 1`` gives
steadier numbers there::

    python benchmarks/bench_augment.py [--batch 8] [--size 256] [--repeat 20] [--threads N]
                                       [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from napari_segqc.core.train.augment import AugmentConfig, augment_batch, augment_sample_numpy  # noqa: E402


def best_ms(fns, repeat: int, sync=lambda: None) -> list[float]:
    """Best wall time of each function, runs interleaved so a busy machine hurts both alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat + 1):  # the first round is a warm-up
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            sync()
            best[k] = min(best[k], time.perf_counter() - t0) if _ else best[k]
    return [1000 * b for b in best]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    shape = (args.batch, 3, args.size, args.size)
    images = rng.normal(size=shape).astype(np.float32)
    targets = (rng.random(shape) > 0.5).astype(np.float32)
    config = AugmentConfig(flips=True, rot90=True, intensity=True)
    device = torch.device(args.device)
    timg, ttgt = torch.from_numpy(images).to(device), torch.from_numpy(targets).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def numpy_loop():
        pairs = [
            augment_sample_numpy(i, t, rng, config) for i, t in zip(images, targets, strict=True)
        ]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def batched():
        return augment_batch(timg, ttgt, config, generator=gen)

    ms_np, ms_t = best_ms([numpy_loop, batched], args.repeat, sync)
    print(
        f"augment batch {args.batch} x 3 x {args.size} x {args.size} (+3-channel targets), "
        f"flips + rot90 + intensity, best of {args.repeat}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}"
    )
    print(f"  numpy per-sample loop : {ms_np:8.2f} ms/batch")
    print(f"  augment_batch (torch) : {ms_t:8.2f} ms/batch")
    print(f"  speed-up              : {ms_np / ms_t:8.2f} x")


if __name__ == "__main__":
    main()
