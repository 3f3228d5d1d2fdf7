"""Benchmark our SSIM (map + score) against scikit-image's ``structural_similarity``.

Both compute the same thing: Gaussian window sigma 1.5, population covariance, the SSIM map
(``full=True``) of a 4096 x 4096 pair with ``data_range=1.0``. The ground truth is a mosaic of
real nuclei images (``../shared/data/dsb2018/train/images``, 256 x 256 crops) scaled to 0..1,
or a smooth random field with noise if that folder is absent (``--synthetic`` forces it); the
prediction is a blurred, noisy copy (a restoration-like output). Fixed seed.

scikit-image is timed on the same float32 arrays (it then computes in float32) and on float64
copies (its precision for integer images, and the reference for the differences). Timings are
the best of ``--repeat`` runs after a warm-up; torch's thread settings are left as they are::

    python benchmarks/bench_ssim.py [--size 4096] [--repeat 3] [--synthetic]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage import __version__ as skimage_version
from skimage.metrics import structural_similarity

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from napari_segqc.core.qc.similarity import ssim  # noqa: E402

DSB = ROOT.parent / "shared" / "data" / "dsb2018" / "train" / "images"


def real_mosaic(size: int, rng: np.random.Generator) -> np.ndarray | None:
    """Tiles of real nuclei images (256 x 256 crops, each scaled to 0..1), or None."""
    import tifffile

    files = sorted(DSB.glob("*.tif")) if DSB.is_dir() else []
    if not files:
        return None
    tile, n = 256, -(-size // 256)
    rows = []
    for _ in range(n):
        row = []
        for f in rng.choice(files, n):
            img = tifffile.imread(f)
            img = (img[..., 0] if img.ndim == 3 else img).astype(np.float32)
            r = rng.integers(0, img.shape[0] - tile + 1)
            c = rng.integers(0, img.shape[1] - tile + 1)
            crop = img[r : r + tile, c : c + tile]
            row.append((crop - crop.min()) / max(float(np.ptp(crop)), 1.0))
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows)[:size, :size]


def make_pair(size: int, synthetic: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    rng = np.random.default_rng(seed)
    gt = None if synthetic else real_mosaic(size, rng)
    source = "DSB 2018 nuclei mosaic"
    if gt is None:
        field = ndi.gaussian_filter(rng.standard_normal((size, size), np.float32), 6)
        field = (field - field.min()) / np.ptp(field)
        gt = np.clip(field + rng.normal(0, 0.02, field.shape), 0, 1)
        source = "smooth random field + noise"
    pred = ndi.gaussian_filter(gt, 1.0) + rng.normal(0, 0.03, gt.shape)
    return gt.astype(np.float32), np.clip(pred, 0, 1).astype(np.float32), source


def best_of(fn, repeat: int):
    out = fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--synthetic", action="store_true", help="skip the real images")
    args = parser.parse_args(argv)

    gt, pred, source = make_pair(args.size, args.synthetic)
    print(f"pair: {gt.shape} float32, {source}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"scikit-image {skimage_version}; {os.cpu_count()} CPUs"
    )

    def sk(a, b):
        return structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            full=True, data_range=1.0,
        )  # fmt: skip

    t_ours, (s_ours, m_ours) = best_of(
        lambda: ssim(gt, pred, full=True, normalize=False, data_range=1.0), args.repeat
    )
    t_sk32, (s_sk32, m_sk32) = best_of(lambda: sk(gt, pred), args.repeat)
    gt64, pred64 = gt.astype(np.float64), pred.astype(np.float64)
    t_sk64, (s_sk64, m_sk64) = best_of(lambda: sk(gt64, pred64), args.repeat)

    rows = [
        ("napari-segqc `ssim` (torch, float32)", t_ours, m_ours, s_ours),
        ("scikit-image, float32 input", t_sk32, m_sk32, s_sk32),
        ("scikit-image, float64 input (reference)", t_sk64, m_sk64, s_sk64),
    ]
    print(f"\nSSIM with map, {gt.shape[0]} x {gt.shape[1]}, best of {args.repeat}:\n")
    print("| implementation | time (s) | our speed-up | max abs map diff | score diff |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, t, m, s in rows:
        diff = np.abs(m.astype(np.float64) - m_sk64).max()
        print(f"| {name} | {t:.2f} | {t / t_ours:.1f}x | {diff:.1e} | {abs(s - s_sk64):.1e} |")
    print(f"\nscore {s_ours:.6f}; differences are to scikit-image with float64 input")
    print(
        f"ours vs scikit-image on the same float32 input: map {np.abs(m_ours - m_sk32).max():.1e}"
    )


if __name__ == "__main__":
    main()
