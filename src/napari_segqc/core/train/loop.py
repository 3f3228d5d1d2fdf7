"""The training loop: a generator that yields progress and writes a run folder safely.

``iter_train`` is driven the same way by the CLI and the napari widget: it yields a
:class:`StepReport` every few steps and an :class:`EpochReport` after every epoch, and polls a
``stop`` callable between steps. Stopping finishes the current step and leaves a loadable
``last.safetensors``.

The run folder's files are described in :mod:`.run_folder`.

Under ``torchrun`` every process runs this loop as one rank of a process group
(:mod:`.distributed`): each draws its own patches, gradients are averaged (the global batch is
ranks x ``config.batch``), rank 0 validates and writes the run folder, and every rank reads it
to resume.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..device import autocast_dtype
from ..errors import SegQCError
from ..instances.sizes import training_diameters
from ..instances.targets import check_target_mode, make_targets
from ..io import write_text
from ..models.builtin import resolve_model_path
from ..models.normalize import BRIGHT_BACKGROUND, background_place
from ..models.weights import load_state, load_weights, save_state
from .config import TrainConfig
from .data import PatchSampler, Sample, check_samples, split_samples
from .distributed import patch_seed, start
from .run_folder import RunFolder, check_run_folder, resumed_config
from .validation import validate

STEP_REPORT_EVERY = 5
#: The validation scores, as :func:`.validation.validate` returns them.
VAL_KEYS = ("val_loss", "val_iou", "val_f1")


@dataclass(frozen=True)
class StepReport:
    epoch: int
    step: int
    steps: int
    loss: float


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    val_iou: float
    val_f1: float
    lr: float
    seconds: float
    images_per_s: float
    best: bool
    stopped: bool = False


def iter_train(
    config: TrainConfig,
    samples: list[Sample],
    out_dir: str | Path,
    *,
    resume: bool = False,
    stop: Callable[[], bool] | None = None,
    val_samples: list[Sample] | None = None,
) -> Generator[StepReport | EpochReport, None, Path]:
    """Train on ``samples``, writing the run folder ``out_dir``; return the best weights' path.

    With ``resume=True`` the run folder's ``config.json``, weights, optimizer, schedule, epoch
    counter and history are taken up where they stopped; only ``config.epochs`` is taken from
    ``config``: the new total, more than the epochs done (fewer than planned shortens the
    schedule from where it is; see :func:`.run_folder.saved_run`). ``val_samples`` given: a
    fixed validation set (``samples`` all train; ``config.val_fraction`` is not used).

    Under torchrun every rank calls this with the same arguments; the reports are the same on
    every rank (losses averaged over the ranks), ``stop`` is rank 0's (see :mod:`.distributed`).
    """
    out = Path(out_dir)
    if resume:
        config = resumed_config(out, config)
    config = fit_to_samples(config, list(samples) + list(val_samples or []))
    if val_samples is None:
        train_set, val_set = split_samples(samples, config.val_fraction, config.seed)
    else:
        train_set, val_set = list(samples), list(val_samples)
    if not resume:
        diameter, diameter_range = training_diameters([s.labels for s in train_set])
        bright = np.mean(
            [background_place(s.image.mean(axis=0)) > BRIGHT_BACKGROUND for s in train_set]
        )
        config = replace(
            config,
            diameter=round(diameter, 2),
            diameter_range=tuple(round(d, 2) for d in diameter_range),
            bright_fraction=round(float(bright), 3),
        )
    check_run_folder(out, resume)
    ranks, device = start(config.device)
    try:
        ranks.barrier()  # every rank has read the run folder before rank 0 writes into it
        if ranks.is_main:
            out.mkdir(parents=True, exist_ok=True)
            write_text(out / "config.json", config.to_json())
        yield from _epochs(config, train_set, val_set, out, ranks, device, resume, stop)
        ranks.barrier()  # rank 0 has written its last file
    finally:
        ranks.close()
    return out / ("best.safetensors" if (out / "best.safetensors").exists() else "last.safetensors")


def _epochs(config, train_set, val_set, out, ranks, device, resume, stop):
    """The epochs of :func:`iter_train` on this rank, from its model's first weights on."""
    import torch

    from ..models.registry import build_model
    from .losses import make_loss
    from .optim import EarlyStopping, make_optimizer, make_scheduler, step_scheduler

    run = RunFolder(out)
    dtype = autocast_dtype(config.precision, device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    torch.manual_seed(config.seed)
    model = build_model(config.model).to(device, memory_format=memory_format)
    optimizer = make_optimizer(
        config.optimizer, model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = make_scheduler(optimizer, config.schedule, epochs=config.epochs)
    early = EarlyStopping(config.patience)
    loss_fn = make_loss(config.loss)
    history, start_epoch = [], 0
    if resume:
        start_epoch = _restore(out, model, optimizer, scheduler, early)
        history = [r for r in run.read_history() if r["epoch"] < start_epoch]
    else:
        if config.init:
            warm_start(model, config.init)
        if ranks.is_main:  # the starting point, for the loss landscape (core.explain.landscape)
            run.save_weights("init.safetensors", model, config, -1)
    net = ranks.wrap(model)  # what trains; ``model`` (the same weights) validates and is saved

    targets = [make_targets(s.labels, config.target_mode) for s in train_set]
    val_targets = [make_targets(s.labels, config.target_mode) for s in val_set if ranks.is_main]
    steps = config.steps_per_epoch or _auto_steps(train_set, config, ranks.world_size)
    metric_key = "val_iou" if config.target_mode == "binary" else "val_f1"

    for epoch in range(start_epoch, config.epochs):
        seed = patch_seed(config.seed, epoch, ranks.rank)
        sampler = PatchSampler(train_set, targets, config.patch, seed=seed)
        gen = torch.Generator(device=device if device.type == "cuda" else "cpu")
        gen.manual_seed(seed)
        net.train()
        total = torch.zeros((), device=device)
        t0 = time.perf_counter()
        stopped, done = False, 0
        for step in range(steps):
            if ranks.decide(stop is not None and stop()):
                stopped = True
                break
            loss = _train_step(
                net, optimizer, loss_fn, sampler, gen, config, device, dtype, memory_format
            )
            total += loss.detach()
            done += 1
            if (step + 1) % STEP_REPORT_EVERY == 0 or step + 1 == steps:
                yield StepReport(epoch, step + 1, steps, ranks.mean(total, done))
        seconds = time.perf_counter() - t0
        if done == 0:  # stopped before any step of this epoch: nothing new to save
            if ranks.is_main:
                run.save_weights("last.safetensors", model, config, epoch - 1)
            break
        val = None  # validated on rank 0, which the others wait for
        if ranks.is_main:
            val = validate(model, val_set, val_targets, loss_fn, config, device, dtype)
        val = ranks.share(val, VAL_KEYS)
        lr = optimizer.param_groups[0]["lr"]
        row = {
            "epoch": epoch,
            "train_loss": ranks.mean(total, done),
            **val,
            "lr": lr,
            "seconds": seconds,
            "images_per_s": done * config.batch * ranks.world_size / seconds,
        }
        history.append(row)
        metric = val[metric_key]
        best = not any(r[metric_key] >= metric for r in history[:-1])
        validated = not math.isnan(metric)  # without a validation set nothing is compared
        step_scheduler(scheduler, metric if validated else None)
        should_stop = early.update(metric) if validated else False
        if ranks.is_main:
            _save_epoch(run, model, optimizer, scheduler, early, config, epoch, best, history)
        yield EpochReport(
            epoch=epoch,
            epochs=config.epochs,
            **val,
            train_loss=row["train_loss"],
            lr=lr,
            seconds=seconds,
            images_per_s=row["images_per_s"],
            best=best,
            stopped=stopped or should_stop,
        )
        if stopped or should_stop:
            break


def _save_epoch(run, model, optimizer, scheduler, early, config, epoch, best, history) -> None:
    """Write the weights, the training state and the history after an epoch (atomically)."""
    run.save_weights("last.safetensors", model, config, epoch)
    if best:
        run.save_weights("best.safetensors", model, config, epoch)
    if config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0:
        run.save_weights(f"epoch_{epoch + 1:03d}.safetensors", model, config, epoch)
    sched_state = scheduler.state_dict()
    sched_state.pop("lr_lambdas", None)  # rebuilt from the config on resume
    save_state(
        run.out / "state.safetensors",
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": sched_state,
            "early": early.state_dict(),
            "epoch": epoch + 1,
        },
    )
    run.write_history(history)


def fit_to_samples(config: TrainConfig, samples: list[Sample]) -> TrainConfig:
    """``config`` with the network's input channels taken from ``samples`` and its outputs
    from the target mode, checked (:meth:`TrainConfig.check`)."""
    n_channels = check_samples(samples)
    classes = len(check_target_mode(config.target_mode))
    config = replace(config, model=replace(config.model, in_channels=n_channels, classes=classes))
    config.check()
    return config


def warm_start(model, source: str | Path) -> tuple[int, int]:
    """Copy the weights of ``source`` whose names and shapes fit ``model``; return (copied, total).

    For fine-tuning a trained model (also with another number of output classes, or a smaller
    decoder); raises a :class:`SegQCError` when nothing fits, e.g. another encoder.
    """
    import torch

    path = resolve_model_path(source)
    weights, _ = load_weights(path)
    own = model.state_dict()
    fitting = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise SegQCError(f"{path}: none of its weights fit this model (another architecture?)")
    with torch.no_grad():
        for k, v in fitting.items():
            own[k].copy_(v)
    return len(fitting), len(own)


def _auto_steps(train_set: list[Sample], config: TrainConfig, world_size: int = 1) -> int:
    """Steps for about one pass over the training pixels (shared by ``world_size`` ranks)."""
    pixels = sum(s.labels.size for s in train_set)
    patches = config.patch**2 * config.batch * world_size
    return int(min(200, max(4, math.ceil(pixels / patches))))


def _train_step(model, optimizer, loss_fn, sampler, gen, config, device, dtype, memory_format):
    import torch

    from .augment import augment_batch

    images, targets = sampler.sample(config.batch)
    x = torch.from_numpy(images).to(device, non_blocking=True)
    y = torch.from_numpy(targets).to(device, non_blocking=True)
    x, y = augment_batch(x, y, config.augment, generator=gen)
    x = x.contiguous(memory_format=memory_format)
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        logits = model(x)
    loss = loss_fn(logits.float(), y)
    loss.backward()
    optimizer.step()
    return loss


def _restore(out: Path, model, optimizer, scheduler, early) -> int:
    state = load_state(out / "state.safetensors")
    weights, _ = load_weights(out / "last.safetensors")
    model.load_state_dict(weights)
    optimizer.load_state_dict(state["optimizer"])
    sched = dict(state["scheduler"])
    if hasattr(scheduler, "lr_lambdas"):
        sched["lr_lambdas"] = [None] * len(scheduler.lr_lambdas)
    scheduler.load_state_dict(sched)
    if hasattr(scheduler, "lr_lambdas"):  # the schedule may be longer now: take its rate
        for group, base, factor in zip(
            optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True
        ):
            group["lr"] = base * factor(scheduler.last_epoch)
    early.load_state_dict(state["early"])
    return int(state["epoch"])
