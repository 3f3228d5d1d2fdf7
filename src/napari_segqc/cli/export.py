"""``segqc export``: a model as a bioimage.io package, an ONNX file (fp32, fp16 or int8) or a
TorchScript file (the work is in ``core.export``)."""

from __future__ import annotations

import argparse

from ..core.export import FORMATS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a model: bioimage.io package, ONNX (fp32/fp16/int8) or TorchScript",
        description="Write a model as a file other tools run: a bioimage.io model package "
        "(.zip, or a folder when --out has no suffix; pytorch_state_dict, TorchScript and ONNX "
        "weights, test tensors, cover, card), an ONNX file (onnxruntime; --quantize int8 "
        "calibrates on --calibration images) or a TorchScript file. The model's config and "
        "card travel inside, so `--model PATH` reads every one of them back.",
    )
    p.add_argument(
        "--model", required=True, help="built-in name, run folder, .safetensors or package"
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    p.add_argument("--out", required=True, metavar="PATH", help="the file (or package folder)")
    p.add_argument(
        "--quantize",
        choices=("int8", "fp16"),
        help="onnx only: int8 (static, calibrated) or fp16 weights; default: float32",
    )
    p.add_argument(
        "--calibration",
        metavar="DIR",
        help="int8: a folder of the model's training images to calibrate activation ranges "
        "(default for built-in models: their sample images)",
    )
    p.add_argument(
        "--calibration-tiles", type=int, default=32, help="int8: 256² tiles used to calibrate"
    )
    p.set_defaults(func=run_export_command)


def _calibration_images(args) -> list:
    from pathlib import Path

    from ..core.errors import SegQCError
    from ..core.export.calibration import builtin_calibration_folder, read_calibration_folder

    folder = Path(args.calibration) if args.calibration else builtin_calibration_folder(args.model)
    if folder is None:
        raise SegQCError(
            "--quantize int8 needs --calibration DIR: a folder of the model's training images"
        )
    return read_calibration_folder(folder)


def run_export_command(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from ..core.errors import SegQCError
    from ..core.export import export_as
    from ..core.predict.loading import load_model

    out = Path(args.out)
    if args.quantize and args.format != "onnx":
        raise SegQCError("--quantize applies to --format onnx only")
    if args.calibration_tiles < 1:
        raise SegQCError(f"--calibration-tiles must be >= 1, got {args.calibration_tiles}")
    if out.is_dir() and (args.format != "bioimageio" or out.suffix):
        raise SegQCError(f"--out {out} is a folder: name a file")
    if out.exists() and args.format == "bioimageio" and not out.suffix:
        raise SegQCError(f"--out {out} exists: name a new package folder (nothing is replaced)")
    loaded = load_model(args.model, backend="torch")
    start = time.perf_counter()
    images = _calibration_images(args) if args.quantize == "int8" else None
    path = export_as(
        loaded,
        out,
        args.format,
        quantize=args.quantize,
        calibration=images,
        calibration_tiles=args.calibration_tiles,
    )
    size = (
        sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        if path.is_dir()
        else (path.stat().st_size)
    )
    kind = f"{args.format} ({args.quantize})" if args.quantize else args.format
    print(
        f"wrote {path}: {kind}, {size / 1e6:.1f} MB, in {time.perf_counter() - start:.1f} s "
        f"(load it with --model {path})"
    )
    return 0
