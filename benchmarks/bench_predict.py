"""Prediction speed, memory and tile-size agreement of a model (the built-in one by default).

1. **Speed**, 4096 x 4096 mosaic of real DSB 2018 nuclei crops, side by side in one run:
   the default path (``segment``'s network pass: tiles of at most 1024 pixels fitted to the
   image, 64 overlap, batched, channels_last, bf16 autocast on the CPU) vs a plain fp32
   forward of the whole image in one go (same model and normalisation, contiguous NCHW, no
   autocast). Megapixels per second.
2. **Peak memory**, 8192 x 8192 uint8 image: ``segment`` (network pass + decoding to labels)
   in a child process; its peak resident set size (VmHWM: the whole process, Python and
   torch included).
3. **Tile-size agreement**: foreground (probability > the model's threshold) IoU and instance
   accuracy between ``--tile 256`` and ``--tile 1024`` (default overlap, 64) on a 2048 x 2048
   mosaic.
4. **The default path against the path before object sizes** (``--auto``), 2048 x 2048
   mosaic, side by side: ``segment_auto`` (model picked from the image, diameter estimated
   from the first pass, rescaled when needed, tiles with context for the size) vs ``segment``
   with the same network and no size handling (the model's size unknown, ``diameter=None``):
   seconds per megapixel and their ratio; the estimate's own share; and the same tile-size
   agreement on a mosaic of nuclei enlarged x4 (~80-100 px) with ``auto``.

    python benchmarks/bench_predict.py [--model nuclei] [--skip-plain] [--auto]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from bench_ssim import real_mosaic  # noqa: E402
from napari_segqc.core.device import autocast_dtype  # noqa: E402
from napari_segqc.core.instances.decoding import decode_labels  # noqa: E402
from napari_segqc.core.predict.inference import _percentiles, predict_probs_tiled  # noqa: E402
from napari_segqc.core.predict.loading import load_model  # noqa: E402
from napari_segqc.core.qc.matching import match_objects  # noqa: E402


def mosaic(size: int, seed: int) -> np.ndarray:
    """uint8 mosaic of real nuclei crops; past 4096 pixels a 4096 mosaic repeated (so that
    making the test image does not dominate the memory being measured)."""
    block = min(size, 4096)
    part = real_mosaic(block, np.random.default_rng(seed))
    if part is None:
        raise SystemExit("needs ../shared/data/dsb2018/train next to the repository")
    part = (part * 255).astype(np.uint8)
    reps = -(-size // block)
    return np.tile(part, (reps, reps))[:size, :size]


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (Linux: VmHWM, which starts afresh at
    exec; ru_maxrss would carry over the parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plain_forward(loaded, image: np.ndarray) -> np.ndarray:
    """The whole image through the network at once, fp32, NCHW, no tiling, no autocast."""
    import torch

    model = loaded.model.to(memory_format=torch.contiguous_format)
    lo, hi = _percentiles(image, 1)
    x = (image.astype(np.float32) - lo[0]) / max(float(hi[0] - lo[0]), 1e-6)
    with torch.inference_mode():
        probs = torch.sigmoid(model(torch.from_numpy(x)[None, None])).numpy()[0]
    loaded.model.to(memory_format=torch.channels_last)
    return probs


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def peak_memory_child(model: str, size: int) -> None:
    """Child process: segment a size x size image; print the peak RSS in MiB."""
    import torch

    from napari_segqc.core.predict.segmentation import segment

    image = mosaic(size, seed=2)
    loaded = load_model(model)
    t0 = time.perf_counter()
    labels, _ = segment(loaded, image, dtype=autocast_dtype("auto", torch.device("cpu")))
    seconds = time.perf_counter() - t0
    print(f"{peak_rss_mib():.0f} {seconds:.1f} {int(labels.max())}")


def main(argv: list[str] | None = None) -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="nuclei")
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--memory-size", type=int, default=8192)
    p.add_argument("--skip-plain", action="store_true", help="no whole-image fp32 forward")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--auto", action="store_true", help="only part 4: auto vs no size handling")
    args = p.parse_args(argv)
    if args.child:
        peak_memory_child(args.model, args.memory_size)
        return
    if args.auto:
        bench_auto(args.model)
        return

    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--model",
            args.model,
            "--memory-size",
            str(args.memory_size),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    peak, seconds, n = child.stdout.split()[-3:]
    print(
        f"{args.memory_size}x{args.memory_size} segment (network + labels): peak RSS "
        f"{float(peak) / 1024:.2f} GiB, {seconds} s, {n} objects"
    )

    loaded = load_model(args.model, backend="torch")
    bf16 = autocast_dtype("auto", torch.device("cpu"))
    print(
        f"model {loaded.path.name}: {loaded.config.model.encoder} U-Net, depth "
        f"{loaded.config.model.encoder_depth}; torch threads {torch.get_num_threads()}"
    )
    image = mosaic(args.size, seed=1)
    mp = image.size / 1e6
    predict_probs_tiled(loaded, image[:512, :512], dtype=bf16)  # warm-up
    ours, t_ours = timed(lambda: predict_probs_tiled(loaded, image, dtype=bf16))
    _, t_512 = timed(lambda: predict_probs_tiled(loaded, image, tile=512, dtype=bf16))
    print(f"| same, tiles <= 512 | {t_512:.1f} s | {mp / t_512:.2f} MP/s |")
    print(
        f"| default (tiles <= 1024, channels_last, {bf16} autocast) | {t_ours:.1f} s | "
        f"{mp / t_ours:.2f} MP/s |"
    )
    if not args.skip_plain:
        plain, t_plain = timed(lambda: plain_forward(loaded, image))
        print(f"| plain fp32 whole-image forward | {t_plain:.1f} s | {mp / t_plain:.2f} MP/s |")
        print(f"speed-up: {t_plain / t_ours:.2f}x")
        fg_a, fg_b = ours[0] > 0.5, plain[0] > 0.5
        print(f"foreground IoU default vs plain: {(fg_a & fg_b).sum() / (fg_a | fg_b).sum():.4f}")
        del plain

    crop = image[:2048, :2048]
    small = predict_probs_tiled(loaded, crop, tile=256, dtype=bf16)  # default overlap, 64
    large = predict_probs_tiled(loaded, crop, tile=1024, dtype=bf16)
    fg_s, fg_l = small[0] > loaded.config.threshold, large[0] > loaded.config.threshold
    iou = (fg_s & fg_l).sum() / max((fg_s | fg_l).sum(), 1)
    agree = match_objects(
        decode_labels(large, loaded.config), decode_labels(small, loaded.config), (0.5,)
    )["0.50"]
    print(
        f"tile 256 vs 1024 on 2048x2048: foreground IoU {iou:.4f}, "
        f"instance accuracy@0.5 {agree['accuracy']:.4f} ({agree['n_gt']} objects)"
    )


def bench_auto(model: str, size: int = 2048, repeats: int = 3) -> None:
    from dataclasses import replace

    from skimage.transform import rescale

    from napari_segqc.core.predict.auto import BuiltinModels
    from napari_segqc.core.predict.scale import estimate_diameter
    from napari_segqc.core.predict.segmentation import segment, segment_auto

    image = mosaic(size, seed=2)
    mp = image.size / 1e6
    models = BuiltinModels()
    loaded = models.get(model)
    before = replace(loaded, config=replace(loaded.config, diameter=0.0))  # no size known
    segment(before, image[:512, :512], diameter=None)  # warm-up
    t_before, t_auto = [], []
    for _ in range(repeats):  # interleaved, so that both see the same machine load
        t_before.append(timed(lambda: segment(before, image, diameter=None))[1])
        result, seconds = timed(lambda: segment_auto(image, models=models))
        t_auto.append(seconds)
    _, maps, choice, info = result
    t_est = timed(lambda: estimate_diameter(maps))[1]
    b, a = min(t_before), min(t_auto)
    print(f"auto on a {size}x{size} mosaic: {choice.describe()}; {info.describe()}")
    print(f"| before object sizes (segment, diameter=None) | {b / mp:.2f} s/MP |")
    print(f"| default: auto model, diameter auto | {a / mp:.2f} s/MP | {a / b:.2f}x |")
    print(f"diameter estimate: {t_est:.2f} s = {t_est / b:.1%} of the run before")
    big = rescale(image[: size // 4, : size // 4], 4, order=1, preserve_range=True)
    big = big.astype(np.uint8)
    fg = []
    for tile in (256, 1024):
        labels, _, _, info = segment_auto(big, models=models, tile=tile)
        fg.append(labels > 0)
    iou = (fg[0] & fg[1]).sum() / max((fg[0] | fg[1]).sum(), 1)
    print(f"nuclei enlarged x4 ({info.describe()}): tile 256 vs 1024 foreground IoU {iou:.4f}")


if __name__ == "__main__":
    main()
