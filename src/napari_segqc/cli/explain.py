"""``segqc explain``: an attribution map of a region or an object, or a model's convolution
kernels and their spectra (the work is in ``core.explain``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_device_options, output_folder

# spelled out here: importing core.explain takes a second and `segqc --help` builds this parser
METHODS = "integrated_gradients, gradient_x_input, saliency or occlusion"
OUTPUTS = "foreground, boundary (instance models) or distance (instance models)"
#: An integrated-gradients completeness gap above this gets a hint to raise --steps.
GAP_HINT = 0.05


def add_parser(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="attribution maps (which pixels an output depends on) and convolution kernels",
        description="Which input pixels make the network's output over a region (--region) or "
        "an object (--label with --labels) what it is: writes attribution.tif (float32, the "
        "image's height x width, summed over colour channels) and explain.json (method, target, "
        "values, integrated-gradients completeness gap, time) into --out. Only the tiles holding "
        "the target are computed. With --kernels: a convolution layer's kernels (kernels.tif, "
        "out x in x kh x kw) and their amplitude spectra (kernels_fft.tif, zero frequency in "
        "the centre) instead. Models run in float32 with torch (ONNX files cannot be explained).",
    )
    p.add_argument("--model", default="nuclei", help="built-in name, run folder or model file")
    p.add_argument("--input", metavar="IMAGE", help="the 2-D image to explain (grey or colour)")
    p.add_argument("--out", metavar="DIR", help="folder for the output files (created if needed)")
    p.add_argument(
        "--region",
        metavar="Y0,X0,Y1,X1",
        help="the target rectangle in image pixels (ends exclusive)",
    )
    p.add_argument("--label", type=int, metavar="ID", help="the target object's id in --labels")
    p.add_argument("--labels", metavar="FILE", help="instance labels of the image (for --label)")
    p.add_argument("--method", default="integrated_gradients", help=METHODS)
    p.add_argument("--output", default="foreground", help=f"the output channel: {OUTPUTS}")
    p.add_argument(
        "--steps",
        type=int,
        default=64,  # core.explain.attribution.IG_STEPS (not imported: --help stays fast)
        help="integrated-gradients steps (more when the completeness gap is large)",
    )
    p.add_argument("--tile", type=int, default=512, help="tile side in pixels, a multiple of 32")
    p.add_argument("--overlap", type=int, default=64, help="pixels shared by neighbouring tiles")
    p.add_argument(
        "--window",
        type=int,
        help="occlusion: side of the square occluded in pixels (default: 1/8 of the tile)",
    )
    p.add_argument(
        "--kernels",
        action="store_true",
        help="write a convolution layer's kernels and spectra instead (no --input needed)",
    )
    p.add_argument("--layer", metavar="NAME", help="--kernels: the layer (default: the first)")
    p.add_argument(
        "--list-layers", action="store_true", help="print the convolution layers' names and exit"
    )
    add_device_options(p, precision=False)
    p.set_defaults(func=run_explain_command)


def parse_region(text: str) -> tuple[int, int, int, int]:
    """``"Y0,X0,Y1,X1"`` as four integers."""
    from ..core.errors import SegQCError

    parts = [s.strip() for s in text.split(",")]
    try:
        values = tuple(int(s) for s in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise SegQCError(f"--region must be Y0,X0,Y1,X1 (four integers), got {text!r}")
    return values


def _target(args, shape: tuple[int, int]):
    """The target the options name, checked against an image of ``shape``."""
    from ..core.errors import SegQCError
    from ..core.explain.attribution import label_target, region_target, target_mask
    from ..core.io import read_image

    by_label = args.label is not None or args.labels is not None
    if (args.region is not None) == by_label:
        raise SegQCError("give the target as --region Y0,X0,Y1,X1 or as --label ID --labels FILE")
    if args.region is not None:
        target = region_target(parse_region(args.region), args.output)
    else:
        if args.label is None or args.labels is None:
            raise SegQCError("--label and --labels go together: the object's id and its labels")
        target = label_target(read_image(args.labels), args.label, args.output)
    target_mask(target, shape)
    return target


def _kernels(args, device) -> int:
    from ..core.explain.filters import kernel_spectra, kernels
    from ..core.predict.loading import load_model

    out = _out(args)
    loaded = load_model(args.model, device, backend="torch")
    stack = kernels(loaded, args.layer)
    spectra = kernel_spectra(stack, max(16, *stack.shape[-2:]))
    _write_stack(out / "kernels.tif", stack)
    _write_stack(out / "kernels_fft.tif", spectra)
    o, i, kh, kw = stack.shape
    layer = args.layer or "the first convolution"
    print(f"{layer}: {o} x {i} kernels of {kh} x {kw} -> {out}/kernels.tif, kernels_fft.tif")
    return 0


def _write_stack(path: Path, data) -> Path:
    """A 4-D stack as a grey TIFF, atomically (tifffile would take an axis of 3 for colour)."""
    import tifffile

    from ..core.io import write_atomic

    return write_atomic(
        path,
        lambda tmp: tifffile.imwrite(tmp, data, photometric="minisblack", compression="zlib"),
    )


def _out(args) -> Path:
    from ..core.errors import SegQCError

    if not args.out:
        raise SegQCError("--out DIR is required: the folder for the output files")
    return output_folder(args.out)


def run_explain_command(args: argparse.Namespace) -> int:
    from ..core.device import pick_device
    from ..core.errors import SegQCError
    from ..core.explain.attribution import attribute, check_settings, explain_input, output_index
    from ..core.explain.filters import conv_layers
    from ..core.io import read_image, write_text, write_tiff
    from ..core.predict.loading import load_model, read_config

    device = pick_device(args.device)
    if args.list_layers:
        print("\n".join(conv_layers(load_model(args.model, device, backend="torch"))))
        return 0
    if args.kernels:
        return _kernels(args, device)
    if not args.input:
        raise SegQCError("--input IMAGE is required (unless --kernels or --list-layers)")
    # inputs, target and model file are checked before the model loads or a folder is made
    check_settings(args.method, args.steps, args.tile, args.overlap, args.window)
    out = _out(args)
    config = read_config(args.model)
    output_index(args.output, config)
    image = explain_input(read_image(args.input), config)
    target = _target(args, image.shape[:2])
    loaded = load_model(args.model, device, backend="torch")
    result = attribute(
        loaded,
        image,
        target,
        method=args.method,
        steps=args.steps,
        tile=args.tile,
        overlap=args.overlap,
        window=args.window,
    )
    record = {
        "model": str(args.model),
        "input": str(args.input),
        "image_shape": list(result.map.shape),
        **result.to_json(),
    }
    write_tiff(out / "attribution.tif", result.map)
    write_text(out / "explain.json", json.dumps(record, indent=2) + "\n")
    where = target.describe()
    what = f"region {where['region']}" if "region" in where else f"object {where['label']}"
    gap = ""
    if result.method == "integrated_gradients":
        gap = f", completeness gap {100 * result.completeness_gap:.2f} %"
        if result.completeness_gap > GAP_HINT:
            gap += " (raise --steps for a closer sum)"
    print(
        f"{result.method} of {target.output} over {what}{gap}; {result.tiles} of "
        f"{result.tiles_total} tiles in {result.seconds:.1f} s -> {out}/attribution.tif"
    )
    return 0
