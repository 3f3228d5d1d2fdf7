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
    assert widget.pairs_label.value == "1 pair:" and widget.pairs_list.item(0).text() == "img + gt"
    curves = widget.curves
    assert not any(ax.get_visible() for ax in curves.axes)  # no empty axes before an epoch
    assert (
        curves.placeholder.get_visible()
        and "after the first epoch" in curves.placeholder.get_text()
    )
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
    assert all(ax.get_visible() for ax in curves.axes) and not curves.placeholder.get_visible()
    curves.draw()
    lo, hi = curves.axes[2].get_xlim()
    shown = [t for t in curves.axes[2].get_xticks() if lo <= t <= hi]
    assert shown == [1, 2]  # whole epochs only
    assert widget.status.value.startswith("finished (2 epochs): best model")
    assert widget.out_dir.value == tmp_path / "run"  # the user's folder: never changed silently
    worker = widget._worker
    widget.start()  # it holds a run now: refused, with a free name proposed
    assert widget._worker is worker and widget.start_button.enabled  # nothing started
    assert widget.status.is_error and "already holds a run" in widget.status.value
    assert str(tmp_path / "run_2") in widget.status.value and "Resume" in widget.status.value
    assert widget.out_dir.value == tmp_path / "run"


def test_stop_says_where_it_stopped_and_leaves_a_checkpoint(qtbot, widget, tmp_path, monkeypatch):
    from napari_segqc._widgets import base

    notes = []
    monkeypatch.setattr(base, "show_info", notes.append)
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
    assert steps and len(widget.history) == 1
    assert widget.status.value.startswith("stopped at epoch 1 of 50: best model")
    assert "training finished" not in widget.status.value
    assert notes[-1].startswith("SegQC: training stopped at epoch 1 of 50;")
    weights, meta = load_weights(tmp_path / "run" / "last.safetensors")
    assert meta["config"]["epochs"] == 50
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert widget.out_dir.value == tmp_path / "run"  # kept: the run can be resumed
    widget.epochs.value = 3
    widget.resume.value = True  # resuming shows the run's plan, which can then be changed
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


def test_pairs_list_shows_every_pair_and_one_can_be_removed(widget):
    viewer = widget.viewer
    image, labels = viewer.layers["img"].data, viewer.layers["gt"].data
    for k in (2, 3):
        viewer.add_image(image[:, ::-1], name=f"img_{k}")
        viewer.add_labels(labels[:, ::-1], name=f"gt_{k}")
    for k in ("", "_2", "_3"):
        widget.image_combo.value = viewer.layers[f"img{k}"]
        widget.labels_combo.value = viewer.layers[f"gt{k}"]
        widget.add_pair()
    items = [widget.pairs_list.item(i).text() for i in range(widget.pairs_list.count())]
    assert items == ["img + gt", "img_2 + gt_2", "img_3 + gt_3"]
    assert widget.pairs_label.value == "3 pairs:" and not widget.pairs_list.isHidden()
    widget.pairs_list.setCurrentRow(1)
    widget.remove_pair_button.native.click()
    assert [(i.name, m.name) for i, m in widget._pairs] == [("img", "gt"), ("img_3", "gt_3")]
    assert widget.pairs_list.count() == 2 and widget.pairs_list.item(1).text() == "img_3 + gt_3"
    viewer.layers["img_3"].name = "img three"  # renamed: the list follows
    assert widget.pairs_list.item(1).text() == "img three + gt_3"
    viewer.layers.remove("gt")  # a layer gone: its pair too
    assert widget.pairs_list.count() == 1 and widget._pairs[0][1].name == "gt_3"
    widget.clear_pairs()
    assert widget.pairs_list.isHidden() and "no pairs yet" in widget.pairs_label.value
    assert not widget.remove_pair_button.enabled
