"""``segqc predict``: one instance-label TIFF per input image (work in ``core.predict``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import add_cluster_options, add_device_options, output_folder


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="segment images with a trained model",
        description="Segment an image file, a zarr / OME-Zarr image, or every image of a "
        "folder; writes one instance-label TIFF per input (uint16, or uint32 above 65535 "
        "objects), with the same name, into --out (zarr inputs: an OME-Zarr label store "
        "NAME.zarr; --out NAME.zarr for one input writes there). Stacks and time-lapses "
        "(..., H, W) are segmented slice by slice, with ids unique across slices. An image "
        "that fails is reported and skipped. With --scheduler or --workers the work runs on a "
        "dask cluster: images one per task, zarr images larger than --block block by block.",
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
    p.add_argument(
        "--input",
        required=True,
        metavar="PATH",
        help="an image file, a .zarr / OME-Zarr image (its full-resolution level, read lazily) "
        "or a folder of them",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for the label TIFFs (created if needed), or NAME.zarr for one input: an "
        "OME-Zarr label store (uint32) with a multiscale pyramid, written chunk by chunk",
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
    p.add_argument(
        "--min-size",
        type=int,
        help="smallest object in pixels at the model's scale (the image's own pixels unless "
        "the object size rescales it; default: the model's)",
    )
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
    cluster = add_cluster_options(p)
    cluster.add_argument(
        "--block",
        type=int,
        default=4096,
        help="with a cluster: zarr images larger than this (pixels a side) are segmented in "
        "blocks of this side plus a halo, in parallel, and stitched (a multiple of 64)",
    )
    p.set_defaults(func=run_predict_command)


def _inputs(path: Path) -> list[Path]:
    from ..core.distributed.zarr_io import is_zarr
    from ..core.errors import SegQCError
    from ..core.io import list_images

    if path.is_file() or (path.is_dir() and is_zarr(path)):
        return [path]
    if path.is_dir():
        files = list(list_images(path).values())
        stores = sorted(p for p in path.iterdir() if p.is_dir() and is_zarr(p))
        files = sorted([*files, *stores], key=lambda p: p.name)
        if not files:
            raise SegQCError(f"{path}: no image files")
        return files
    raise SegQCError(f"--input {path}: no such file or folder")


def _targets(args: argparse.Namespace, files: list[Path]) -> list[tuple[Path, Path]]:
    """(input, output) pairs: ``--out NAME.zarr`` for one input, else a file per input in the
    --out folder."""
    from ..core.distributed.images import output_name
    from ..core.distributed.label_writer import check_target
    from ..core.distributed.zarr_io import is_zarr
    from ..core.errors import SegQCError

    if is_zarr(args.out):
        if len(files) != 1 or (Path(args.input).is_dir() and not is_zarr(args.input)):
            raise SegQCError(
                f"--out {args.out} names one OME-Zarr label store: give one image as --input, "
                "or a folder as --out"
            )
        return [(files[0], check_target(args.out))]
    out = output_folder(args.out)
    return [(f, out / output_name(f)) for f in files]


def _settings(args: argparse.Namespace, diameter, distributed: bool):
    from ..core.distributed.settings import PredictSettings
    from ..core.models.builtin import BUILTIN_MODELS

    model = args.model
    if distributed and model not in BUILTIN_MODELS and Path(model).exists():
        model = str(Path(model).resolve())  # workers run elsewhere: give them the full path
    return PredictSettings(
        model=model,
        diameter=diameter,
        tile=args.tile,
        overlap=args.overlap,
        batch=args.batch,
        device=args.device,
        backend=args.backend,
        precision=args.precision,
        tta=args.tta,
        threshold=args.threshold,
        min_size=args.min_size,
        split_height=args.split_height,
        min_object_prob=args.min_object_prob,
        block=args.block,
    )


def run_predict_command(args: argparse.Namespace) -> int:
    from ..core.device import pick_device
    from ..core.distributed.blocks import check_block
    from ..core.errors import SegQCError
    from ..core.instances.decoding import decoding_config
    from ..core.predict.auto import AUTO
    from ..core.predict.loading import read_config
    from ..core.predict.scale import parse_diameter

    diameter = parse_diameter(args.diameter)
    files = _inputs(Path(args.input))
    distributed = bool(args.scheduler) or args.workers is not None
    device = None if distributed else pick_device(args.device)  # workers pick their own
    if distributed:
        check_block(args.block)
        if args.workers is not None and args.workers < 1:
            raise SegQCError(f"--workers must be at least 1, got {args.workers}")
    auto = args.model == AUTO
    # bad settings and models are refused before any folder is made or image read
    config = read_config("nuclei" if auto else args.model)
    settings = _settings(args, diameter, distributed)
    decoding_config(config, **settings.decoding())
    failed: list[str] = []

    def fail(name: str, exc: BaseException) -> None:
        if args.stop_on_error:
            raise SegQCError(f"{name}: {exc}") from None
        print(f"segqc predict: error: {name}: {exc} (skipped)", file=sys.stderr, flush=True)
        failed.append(name)

    if distributed:
        items = _targets(args, files)
        from ..core.distributed.cluster import dask_client
        from ..core.distributed.predict import predict_paths

        with dask_client(args.scheduler, args.workers) as client:
            predict_paths(client, items, settings, report=_say, fail=fail)
    else:
        _predict_here(args, settings, device, files, fail)
    if failed:
        print(
            f"segqc predict: {len(failed)} of {len(files)} images failed: {', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


def _predict_here(args: argparse.Namespace, settings, device, files: list[Path], fail) -> None:
    """Image after image in this process (the single-process path)."""
    from ..core.distributed.images import predict_file
    from ..core.distributed.models import ModelCache
    from ..core.errors import SegQCError
    from ..core.predict.auto import AUTO

    models = ModelCache()
    items = _targets(args, files)
    if args.model != AUTO:
        models.get(settings.model, device, args.backend)
    for f, target in items:
        try:
            _say(predict_file(f, target, settings, models))
        except (SegQCError, OSError, ValueError) as exc:
            fail(f.name, exc)
