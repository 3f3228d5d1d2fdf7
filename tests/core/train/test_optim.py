"""Optimizers, schedules and early stopping by name."""

import itertools
import math

import pytest
import torch

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.train.optim import (
    OPTIMIZERS,
    EarlyStopping,
    ScheduleConfig,
    make_optimizer,
    make_scheduler,
    step_scheduler,
)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizers_reduce_a_quadratic(name):
    w = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
    opt = make_optimizer(name, [w], lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    assert (w**2).sum().item() < 1.0


def lrs(config, epochs=30, metrics=None):
    opt = make_optimizer("sgd", [torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, config, epochs=epochs)
    out = []
    for epoch in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        step_scheduler(sched, metrics[epoch] if metrics else 0.0)
    return out


def test_schedules():
    assert set(lrs(ScheduleConfig("constant"))) == {1.0}
    exp = lrs(ScheduleConfig("exponential", decay_after=5, gamma=0.5))
    assert exp[:6] == [1.0] * 6 and exp[6] == pytest.approx(0.5) and exp[7] == pytest.approx(0.25)
    step = lrs(ScheduleConfig("step", step_size=10, gamma=0.1))
    assert step[9] == 1.0 and step[10] == pytest.approx(0.1) and step[20] == pytest.approx(0.01)
    cos = lrs(ScheduleConfig("cosine", min_lr_ratio=0.0), epochs=10)
    assert (
        cos[0] == 1.0
        and cos[5] == pytest.approx(0.5)
        and all(a > b for a, b in itertools.pairwise(cos))
    )
    flat = lrs(ScheduleConfig("plateau", patience=2), epochs=10, metrics=[0.5] * 10)
    assert flat[0] == 1.0 and flat[-1] < 1.0


def test_bad_names():
    with pytest.raises(SegQCError, match="choose one of: adam, adamw, sgd, rmsprop"):
        make_optimizer("lion", [torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    opt = make_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    with pytest.raises(SegQCError, match="unknown schedule"):
        make_scheduler(opt, ScheduleConfig("warp"), epochs=3)
    with pytest.raises(SegQCError, match="positive"):
        make_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))], lr=0)


def test_early_stopping():
    stop = EarlyStopping(patience=2)
    assert [stop.update(m) for m in (0.1, 0.2, 0.2, 0.19)] == [False, False, False, True]
    state = stop.state_dict()
    again = EarlyStopping(patience=2)
    again.load_state_dict(state)
    assert again.best == 0.2 and again.bad_epochs == 2
    assert not any(EarlyStopping(0).update(-m) for m in range(10))
    assert math.isinf(EarlyStopping().best)
