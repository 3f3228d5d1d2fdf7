"""``segqc predict``: one instance-label TIFF per input image (work in ``core.predict``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .common import add_device_options, output_folder


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="segment images with a trained model",
        description="Segment an image file or every image of a folder; writes one "
        "instance-label TIFF per input (uint16, or uint32 above 65535 objects), with the same "
        "name, into --out. Stacks and time-lapses (..., H, W) are segmented slice by slice, "
        "with ids unique across slices. An image that fails is reported and skipped.",
    )
    p.add_argument(
        "--model",
        default="auto",
        help="'auto' (the built-in model that fits each image: 'nuclei' for grey "
        "fluorescence, 'nuclei-stained' for colour and brightfield images), a built-in name, a "
        "run folder, a model file (.safetensors, .onnx, .pt) or a bioimage.io package (.zip)",
    )
    p.add_argument(
        "--diameter",
        default="auto",
        metavar="auto|PIXELS",
        help="typical object diameter in pixels, or 'auto' to estimate it from a first pass; "
        "images whose objects lie outside the model's range are rescaled to its scale",
    )
    p.add_argument("--input", required=True, metavar="PATH", help="an image file or a folder")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="folder for the label TIFFs (created if needed)"
    )
    p.add_argument(
        "--tile",
        type=int,
        default=1024,
        help="longest tile side in pixels, a multiple of 32 (fitted to the image)",
    )
    p.add_argument(
        "--overlap", type=int, default=64, help="pixels shared by neighbouring tiles (blended)"
    )
    p.add_argument("--batch", type=int, default=4, help="tiles per forward pass")
    add_device_options(p, backend=True)
    p.add_argument(
        "--tta", action="store_true", help="flip test-time augmentation (4 passes per tile)"
    )
    p.add_argument("--threshold", type=float, help="foreground threshold (default: the model's)")
    p.add_argument("--min-size", type=int, help="smallest object in pixels (default: the model's)")
    p.add_argument(
        "--split-height",
        type=float,
        help="how far a nucleus core must rise above the dip to its neighbour to be split off "
        "(0-1, lower splits more; 0: seeds are core regions; default: the model's)",
    )
    p.add_argument(
        "--min-object-prob",
        type=float,
        help="drop objects whose mean foreground probability is lower (0-1; default: the model's)",
    )
    p.add_argument(
        "--stop-on-error",
        action="store_true",
        help="stop at the first image that fails (by default it is reported, the others are "
        "segmented, and the exit code is 1 at the end)",
    )
    p.set_defaults(func=run_predict_command)


def _inputs(path: Path) -> list[Path]:
    from ..core.errors import SegQCError
    from ..core.io import list_images

    if path.is_file():
        return [path]
    if path.is_dir():
        files = list(list_images(path).values())
        if not files:
            raise SegQCError(f"{path}: no image files")
        return files
    raise SegQCError(f"--input {path}: no such file or folder")


def run_predict_command(args: argparse.Namespace) -> int:
    from ..core.device import autocast_dtype, pick_device
    from ..core.errors import SegQCError
    from ..core.instances.decoding import decoding_config
    from ..core.io import read_image, write_tiff
    from ..core.predict.auto import (
        AUTO,
        BuiltinModels,
        choose_model,
        input_for_model,
        looks_rgb,
    )
    from ..core.predict.loading import load_model, read_config
    from ..core.predict.scale import parse_diameter
    from ..core.predict.segmentation import segment

    diameter = parse_diameter(args.diameter)
    files = _inputs(Path(args.input))
    device = pick_device(args.device)
    auto = args.model == AUTO
    models = BuiltinModels(device, args.backend)
    # bad settings and models are refused before any folder is made or image read
    config = read_config("nuclei" if auto else args.model)
    decoding = {
        "threshold": args.threshold,
        "min_size": args.min_size,
        "split_height": args.split_height,
        "min_object_prob": args.min_object_prob,
    }
    decoding_config(config, **decoding)
    out = output_folder(args.out)
    loaded = None if auto else load_model(args.model, device, args.backend)
    dtype = autocast_dtype(args.precision, device)
    failed = []
    for f in files:
        try:
            image = read_image(f)
            used, picked = loaded, ""
            if auto:
                choice = choose_model(image)
                used, picked = models.get(choice.model), choice.describe() + "; "
                image = input_for_model(image, used.config.model.in_channels, invert=choice.invert)
            elif used.config.model.in_channels == 3 and not looks_rgb(image):
                image = input_for_model(image, 3)  # grey to a colour model: 3 equal channels
            labels, _, scale = segment(
                used,
                image,
                diameter=diameter,
                return_scale=True,
                tile=args.tile,
                overlap=args.overlap,
                batch=args.batch,
                dtype=dtype,
                tta=args.tta,
                **decoding,
            )
        except (SegQCError, OSError, ValueError) as exc:
            if args.stop_on_error:
                raise SegQCError(f"{f.name}: {exc}") from None
            print(f"segqc predict: error: {f.name}: {exc} (skipped)", file=sys.stderr, flush=True)
            failed.append(f.name)
            continue
        n = int(labels.max())  # ids are unique across the slices of a stack
        kind = np.uint16 if n <= np.iinfo(np.uint16).max else np.uint32
        target = write_tiff(out / f"{f.stem}.tif", labels.astype(kind))
        print(f"{f.name}: {picked}{scale.describe()}; {n} objects -> {target}", flush=True)
    if failed:
        print(
            f"segqc predict: {len(failed)} of {len(files)} images failed: {', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    return 0
