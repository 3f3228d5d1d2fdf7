"""``segqc landscape``: a trained model's loss surface around its weights, as CSV and PNG (the
work is in ``core.explain.landscape``)."""

from __future__ import annotations

import argparse

from .common import add_device_options, every_tenth, output_folder

LANDSCAPE_COLUMNS = ("loss", "alpha", "beta", "value")
PATH_COLUMNS = ("loss", "t", "value")


def add_parser(sub) -> None:
    from ..core.explain.landscape import LANDSCAPE_LOSSES

    p = sub.add_parser(
        "landscape",
        help="loss landscape of a trained model around its weights (Li et al. 2018)",
        description="Evaluate the losses of a trained model on a grid in a plane through its "
        "weights, spanned by two random filter-normalised directions, on centre crops of the "
        "images with their ground truth. Writes landscape.csv (loss, alpha, beta, value) and "
        "landscape.png; when the model's run folder kept its initial weights (init.safetensors) "
        "also interpolation.csv (loss, t, value): the straight path from the initial (t=0) to "
        "the trained (t=1) weights.",
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="MODEL",
        help="built-in name, run folder or .safetensors (torch weights; not an ONNX file)",
    )
    p.add_argument("--images", required=True, metavar="DIR", help="images to evaluate on")
    p.add_argument("--gt", required=True, metavar="DIR", help="ground-truth labels (by name)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    p.add_argument(
        "--losses",
        default=",".join(LANDSCAPE_LOSSES),
        metavar="NAME,NAME",
        help=f"losses to evaluate, comma-separated, from {', '.join(LANDSCAPE_LOSSES)}",
    )
    p.add_argument(
        "--steps", type=int, default=11, help="grid points per direction (odd: 0 in the middle)"
    )
    p.add_argument(
        "--span", type=float, default=1.0, help="the grid runs from -SPAN to SPAN per direction"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions")
    p.add_argument("--max-images", type=int, default=8, help="images in the evaluation batch")
    p.add_argument(
        "--patch", type=int, default=256, help="centre crop side in pixels (multiple of 32)"
    )
    add_device_options(p, precision=False)
    p.set_defaults(func=run_landscape_command)


def _check_options(args: argparse.Namespace) -> tuple[str, ...]:
    from ..core.errors import SegQCError
    from ..core.explain.landscape import LANDSCAPE_LOSSES

    names = [n.strip().lower() for n in args.losses.split(",") if n.strip()]
    unknown = [n for n in names if n not in LANDSCAPE_LOSSES]
    if unknown or not names:
        raise SegQCError(
            f"--losses: unknown {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(LANDSCAPE_LOSSES)}"
        )
    if args.steps < 3 or args.steps % 2 == 0:
        raise SegQCError(
            f"--steps must be odd and at least 3 (the trained model in the middle), "
            f"got {args.steps}"
        )
    if not args.span > 0 or args.span == float("inf"):
        raise SegQCError(f"--span must be a positive number, got {args.span}")
    if args.max_images < 1:
        raise SegQCError(f"--max-images must be at least 1, got {args.max_images}")
    if args.patch < 32 or args.patch % 32:
        raise SegQCError(f"--patch must be a multiple of 32 (>= 32), got {args.patch}")
    return tuple(dict.fromkeys(names))


def run_landscape_command(args: argparse.Namespace) -> int:
    import numpy as np

    from ..core.device import pick_device
    from ..core.explain.landscape import initial_weights, iter_landscape, qc_batch
    from ..core.explain.plots import draw_landscape, save_figure
    from ..core.io import csv_text, write_text
    from ..core.predict.inference import run_to_end
    from ..core.predict.loading import load_model, read_config
    from ..core.train.data import load_folder

    losses = _check_options(args)
    out = output_folder(args.out)
    device = pick_device(args.device)
    config = read_config(args.model)  # the header only: inputs are checked before loading
    samples = load_folder(args.images, args.gt)
    x, y = qc_batch(samples, config, patch=args.patch, max_images=args.max_images)
    loaded = load_model(args.model, device, backend="torch")
    init = initial_weights(args.model)
    shape = "x".join(str(n) for n in x.shape[-2:])
    print(
        f"loss landscape of {loaded.path} on {len(x)} image crops ({shape}): {args.steps} x "
        f"{args.steps} points{', with the path from the initial weights' if init else ''}",
        flush=True,
    )
    gen = iter_landscape(
        loaded.model,
        x,
        y,
        losses=losses,
        steps=args.steps,
        span=args.span,
        seed=args.seed,
        init_state=init,
    )
    say = every_tenth(lambda done, total: print(f"  {done}/{total} points", flush=True))
    result = run_to_end(gen, say)

    write_text(out / "landscape.csv", csv_text(result.rows(), LANDSCAPE_COLUMNS))
    if result.path_t is not None:
        write_text(out / "interpolation.csv", csv_text(result.path_rows(), PATH_COLUMNS))
    from matplotlib.figure import Figure

    panels = len(losses) + (result.path_t is not None)
    figure = Figure(figsize=(4.5 * panels, 4.2))
    draw_landscape(figure, result)
    save_figure(figure, out / "landscape.png")

    centre = args.steps // 2
    for name, grid in result.values.items():
        if not np.isfinite(grid).any():
            print(f"{name}: no finite values", flush=True)
            continue
        i, j = np.unravel_index(np.nanargmin(grid), grid.shape)
        where = (
            "the trained weights are the lowest point"
            if (i, j) == (centre, centre)
            else f"trained {grid[centre, centre]:.4g}"
        )
        print(
            f"{name}: minimum {grid[i, j]:.4g} at alpha {result.alphas[i]:+.3g}, "
            f"beta {result.betas[j]:+.3g} ({where})",
            flush=True,
        )
    written = "landscape.csv, landscape.png"
    written += ", interpolation.csv" if result.path_t is not None else ""
    print(f"wrote {written} to {out} in {result.seconds:.1f}s")
    return 0
