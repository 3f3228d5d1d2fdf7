"""The Train U-Net dock widget in a real napari viewer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qtpy.QtCore import QTimer

from napari_segqc._widgets.session import TRAINED_MODELS
from napari_segqc._widgets.train_widget import TrainWidget
from napari_segqc.core.models.weights import load_weights
from napari_segqc.core.train.loop import StepReport


@pytest.fixture
def widget(make_napari_viewer, sample_pair, tmp_path):
    viewer = make_napari_viewer()
    image, labels = sample_pair
    viewer.add_image(np.stack([image, image[::-1]]), name="img")
    viewer.add_labels(np.stack([labels, labels[::-1]]), name="gt")
    w = TrainWidget(viewer)
    viewer.window.add_dock_widget(w, name="Train U-Net")
    w.encoder.value = "resnet18"
    w.epochs.value = 2
    w.patch.value = 64
    w.batch.value = 2
    w.advanced.val_fraction.value = 0.5
    w.out_dir.value = tmp_path / "run"
    w.image_combo.value = viewer.layers["img"]
    w.labels_combo.value = viewer.layers["gt"]
    return w


def wait_done(qtbot, w, timeout=120_000):
    qtbot.waitUntil(lambda: w.start_button.enabled, timeout=timeout)


def test_trains_from_layers_with_live_curves_and_no_freeze(qtbot, widget, tmp_path, errors):
    widget.add_pair()
    assert "1 pair(s): img + gt" in widget.pairs_label.value
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    widget.start()
    assert not widget.start_button.enabled and widget.stop_button.enabled
    wait_done(qtbot, widget)
    timer.stop()
    assert not errors
    assert [r["epoch"] for r in widget.history] == [0, 1]
    x, y = widget.curves.lines["train_loss"].get_data()
    assert list(x) == [1, 2] and np.all(np.isfinite(y))  # the curve shows both epochs
    assert len(widget.curves.lines["val_f1"].get_xdata()) == 2
    assert widget.last_model == tmp_path / "run" / "best.safetensors"
    assert TRAINED_MODELS[-1] == widget.last_model and widget.last_model.is_file()
    assert len(ticks) > 10  # the event loop kept running while training
    assert widget.out_dir.value != tmp_path / "run"  # a fresh folder for the next run


def test_stop_leaves_a_loadable_checkpoint(qtbot, widget, tmp_path):
    widget.add_pair()
    widget.epochs.value = 50
    steps = []

    def stop_on_first_step(report):
        if isinstance(report, StepReport):
            steps.append(report)
            widget.stop()

    widget.start()  # the worker loads data first: connecting now sees every report
    widget._worker.yielded.connect(stop_on_first_step)
    wait_done(qtbot, widget)
    assert steps and len(widget.history) == 1 and widget.status.value.startswith("done")
    weights, meta = load_weights(tmp_path / "run" / "last.safetensors")
    assert meta["config"]["epochs"] == 50
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    widget.epochs.value = 3
    widget.resume.value = True  # resuming shows the run's plan, which can then be changed
    assert widget.epochs.value == 3  # the output folder moved on to a fresh one: no run there
    widget.out_dir.value = tmp_path / "run"
    assert widget.epochs.value == 50 and widget.status.value == "resume: 1 of 50 epochs done"


def test_folder_mode(qtbot, widget, sample_dir, errors):
    widget.source.value = "Folder"
    assert not widget.folder.native.isHidden() and widget.image_combo.native.isHidden()
    widget.folder.value = sample_dir
    widget.epochs.value = 1
    widget.advanced.val_fraction.value = 0.25
    widget.start()
    wait_done(qtbot, widget)
    assert not errors and len(widget.history) == 1


def test_input_errors_are_notifications(widget, errors, tmp_path):
    widget.start()
    assert "add at least one" in errors[-1] and widget.start_button.enabled
    viewer = widget.viewer
    viewer.add_labels(np.zeros((2, 10, 10), np.int32), name="small")
    widget.labels_combo.value = viewer.layers["small"]
    widget.add_pair()
    assert "same size" in errors[-1] and not widget._pairs
    widget.source.value = "Folder"
    widget.folder.value = tmp_path / "nowhere"
    widget.start()
    assert "does not exist" in errors[-1]


def test_worker_errors_are_notifications(qtbot, widget, errors):
    widget.add_pair()
    widget.encoder.value = "resnet18"
    widget.advanced.loss.value = "bce"
    viewer = widget.viewer
    viewer.add_image(np.zeros((2, 256, 256)), name="blank")
    viewer.add_labels(np.zeros((2, 256, 256), np.int32), name="empty")
    widget.clear_pairs()
    widget.image_combo.value = viewer.layers["blank"]
    widget.labels_combo.value = viewer.layers["empty"]
    widget.add_pair()
    widget.start()
    wait_done(qtbot, widget)
    assert errors and "masks are empty" in errors[-1]
    assert "failed" in widget.status.value
