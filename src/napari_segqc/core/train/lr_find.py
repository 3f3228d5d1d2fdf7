"""The learning-rate range test: train a fresh model for a few steps while the learning rate
rises exponentially, and read a good rate off the loss curve.

The model, data, augmentation, precision and training step are exactly those of a training
run (:func:`napari_segqc.core.train.loop.iter_train`); only the rate changes, every step. The
test keeps everything in memory and writes nothing: the model is thrown away.

How the rate is suggested: the loss is smoothed (an exponential moving average over about 5 %
of the steps, bias-corrected; see :func:`smoothing`) and the rate where the smoothed loss
falls fastest against log(rate) is taken (``steepest``), looking only after the first 10 % of
the steps (the average is still settling there) and before the smoothed loss's minimum. When
that stretch is too short, or the loss falls there by less than 2 %, the curve is flat or
noisy and a tenth of the rate at the minimum is taken instead (``min_tenth``). The test stops
early once the smoothed loss exceeds 4 times its minimum, or the loss is no longer finite
(that step is not recorded).

References
----------
Smith (2017), "Cyclical Learning Rates for Training Neural Networks", WACV (the LR range test).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from ..device import autocast_dtype, pick_device
from ..errors import SegQCError, Stopped
from ..instances.targets import make_targets
from .config import TrainConfig
from .data import PatchSampler, Sample
from .loop import _train_step, fit_to_samples, warm_start

#: The loss's moving average spans about this share of the planned steps (at least 2 steps).
SMOOTHING_SPAN = 0.05
#: The test stops when the smoothed loss exceeds this multiple of its minimum.
DIVERGENCE = 4.0
#: Share of the first steps left out of the steepest-descent search.
SKIP_START = 0.1
#: Least relative fall of the smoothed loss before its minimum for the steepest descent to count.
MIN_DROP = 0.02


@dataclass
class LRFindResult:
    """An LR range test: the rates tried, the losses seen and the rates read off them."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggested: float
    steepest: float
    min_tenth: float
    diverged: bool
    seconds: float

    def rows(self) -> list[dict]:
        """One row ``{"lr", "loss"}`` per step (the raw loss)."""
        return [
            {"lr": float(r), "loss": float(v)} for r, v in zip(self.lrs, self.losses, strict=True)
        ]


def smoothing(steps: int) -> float:
    """The moving average's factor for a test of ``steps`` steps: ``1 - 1 / span``, the span
    being 5 % of the steps (at least 2). A longer span would lag: the smoothed curve would fall
    fastest at a higher rate than the loss itself did."""
    return 1.0 - 1.0 / max(2.0, SMOOTHING_SPAN * steps)


def check_lr_range(start_lr: float, end_lr: float, steps: int) -> None:
    """Raise a :class:`SegQCError` for a range test that cannot run (before anything loads)."""
    if not (math.isfinite(start_lr) and math.isfinite(end_lr) and 0 < start_lr < end_lr):
        raise SegQCError(
            f"the learning rates must rise: 0 < start < end, got start {start_lr:g}, end {end_lr:g}"
        )
    if steps < 5:
        raise SegQCError(f"an LR range test needs at least 5 steps, got {steps}")


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> tuple[float, float, float]:
    """``(suggested, steepest, min_tenth)`` from a smoothed loss curve (see the module's
    docstring for the rule)."""
    lrs, smoothed = np.asarray(lrs, float), np.asarray(smoothed, float)
    i_min = int(np.argmin(smoothed))
    min_tenth = float(lrs[i_min]) / 10
    if len(lrs) < 2:
        return min_tenth, float(lrs[0]), min_tenth
    slope = np.gradient(smoothed, np.log(lrs))
    lo = min(int(len(lrs) * SKIP_START), i_min)
    k = lo + int(np.argmin(slope[lo : i_min + 1]))
    steepest = float(lrs[k])
    drop = smoothed[lo] - smoothed[i_min]
    clear = i_min - lo >= 2 and slope[k] < 0 and drop >= MIN_DROP * abs(smoothed[lo])
    return (steepest if clear else min_tenth), steepest, min_tenth


def iter_lr_find(
    config: TrainConfig,
    samples: list[Sample],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    steps: int = 200,
    stop: Callable[[], bool] | None = None,
) -> Generator[tuple[int, int], None, LRFindResult]:
    """Run an LR range test of ``config`` on ``samples`` (all of them train; no validation).

    Step ``i`` trains with the rate ``start_lr * (end_lr / start_lr) ** (i / (steps - 1))``.
    A generator: yields (steps done, steps planned) after every step and returns the
    :class:`LRFindResult`; ``stop()`` turning true raises :class:`Stopped`. ``config.lr``,
    the schedule, epochs and validation settings are not used. Nothing is written.
    """
    import torch

    from ..models.registry import build_model
    from .losses import make_loss
    from .optim import make_optimizer

    check_lr_range(start_lr, end_lr, steps)
    samples = list(samples)
    config = fit_to_samples(config, samples)
    device = pick_device(config.device)
    dtype = autocast_dtype(config.precision, device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    torch.manual_seed(config.seed)
    model = build_model(config.model).to(device, memory_format=memory_format)
    if config.init:
        warm_start(model, config.init)
    optimizer = make_optimizer(
        config.optimizer, model.parameters(), lr=start_lr, weight_decay=config.weight_decay
    )
    loss_fn = make_loss(config.loss)
    targets = [make_targets(s.labels, config.target_mode) for s in samples]
    sampler = PatchSampler(samples, targets, config.patch, seed=config.seed * 100_003)
    gen = torch.Generator(device=device if device.type == "cuda" else "cpu")
    gen.manual_seed(config.seed * 100_003)
    model.train()

    beta = smoothing(steps)
    lrs, losses, smoothed = [], [], []
    average, best, diverged = 0.0, math.inf, False
    t0 = time.perf_counter()
    for i in range(steps):
        if stop is not None and stop():
            raise Stopped("LR range test stopped")
        lr = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = _train_step(
            model, optimizer, loss_fn, sampler, gen, config, device, dtype, memory_format
        )
        value = float(loss.detach())
        if not math.isfinite(value):
            diverged = True
            break
        average = beta * average + (1 - beta) * value
        smooth = average / (1 - beta ** (i + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(smooth)
        best = min(best, smooth)
        yield i + 1, steps
        if smooth > DIVERGENCE * best:
            diverged = True
            break
    if not lrs:
        raise SegQCError(
            f"the training loss was not finite from the first step (learning rate "
            f"{start_lr:.1e}): check the images, masks and settings"
        )
    suggested, steepest, min_tenth = suggest(np.array(lrs), np.array(smoothed))
    return LRFindResult(
        lrs=np.array(lrs),
        losses=np.array(losses),
        smoothed=np.array(smoothed),
        suggested=suggested,
        steepest=steepest,
        min_tenth=min_tenth,
        diverged=diverged,
        seconds=time.perf_counter() - t0,
    )


def lr_find(
    config: TrainConfig,
    samples: list[Sample],
    *,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
    **kwargs,
) -> LRFindResult:
    """:func:`iter_lr_find` run to its end; ``progress(done, planned)`` after every step,
    ``stop()`` polled before each (raises :class:`Stopped`)."""
    from ..predict.inference import run_to_end

    return run_to_end(iter_lr_find(config, samples, stop=stop, **kwargs), progress)
