"""Optimizers, learning-rate schedules and early stopping, by name.

Schedules are stepped once per epoch. ``plateau`` reduces the rate when the validation metric
stops improving (it needs the metric: ``scheduler.step(metric)``); the others ignore it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import SegQCError

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "exponential", "step", "cosine", "plateau")


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule settings (epochs are counted from 0)."""

    name: str = "cosine"
    decay_after: int = 10  # exponential: constant for this many epochs, then decays
    gamma: float = 0.9  # exponential: factor per epoch; step: factor per step
    step_size: int = 20  # step ("ladder"): epochs between decays
    min_lr_ratio: float = 0.01  # cosine: final rate as a fraction of the initial one
    patience: int = 5  # plateau: epochs without improvement before a decay


def make_optimizer(name: str, params: Iterable, *, lr: float, weight_decay: float = 0.0):
    """Adam, AdamW, SGD (momentum 0.9, Nesterov) or RMSprop (momentum 0.9)."""
    import torch

    if not lr > 0:
        raise SegQCError(f"learning rate must be positive, got {lr}")
    name = name.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay or 1e-4)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise SegQCError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")


def make_scheduler(optimizer, config: ScheduleConfig, *, epochs: int):
    """The schedule of ``config`` for a run of ``epochs`` epochs."""
    import torch

    name = config.name.lower()
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=0.5, patience=config.patience
        )
    if name not in SCHEDULES:
        raise SegQCError(f"unknown schedule {config.name!r}; choose one of: {', '.join(SCHEDULES)}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _LrFactor(name, config, max(epochs, 1)))


class _LrFactor:
    """Multiplicative LR factor per epoch (a class, so no lambda needs pickling or storing)."""

    def __init__(self, name: str, config: ScheduleConfig, epochs: int) -> None:
        self.name, self.config, self.epochs = name, config, epochs

    def __call__(self, epoch: int) -> float:
        c = self.config
        if self.name == "exponential":
            return c.gamma ** max(0, epoch - c.decay_after)
        if self.name == "step":
            return c.gamma ** (epoch // max(c.step_size, 1))
        if self.name == "cosine":
            t = min(epoch / self.epochs, 1.0)
            return c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        return 1.0


def step_scheduler(scheduler, metric: float | None) -> None:
    """Advance ``scheduler`` by one epoch (``metric`` is used by ``plateau`` only; with no
    metric, e.g. no validation set, ``plateau`` keeps the rate)."""
    import torch

    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if metric is not None:
            scheduler.step(metric)
    else:
        scheduler.step()


class EarlyStopping:
    """Stop when the validation metric has not improved for ``patience`` epochs (0: never)."""

    def __init__(self, patience: int = 0, *, min_delta: float = 0.0) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best = -math.inf
        self.bad_epochs = 0

    def update(self, metric: float) -> bool:
        """Record an epoch's metric; return True if training should stop."""
        if metric > self.best + self.min_delta:
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_epochs = float(state["best"]), int(state["bad_epochs"])
