"""Write the int8 ONNX companions of the built-in models (what the CPU runs by default).

    python scripts/export_builtin_int8.py [--tiles 32]

Each built-in ``.safetensors`` model is exported to ONNX and statically quantized to int8
(onnxruntime, QDQ, per-channel weights), its activation ranges calibrated on ``--tiles``
random 256² tiles of 32 images of the model's *train* split (``splits/``; never validation or
test). Run it again whenever a built-in model's weights change; its decoding settings are
always read from the ``.safetensors`` file, so re-tuning them needs no new companion.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_segqc.core.export.onnx_export import export_onnx
from napari_segqc.core.io import read_image
from napari_segqc.core.models.builtin import BUILTIN_INT8

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DATASETS = {"nuclei": "dsb2018", "nuclei-stained": "dsb2018_other"}


def calibration_images(dataset: str, count: int = 32) -> list:
    names = (ROOT / "splits" / f"{dataset}_train.txt").read_text().split()[:count]
    return [read_image(DATA / dataset / "train" / "images" / f"{n}.tif") for n in names]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", type=int, default=32)
    args = p.parse_args(argv)
    for name, dest in BUILTIN_INT8.items():
        images = calibration_images(DATASETS[name])
        path = export_onnx(
            name, dest, quantize="int8", calibration=images, calibration_tiles=args.tiles
        )
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
