"""``segqc train``: arguments and the epoch printout (the work is in ``core.train``).

Under torchrun (``torchrun --nproc-per-node N -m napari_segqc.cli train ...``) every process
runs this command and rank 0 alone prints; ``--nproc N`` starts that on this machine.
"""

from __future__ import annotations

import argparse
import functools
import signal
from dataclasses import replace
from pathlib import Path

from .common import add_device_options


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a U-Net on images and instance masks",
        description="Train a segmentation model. --images DIR --masks DIR pairs files by name; "
        "--images alone takes a folder with images/ + masks/ or the DSB 2018 layout.",
    )
    add_training_options(p, out_help="run folder to write")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train in N processes on this machine (torchrun, DistributedDataParallel: one per "
        "GPU, or CPU processes); the global batch is N x --batch",
    )
    p.set_defaults(func=functools.partial(run_train_command, parser=p))


def add_training_options(p, *, out_help: str, run: bool = True) -> None:
    """The options of a training run: data, --out, network, patches, optimisation, device.
    ``run=False`` leaves out what only a whole run uses (epochs, the learning rate and its
    schedule, validation, early stopping, checkpoints); :func:`config_from_args` then takes
    their defaults (set them with ``set_defaults``)."""
    from ..core.models.registry import ARCHITECTURES
    from ..core.train.losses import LOSSES
    from ..core.train.optim import OPTIMIZERS, SCHEDULES

    p.add_argument(
        "--images",
        required=True,
        metavar="DIR",
        help="image folder (with --masks), or a folder with images/ + masks/ or DSB 2018 layout",
    )
    p.add_argument(
        "--masks",
        metavar="DIR",
        help="instance-mask folder paired with --images by file name (default: none, see --images)",
    )
    p.add_argument("--out", required=True, metavar="RUN_DIR" if run else "DIR", help=out_help)
    if run:
        p.add_argument(
            "--epochs", type=int, help="epochs in all (default 50; with --resume: the run's own)"
        )
    p.add_argument("--arch", default="unet", choices=list(ARCHITECTURES), help="architecture")
    p.add_argument(
        "--encoder", default="resnet34", help="smp encoder name, or tu-<timm model> (no weights)"
    )
    p.add_argument(
        "--encoder-depth", type=int, default=5, help="downsampling stages (3-5); fewer = smaller"
    )
    p.add_argument(
        "--decoder-channels",
        type=_widths,
        metavar="W,W,...",
        help="decoder widths, one per stage (default 256,128,64,32,16)",
    )
    p.add_argument(
        "--target-mode",
        default="instance",
        choices=("instance", "binary"),
        help="instance: foreground + boundary + distance (touching nuclei split); binary",
    )
    p.add_argument("--patch", type=int, default=256, help="patch side in pixels (multiple of 32)")
    p.add_argument("--batch", type=int, default=8, help="patches per step")
    if run:
        p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--loss", default="bce_dice", choices=sorted(LOSSES), help="loss")
    p.add_argument("--optimizer", default="adam", choices=OPTIMIZERS, help="optimizer")
    if run:
        p.add_argument(
            "--schedule", default="cosine", choices=SCHEDULES, help="learning-rate schedule"
        )
        p.add_argument(
            "--val-fraction",
            type=float,
            default=0.15,
            help="share of the images held out to validate",
        )
        p.add_argument(
            "--steps-per-epoch", type=int, default=0, help="0: about one pass over the pixels"
        )
        p.add_argument("--patience", type=int, default=10, help="early stopping; 0 = off")
        p.add_argument(
            "--checkpoint-every",
            type=int,
            default=10,
            metavar="N",
            help="write epoch_NNN.safetensors every N epochs (for segqc evaluate "
            "--checkpoints); 0 = off",
        )
    p.add_argument(
        "--zoom",
        type=_zoom,
        default="0.7,1.4",
        metavar="LOW,HIGH",
        help="scale augmentation: patches zoomed by a random factor in this range (with a "
        "random rotation and slight shear); 1,1 = off",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (split, patches, weights)")
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="start from these weights (run folder, .safetensors or built-in name): fine-tuning "
        "(default: random weights)",
    )
    add_device_options(p)


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def _zoom(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}") from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"need 0 < LOW <= HIGH, got {text!r}")
    return lo, hi


