"""Exported models side by side: file size, CPU speed and held-out accuracy per precision.

Variants of one model (the built-in ``nuclei`` by default):

* **torch fp32**: the ``.safetensors`` model, plain float32;
* **torch bf16**: the same with bf16 autocast and channels_last (the default CPU path so far);
* **ONNX fp32**, **ONNX fp16**: ``segqc export --format onnx [--quantize fp16]``, onnxruntime;
* **ONNX int8**: ``segqc export --format onnx --quantize int8``, calibrated on 32 tiles of 32
  images of the ``dsb2018`` *train* split (never the test split).

Speed: ``segment`` (network + decoding, ``--diameter auto``) on a 2048² mosaic of real DSB 2018
nuclei crops, the variants interleaved over ``--repeat`` rounds (best round kept), megapixels
per second. Accuracy: ``segqc evaluate`` (object accuracy TP / (TP + FP + FN), counts summed)
at τ 0.5 and 0.7 on the fixed ``dsb2018`` test split (``splits/dsb2018_test.txt``; note that
the shipped ``nuclei`` v1 saw most of it in training: the *differences* between variants are
what this measures).

    python benchmarks/bench_export.py [--model nuclei] [--repeat 3] [--skip-accuracy]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_predict import mosaic  # noqa: E402
from napari_segqc.cli import main as segqc  # noqa: E402
from napari_segqc.core.predict.loading import load_model  # noqa: E402
from napari_segqc.core.predict.segmentation import segment  # noqa: E402
from napari_segqc.core.qc.matching import threshold_key  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "dsb2018" / "train"


def split(part: str) -> list[str]:
    return (ROOT / "splits" / f"dsb2018_{part}.txt").read_text().split()


def link_split(part: str, folder: Path) -> tuple[Path, Path]:
    """images/ and gt/ folders of symlinks to one split's files."""
    images, gt = folder / "images", folder / "gt"
    images.mkdir(parents=True)
    gt.mkdir()
    for name in split(part):
        os.symlink(DATA / "images" / f"{name}.tif", images / f"{name}.tif")
        os.symlink(DATA / "masks" / f"{name}.tif", gt / f"{name}.tif")
    return images, gt


def export_variants(model: str, folder: Path) -> dict[str, tuple[str, str, str]]:
    """variant -> (model source, precision, backend)."""
    calibration = folder / "calibration"
    calibration.mkdir()
    for name in split("train")[:32]:
        os.symlink(DATA / "images" / f"{name}.tif", calibration / f"{name}.tif")
    variants = {"torch fp32": (model, "fp32", "torch"), "torch bf16": (model, "auto", "torch")}
    for key, extra in [
        ("ONNX fp32", []),
        ("ONNX fp16", ["--quantize", "fp16"]),
        ("ONNX int8", ["--quantize", "int8", "--calibration", str(calibration)]),
    ]:
        out = folder / f"{key.replace(' ', '_')}.onnx"
        argv = ["export", "--model", model, "--format", "onnx", "--out", str(out), *extra]
        if segqc(argv) != 0:
            raise SystemExit(f"export failed: {argv}")
        variants[key] = (str(out), "auto", "onnx")
    return variants


def file_size(source: str) -> float:
    from napari_segqc.core.models.builtin import resolve_model_path

    return resolve_model_path(source).stat().st_size / 1e6


def speeds(variants, size: int, repeat: int) -> dict[str, float]:
    import torch

    from napari_segqc.core.device import autocast_dtype

    image = mosaic(size, seed=1)
    loaded = {k: load_model(src, backend=backend) for k, (src, _, backend) in variants.items()}
    best = dict.fromkeys(variants, np.inf)
    for k in variants:  # warm-up
        segment(loaded[k], image[:512, :512], dtype=None)
    for _ in range(repeat):
        for k, (_, precision, _) in variants.items():
            dtype = autocast_dtype(precision, torch.device("cpu"))
            t0 = time.perf_counter()
            segment(loaded[k], image, dtype=dtype)
            best[k] = min(best[k], time.perf_counter() - t0)
    return {k: size * size / 1e6 / s for k, s in best.items()}


def accuracies(variants, folder: Path) -> dict[str, tuple[float, float]]:
    images, gt = link_split("test", folder / "test")
    out = {}
    for k, (src, precision, backend) in variants.items():
        result = folder / f"eval_{k.replace(' ', '_')}"
        argv = ["evaluate", "--model", src, "--images", str(images), "--gt", str(gt)]
        argv += ["--out", str(result), "--precision", precision, "--backend", backend]
        if segqc(argv) != 0:
            raise SystemExit(f"evaluate failed: {argv}")
        with open(result / "summary.csv", newline="") as f:
            at_05 = float(next(csv.DictReader(f))["accuracy"])
        # the report sums counts at every threshold of the sweep
        summary = json.loads((result / "evaluation.json").read_text())["models"][0]["summary"]
        objects = summary["objects"][threshold_key(0.7)]
        out[k] = (at_05, objects["accuracy"])
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="nuclei")
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-accuracy", action="store_true")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"needs {DATA}")
    folder = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        variants = export_variants(args.model, folder)
        mps = speeds(variants, args.size, args.repeat)
        acc = {} if args.skip_accuracy else accuracies(variants, folder)
        print(f"\n{args.model}, {args.size}² mosaic, {os.cpu_count()} CPU threads")
        print("| variant | file MB | MPix/s | × torch bf16 | accuracy τ 0.5 | τ 0.7 |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for k, (src, _, _) in variants.items():
            a5, a7 = acc.get(k, (float("nan"), float("nan")))
            ratio = mps[k] / mps["torch bf16"]
            print(
                f"| {k} | {file_size(src):.1f} | {mps[k]:.2f} | {ratio:.2f} | {a5:.3f} | {a7:.3f} |"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
