"""``segqc lr-find``: the learning-rate range test, as CSV, PNG and a suggested rate (the work
is in ``core.train.lr_find``)."""

from __future__ import annotations

import argparse

from .common import every_tenth, output_folder
from .train import add_training_options, config_from_args

LR_FIND_COLUMNS = ("lr", "loss")
#: What lr-find writes into --out (nothing else: no weights, no config).
LR_FIND_FILES = ("lr_find.csv", "lr_find.png")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "lr-find",
        help="learning-rate range test: find a learning rate for segqc train",
        description="Train a fresh model as `segqc train` would with these options, for "
        "--steps steps while the learning rate rises exponentially from --start-lr to "
        "--end-lr (Smith 2017), and suggest a rate: where the smoothed loss falls fastest "
        "(else a tenth of the rate at its minimum). Writes lr_find.csv (lr, loss) and "
        "lr_find.png into --out, nothing else: the model is thrown away.",
    )
    add_training_options(p, out_help="folder for lr_find.csv and lr_find.png", run=False)
    p.add_argument("--start-lr", type=float, default=1e-7, help="learning rate of the first step")
    p.add_argument("--end-lr", type=float, default=1.0, help="learning rate of the last step")
    p.add_argument("--steps", type=int, default=200, help="training steps (at most)")
    # the settings of a whole run that the test does not use (config_from_args reads them)
    p.set_defaults(
        func=run_lr_find_command,
        epochs=1,
        lr=1e-3,
        schedule="constant",
        val_fraction=0.0,
        steps_per_epoch=0,
        patience=0,
        checkpoint_every=0,
        resume=False,
    )


def run_lr_find_command(args: argparse.Namespace) -> int:
    from matplotlib.figure import Figure

    from ..core.explain.plots import draw_lr_find, save_figure
    from ..core.io import csv_text, write_text
    from ..core.predict.inference import run_to_end
    from ..core.train.config import check_training
    from ..core.train.data import load_folder, load_training_data
    from ..core.train.lr_find import check_lr_range, iter_lr_find

    config = config_from_args(args)
    check_training(config)
    check_lr_range(args.start_lr, args.end_lr, args.steps)
    out = output_folder(args.out)
    samples = (
        load_folder(args.images, args.masks) if args.masks else load_training_data(args.images)
    )
    print(
        f"LR range test on {len(samples)} images: {args.steps} steps, learning rate "
        f"{args.start_lr:.1e} to {args.end_lr:.1e}",
        flush=True,
    )
    gen = iter_lr_find(
        config, samples, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps
    )
    result = run_to_end(
        gen,
        every_tenth(
            lambda done, total: print(
                f"  step {done}/{total}: lr {_step_lr(args, done):.1e}", flush=True
            )
        ),
    )

    write_text(out / "lr_find.csv", csv_text(result.rows(), LR_FIND_COLUMNS))
    figure = Figure(figsize=(7, 4.5))
    draw_lr_find(figure, result)
    save_figure(figure, out / "lr_find.png")
    if result.diverged:
        print(f"stopped after {len(result.lrs)} steps: the loss diverged", flush=True)
    how = "steepest descent" if result.suggested == result.steepest else "minimum / 10"
    print(
        f"steepest descent at {result.steepest:.1e}, minimum / 10 at {result.min_tenth:.1e} "
        f"({result.seconds:.1f}s)",
        flush=True,
    )
    print(f"wrote {', '.join(LR_FIND_FILES)} to {out}")
    print(f"suggested learning rate: {result.suggested:.1e} ({how})")
    return 0


def _step_lr(args: argparse.Namespace, done: int) -> float:
    """The learning rate of step ``done`` (counted from 1)."""
    return args.start_lr * (args.end_lr / args.start_lr) ** ((done - 1) / (args.steps - 1))