def config_from_args(args: argparse.Namespace):
    from ..core.models.registry import ModelConfig
    from ..core.train.augment import AugmentConfig, with_zoom
    from ..core.train.config import TrainConfig
    from ..core.train.optim import ScheduleConfig

    return TrainConfig(
        model=ModelConfig(
            arch=args.arch,
            encoder=args.encoder,
            encoder_depth=args.encoder_depth,
            decoder_channels=args.decoder_channels,
        ),
        target_mode=args.target_mode,
        loss=args.loss,
        optimizer=args.optimizer,
        lr=args.lr,
        schedule=replace(ScheduleConfig(), name=args.schedule),
        epochs=_epochs(args),
        steps_per_epoch=args.steps_per_epoch,
        patch=args.patch,
        batch=args.batch,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        patience=args.patience,
        checkpoint_every=args.checkpoint_every,
        init=args.init,
        augment=with_zoom(AugmentConfig(), args.zoom),
    )


def _epochs(args: argparse.Namespace) -> int:
    from ..core.train.run_folder import saved_run

    if args.epochs is not None:
        return args.epochs
    return saved_run(args.out)[0].epochs if args.resume else 50


def run_train_command(args: argparse.Namespace, parser=None) -> int:
    from ..core.train.config import check_training
    from ..core.train.data import load_folder, load_training_data
    from ..core.train.distributed import check_nproc, torchrun_env
    from ..core.train.loop import EpochReport, iter_train
    from ..core.train.run_folder import check_run_folder, saved_run

    config = config_from_args(args)
    nproc = getattr(args, "nproc", 1)
    check_nproc(nproc, config.device)
    if not args.resume:  # resuming takes the run's own settings (checked when it started)
        check_training(config)
    check_run_folder(args.out, args.resume)
    if nproc > 1:
        return _launch(nproc, args, parser)
    rank, world, _ = torchrun_env()
    say = functools.partial(print, flush=True) if rank == 0 else _silent
    samples = (
        load_folder(args.images, args.masks) if args.masks else load_training_data(args.images)
    )
    say(f"training on {len(samples)} images, run folder {args.out}")
    if world > 1:
        batch = saved_run(args.out)[0].batch if args.resume else config.batch
        say(f"{world} processes x batch {batch} = global batch {world * batch}")
    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(1))
    try:
        gen = iter_train(
            config,
            samples,
            args.out,
            resume=args.resume,
            stop=lambda: bool(interrupted),
        )
        while True:
            try:
                report = next(gen)
            except StopIteration as done:
                best = done.value
                break
            if isinstance(report, EpochReport):
                say(
                    f"epoch {report.epoch + 1}/{report.epochs}: loss {report.train_loss:.4f} "
                    f"val loss {report.val_loss:.4f} IoU {report.val_iou:.3f} "
                    f"F1 {report.val_f1:.3f} lr {report.lr:.2e} {report.seconds:.1f}s "
                    f"{report.images_per_s:.1f} img/s{' *' if report.best else ''}"
                )
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        say("stopped: the last finished step is saved in last.safetensors")
    say(f"best model: {best}")
    return 0


def _silent(*_args, **_kwargs) -> None:
    """Ranks other than 0 print nothing."""


def _launch(nproc: int, args: argparse.Namespace, parser) -> int:
    """Run this command (without ``--nproc``) in ``nproc`` processes under torchrun."""
    from ..core.errors import SegQCError
    from ..core.train.distributed import launch_local

    if parser is None:
        raise SegQCError("--nproc needs the train command's parser (run it through segqc)")
    for option in ("images", "masks"):  # a missing folder: one message, not one per process
        folder = getattr(args, option)
        if folder and not Path(folder).is_dir():
            raise SegQCError(f"{folder}: no such folder")
    print(f"starting {nproc} training processes (torchrun, 127.0.0.1)", flush=True)
    return launch_local(nproc, ["train", *_command_line(parser, args)])


def _command_line(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The options of ``args`` as a command line that ``parser`` reads back (``--nproc``
    left out)."""
    line = []
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "nproc"):
            continue
        value = getattr(args, action.dest, None)
        flag = action.option_strings[-1]
        if action.nargs == 0:
            line += [flag] if value is True else []
        elif value is not None:
            text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            line.append(f"{flag}={text}")
    return line
