"""The LR range test: rising rates, nothing written, divergence, the suggestion, the model it
starts from, the figure."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from napari_segqc.core.errors import SegQCError, Stopped
from napari_segqc.core.explain.plots import draw_lr_find, save_figure
from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.models.weights import save_weights
from napari_segqc.core.train import lr_find as lr_find_module
from napari_segqc.core.train.config import TrainConfig
from napari_segqc.core.train.data import load_training_data
from napari_segqc.core.train.loop import fit_to_samples
from napari_segqc.core.train.lr_find import iter_lr_find, lr_find, suggest

TINY = TrainConfig(
    model=ModelConfig(encoder="resnet18", encoder_depth=3, decoder_channels=(16, 8, 4)),
    patch=64,
    batch=2,
)


@pytest.fixture(scope="module")
def samples(sample_dir):
    return load_training_data(sample_dir)


def scripted(monkeypatch, curve, seen=None):
    """Replace the training step by a loss that is a function of the rate (and record the
    model each step sees)."""

    def step(model, optimizer, *_):
        if seen is not None:
            seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return torch.tensor(curve(optimizer.param_groups[0]["lr"]), requires_grad=True)

    monkeypatch.setattr(lr_find_module, "_train_step", step)


def valley(lr: float) -> float:
    """Flat, a fall centred at 1e-4 (in log rate), then a blow-up from 1e-2 on."""
    fall = 1 / (1 + math.exp(-3 * (math.log10(lr) + 4)))
    return 2.0 - 1.5 * fall + (lr / 1e-2) ** 2


def test_rates_rise_and_nothing_is_written(samples, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the LR range test wrote a file")

    for module in ("napari_segqc.core.io", "napari_segqc.core.models.weights"):
        monkeypatch.setattr(f"{module}.write_atomic", refuse)
    monkeypatch.chdir(tmp_path)
    progress = []
    result = lr_find(
        TINY,
        samples,
        start_lr=1e-5,
        end_lr=1e-2,
        steps=10,
        progress=lambda *p: progress.append(p),
    )
    assert list(tmp_path.iterdir()) == []
    assert progress == [(i, 10) for i in range(1, 11)]
    lrs = result.lrs
    assert len(lrs) == len(result.losses) == len(result.smoothed) == 10 and not result.diverged
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1e-2)
    assert (np.diff(lrs) > 0).all()
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], 10 ** (3 / 9))  # exponential: one ratio
    assert np.isfinite(result.losses).all() and result.smoothed[0] == result.losses[0]
    assert 1e-5 / 10 <= result.suggested <= 1e-2 and result.seconds > 0
    assert result.suggested in (result.steepest, result.min_tenth)
    rows = result.rows()
    assert len(rows) == 10 and rows[3] == {"lr": lrs[3], "loss": result.losses[3]}


def test_divergence_stops_early_and_the_steepest_fall_is_suggested(samples, monkeypatch):
    scripted(monkeypatch, valley)
    result = lr_find(TINY, samples, start_lr=1e-7, end_lr=1.0, steps=80)
    assert result.diverged and 20 < len(result.lrs) < 80 and result.lrs[-1] < 0.1
    assert result.smoothed[-1] > 4 * result.smoothed.min()
    assert result.suggested == result.steepest
    assert 3e-5 < result.steepest < 3e-4  # the fall is steepest at 1e-4
    k = int(np.argmin(result.smoothed))
    assert result.min_tenth == pytest.approx(result.lrs[k] / 10)


def test_a_loss_that_is_not_finite_ends_the_test_unrecorded(samples, monkeypatch):
    scripted(monkeypatch, lambda lr: 1.0 - lr if lr < 1e-3 else float("nan"))
    result = lr_find(TINY, samples, start_lr=1e-6, end_lr=1.0, steps=20)
    assert result.diverged and np.isfinite(result.losses).all()
    assert result.lrs[-1] < 1e-3 <= result.lrs[-1] * 10 ** (6 / 19) * 1.0001
    scripted(monkeypatch, lambda lr: float("inf"))
    with pytest.raises(SegQCError, match="not finite from the first step"):
        lr_find(TINY, samples, steps=20)


def test_a_flat_curve_falls_back_to_a_tenth_of_the_minimum(samples, monkeypatch):
    rng = np.random.default_rng(0)
    scripted(monkeypatch, lambda lr: 1.0 + 1e-4 * rng.standard_normal())
    result = lr_find(TINY, samples, start_lr=1e-6, end_lr=1e-1, steps=30)
    assert not result.diverged
    assert result.suggested == result.min_tenth != result.steepest
    # the rule on its own: a clean fall gives its steepest point, a short curve the fallback
    lrs = np.geomspace(1e-6, 1, 50)
    assert suggest(lrs, np.array([valley(lr) for lr in lrs]))[0] == pytest.approx(1e-4, rel=0.5)
    assert suggest(lrs[:1], np.array([1.0])) == (1e-7, 1e-6, 1e-7)


def test_the_model_is_built_as_training_builds_it(samples, monkeypatch, tmp_path):
    seen = []
    scripted(monkeypatch, lambda lr: 1.0, seen)
    lr_find(TINY, samples, steps=5)
    config = fit_to_samples(TINY, samples)
    torch.manual_seed(config.seed)
    fresh = build_model(config.model).state_dict()
    assert all(torch.equal(fresh[k], v) for k, v in seen[0].items())
    # --init: the run's starting weights, as a fine-tuning run starts
    torch.manual_seed(7)
    start = build_model(config.model).state_dict()
    save_weights(tmp_path / "start.safetensors", start, {})
    seen.clear()
    lr_find(replace(TINY, init=str(tmp_path / "start.safetensors")), samples, steps=5)
    assert all(torch.equal(start[k], v) for k, v in seen[0].items())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_lr": 1e-2, "end_lr": 1e-3}, "must rise"),
        ({"start_lr": 0.0}, "must rise"),
        ({"end_lr": float("inf")}, "must rise"),
        ({"steps": 4}, "at least 5 steps"),
    ],
)
def test_bad_ranges_are_clear(samples, kwargs, message):
    with pytest.raises(SegQCError, match=message):
        next(iter_lr_find(TINY, samples, **kwargs))


def test_stop_and_the_figure(samples, monkeypatch, tmp_path):
    scripted(monkeypatch, valley)
    calls = []
    with pytest.raises(Stopped):
        lr_find(TINY, samples, steps=50, stop=lambda: calls.append(1) or len(calls) > 3)
    result = lr_find(TINY, samples, steps=60)
    figure = Figure()
    draw_lr_find(figure, result)
    (ax,) = figure.axes
    assert ax.get_xscale() == "log" and "diverged" in ax.get_title()
    assert any(f"{result.suggested:.1e}" in t.get_text() for t in ax.get_legend().get_texts())
    save_figure(figure, tmp_path / "lr_find.png")
    assert (tmp_path / "lr_find.png").read_bytes().startswith(b"\x89PNG")
