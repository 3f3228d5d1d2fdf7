"""The training loop: a tiny real run, the run folder, resume, stop, bad inputs."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_segqc.core.device import autocast_dtype, pick_device
from napari_segqc.core.errors import SegQCError
from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.models.weights import load_weights, save_weights
from napari_segqc.core.train.config import TrainConfig
from napari_segqc.core.train.data import load_training_data, samples_from_arrays
from napari_segqc.core.train.loop import EpochReport, StepReport, iter_train, warm_start
from napari_segqc.core.train.optim import ScheduleConfig
from napari_segqc.core.train.run_folder import HISTORY_COLUMNS, saved_run

TINY = TrainConfig(
    model=ModelConfig(arch="unet", encoder="resnet18"),
    epochs=2,
    steps_per_epoch=2,
    batch=2,
    patch=64,
    val_fraction=0.25,
    schedule=ScheduleConfig("cosine"),
)


@pytest.fixture(scope="module")
def samples(sample_dir):
    return load_training_data(sample_dir)


def drain(gen):
    reports = []
    while True:
        try:
            reports.append(next(gen))
        except StopIteration as done:
            return reports, done.value


def read_history(path):
    with open(path / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_run_writes_a_complete_run_folder(samples, tmp_path):
    reports, best = drain(iter_train(TINY, samples, tmp_path))
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    assert [r.epoch for r in epochs] == [0, 1]
    assert any(isinstance(r, StepReport) for r in reports)
    assert all(np.isfinite(r.train_loss) and r.images_per_s > 0 for r in epochs)
    assert best == tmp_path / "best.safetensors"
    names = {p.name for p in tmp_path.iterdir()}
    assert {
        "config.json",
        "history.csv",
        "best.safetensors",
        "last.safetensors",
        "state.safetensors",
    } <= names
    assert not [n for n in names if n.startswith(".")]  # no temporary files left
    rows = read_history(tmp_path)
    assert tuple(rows[0]) == HISTORY_COLUMNS and len(rows) == 2
    config = TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    assert config.model.in_channels == 1 and config.model.classes == 3
    weights, meta = load_weights(tmp_path / "last.safetensors")
    model = build_model(ModelConfig.from_dict(meta["config"]["model"]))
    model.load_state_dict(weights)  # the saved weights rebuild the model from its own config
    # the weights before the first step: the seeded fresh model (for the loss landscape's path)
    init, _ = load_weights(tmp_path / "init.safetensors")
    torch.manual_seed(TINY.seed)
    fresh = build_model(config.model).state_dict()
    assert all(torch.equal(fresh[k], v) for k, v in init.items()) and init.keys() == fresh.keys()
    assert not torch.equal(init["encoder.conv1.weight"], weights["encoder.conv1.weight"])


def test_config_round_trip():
    config = replace(TINY, lr=3e-4, loss="focal")
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(SegQCError, match="unknown keys"):
        TrainConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_resume_continues_history_and_epochs(samples, tmp_path):
    drain(iter_train(TINY, samples, tmp_path))
    init = (tmp_path / "init.safetensors").read_bytes()
    with pytest.raises(SegQCError, match="already holds a run"):
        drain(iter_train(TINY, samples, tmp_path))
    reports, _ = drain(iter_train(replace(TINY, epochs=3), samples, tmp_path, resume=True))
    assert (tmp_path / "init.safetensors").read_bytes() == init  # the run's start, kept
    assert [r.epoch for r in reports if isinstance(r, EpochReport)] == [2]
    rows = read_history(tmp_path)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    # the learning rate follows the longer cosine schedule, not the end of the old one
    assert float(rows[2]["lr"]) > 0.1 * TINY.lr


def test_resume_with_fewer_epochs_shortens_or_is_refused(samples, tmp_path):
    calls = []

    def stop_after_first_epoch():
        calls.append(1)
        return len(calls) > TINY.steps_per_epoch  # the first step of epoch 2

    config = replace(TINY, epochs=5)
    drain(iter_train(config, samples, tmp_path, stop=stop_after_first_epoch))
    saved, done = saved_run(tmp_path)
    assert (saved.epochs, done) == (5, 1)
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(SegQCError, match="1 epochs are done already"):
        drain(iter_train(replace(config, epochs=1), samples, tmp_path, resume=True))
    assert (tmp_path / "config.json").read_text() == before  # nothing rewritten
    reports, _ = drain(iter_train(replace(config, epochs=2), samples, tmp_path, resume=True))
    assert [r.epoch for r in reports if isinstance(r, EpochReport)] == [1]
    assert saved_run(tmp_path) == (replace(saved, epochs=2), 2)


def test_resume_needs_a_run(samples, tmp_path):
    with pytest.raises(SegQCError, match="no run to resume"):
        drain(iter_train(TINY, samples, tmp_path, resume=True))


def test_stop_mid_epoch_leaves_loadable_weights(samples, tmp_path):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 1  # one step, then stop

    reports, _ = drain(iter_train(replace(TINY, steps_per_epoch=5), samples, tmp_path, stop=stop))
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    assert len(epochs) == 1 and epochs[0].stopped
    weights, _ = load_weights(tmp_path / "last.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_binary_mode_and_no_validation(samples, tmp_path):
    config = replace(TINY, target_mode="binary", val_fraction=0.0, epochs=1)
    reports, _ = drain(iter_train(config, samples, tmp_path))
    (epoch,) = [r for r in reports if isinstance(r, EpochReport)]
    assert np.isnan(epoch.val_f1) and np.isfinite(epoch.train_loss)
    assert json.loads((tmp_path / "config.json").read_text())["model"]["classes"] == 1


def test_rgb_and_small_images(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.zeros((3, 40, 48), np.int32)
    labels[:, 10:20, 10:22] = 1
    labels[:, 25:35, 20:40] = 2
    images = (labels[..., None] > 0) * 200 + rng.integers(0, 30, (3, 40, 48, 3))
    samples = samples_from_arrays(images.astype(np.uint8), labels, name="rgb")
    reports, _ = drain(iter_train(replace(TINY, epochs=1, val_fraction=0.34), samples, tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["model"]["in_channels"] == 3
    assert isinstance(reports[-1], EpochReport)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"patch": 100}, "multiple of 32"),
        ({"precision": "int4"}, "precision must be one of"),
        ({"loss": "hinge"}, "unknown loss 'hinge'"),
        ({"optimizer": "lion"}, "unknown optimizer"),
        ({"device": "cuda:7"} if not torch.cuda.is_available() else {"patch": 7}, "CUDA|multiple"),
    ],
)
def test_bad_settings_give_clear_errors(samples, tmp_path, change, message):
    with pytest.raises(SegQCError, match=message):
        drain(iter_train(replace(TINY, **change), samples, tmp_path))


def test_device_and_precision_choice():
    cpu = pick_device("cpu")
    assert cpu.type == "cpu"
    assert autocast_dtype("auto", cpu) == torch.bfloat16
    assert autocast_dtype("fp32", cpu) is None
    with pytest.raises(SegQCError, match="unknown device"):
        pick_device("tpu9")


def test_no_validation_never_stops_early(samples, tmp_path):
    config = replace(
        TINY,
        val_fraction=0.0,
        epochs=3,
        patience=1,
        steps_per_epoch=1,
        schedule=ScheduleConfig("plateau", patience=0),
    )
    reports, _ = drain(iter_train(config, samples, tmp_path))
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    assert [r.epoch for r in epochs] == [0, 1, 2] and not any(r.stopped for r in epochs)
    assert {r.lr for r in epochs} == {TINY.lr}  # plateau never cut the rate without a metric


def test_warm_start_copies_what_fits(samples, tmp_path):
    drain(iter_train(TINY, samples, tmp_path / "first"))
    trained, _ = load_weights(tmp_path / "first" / "best.safetensors")
    binary = build_model(replace(TINY.model, classes=1))  # another head: all else fits
    copied, total = warm_start(binary, tmp_path / "first")
    own = binary.state_dict()
    assert copied == total - 2  # segmentation head weight and bias differ in shape
    assert torch.equal(own["encoder.conv1.weight"], trained["encoder.conv1.weight"])
    assert not torch.equal(
        own["segmentation_head.0.bias"][:1], trained["segmentation_head.0.bias"][:1]
    )
    # a run started from those weights begins where the first one ended
    config = replace(TINY, init=str(tmp_path / "first"), epochs=1, target_mode="binary")
    drain(iter_train(config, samples, tmp_path / "second"))
    saved = json.loads((tmp_path / "second" / "config.json").read_text())
    assert saved["init"] == str(tmp_path / "first")
    foreign = tmp_path / "foreign.safetensors"
    save_weights(foreign, {"x": torch.zeros(2)}, {})
    with pytest.raises(SegQCError, match="none of its weights fit"):
        warm_start(binary, foreign)
