"""The Quality control dock widget in a real napari viewer."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from napari.layers import Image, Labels
from qtpy.QtCore import QTimer

from conftest import degrade
from napari_segqc._widgets import qc_widget as qc_module
from napari_segqc._widgets.layers import METADATA_KEY, map_name
from napari_segqc._widgets.qc_widget import QCWidget
from napari_segqc.core.qc import qc_report

MAP_TYPES = {"error": Labels, "object_iou": Image, "ssim": Image, "rse": Image}


@pytest.fixture
def errors(monkeypatch):
    """Messages the widget sent to show_error."""
    shown: list[str] = []
    monkeypatch.setattr(qc_module, "show_error", shown.append)
    return shown


@pytest.fixture
def viewer_widget(make_napari_viewer, sample_pair):
    viewer = make_napari_viewer()
    _, gt = sample_pair
    viewer.add_labels(gt, name="gt")
    viewer.add_labels(degrade(gt), name="pred")
    widget = QCWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Quality control")
    widget.gt_combo.value = viewer.layers["gt"]
    widget.pred_combo.value = viewer.layers["pred"]
    return viewer, widget


def run_and_wait(qtbot, widget, timeout=30_000):
    """Run and wait until the worker's `finished` handler re-enabled Run (state, not a signal:
    a fast worker may finish before a signal blocker could be set up)."""
    widget.run()
    assert widget._worker is not None and not widget.run_button.enabled
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=timeout)


def test_run_adds_named_maps_and_scores(qtbot, viewer_widget, sample_pair, errors):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    assert not errors
    for kind, layer_type in MAP_TYPES.items():
        layer = viewer.layers[map_name(kind, "pred", "gt")]
        assert isinstance(layer, layer_type)
        assert layer.metadata[METADATA_KEY] == kind
        assert layer.data.shape == sample_pair[1].shape
    assert viewer.layers["SSIM map [pred vs gt]"].name == "SSIM map [pred vs gt]"
    error = viewer.layers["Error map [pred vs gt]"].data
    assert set(np.unique(error)) <= set(range(6)) and {1, 3, 5} <= set(np.unique(error))
    expected = qc_report(sample_pair[1], degrade(sample_pair[1]))
    rows = widget.table.rows
    assert len(rows) == 1 and rows[0]["name"] == "image"
    assert rows[0]["f1"] == pytest.approx(expected["objects"]["0.50"]["f1"])
    assert widget.table.item(0, 1).text() == f"{expected['objects']['0.50']['f1']:.3f}"
    assert viewer.layers.selection.active.name == "Error map [pred vs gt]"


def test_rerun_replaces_its_layers(qtbot, viewer_widget, sample_pair):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    n_layers = len(viewer.layers)
    first = viewer.layers["Error map [pred vs gt]"]
    viewer.layers["pred"].data = sample_pair[1].copy()  # now a perfect prediction
    run_and_wait(qtbot, widget)
    assert len(viewer.layers) == n_layers
    assert viewer.layers["Error map [pred vs gt]"] is first
    assert set(np.unique(first.data)) <= {0, 1}
    assert widget.table.rows[0]["f1"] == 1.0


def test_foreign_layer_with_the_same_name_is_kept(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    mine = viewer.add_image(np.zeros((256, 256)), name="SSIM map [pred vs gt]")
    run_and_wait(qtbot, widget)
    assert viewer.layers["SSIM map [pred vs gt]"] is mine
    assert METADATA_KEY not in mine.metadata
    assert "SSIM map [pred vs gt] (SegQC)" in viewer.layers


def test_shape_mismatch_notifies_and_runs_nothing(viewer_widget, errors):
    viewer, widget = viewer_widget
    viewer.add_labels(np.zeros((100, 120), np.uint16), name="small")
    widget.pred_combo.value = viewer.layers["small"]
    widget.run()
    assert widget._worker is None
    assert len(errors) == 1 and "shape" in errors[0] and "small" in errors[0]


def test_same_layer_twice_notifies(viewer_widget, errors):
    viewer, widget = viewer_widget
    widget.pred_combo.value = viewer.layers["gt"]
    widget.run()
    assert widget._worker is None
    assert "both prediction and ground truth" in errors[0]


def test_pickers_list_only_images_and_labels(viewer_widget):
    viewer, widget = viewer_widget
    viewer.add_points(np.zeros((2, 2)), name="points")
    viewer.add_image(np.zeros((256, 256)), name="prob")
    names = [c for c, _ in widget._layer_choices()]
    assert "prob" in names and "points" not in names
    assert "prob" in [w.name for w in widget.pred_combo.choices]


def test_stack_table_and_slice_jump(qtbot, make_napari_viewer, sample_pair):
    viewer = make_napari_viewer()
    _, gt = sample_pair
    gts = np.stack([gt, gt, gt])
    preds = np.stack([gt, degrade(gt), np.zeros_like(gt)])
    viewer.add_labels(gts, name="gt")
    viewer.add_labels(preds, name="pred")
    widget = QCWidget(viewer)
    widget.gt_combo.value = viewer.layers["gt"]
    widget.pred_combo.value = viewer.layers["pred"]
    run_and_wait(qtbot, widget)
    rows = widget.table.rows
    assert [r["name"] for r in rows] == ["all", "0", "1", "2"]
    assert rows[1]["f1"] == 1.0 and rows[3]["f1"] == 0.0
    assert rows[0]["tp"] == sum(r["tp"] for r in rows[1:])
    viewer.dims.set_current_step(0, 0)
    widget.table.cellClicked.emit(3, 0)  # the row of slice 2
    assert viewer.dims.current_step[0] == 2
    assert viewer.layers["Error map [pred vs gt]"].data.shape == gts.shape


def test_probability_image_against_labels(qtbot, make_napari_viewer, sample_pair, errors):
    viewer = make_napari_viewer()
    _, gt = sample_pair
    viewer.add_labels(gt, name="gt")
    viewer.add_image((gt > 0).astype(np.float32) * 0.8 + 0.1, name="prob")
    widget = QCWidget(viewer)
    widget.gt_combo.value = viewer.layers["gt"]
    widget.pred_combo.value = viewer.layers["prob"]
    run_and_wait(qtbot, widget)
    assert not errors
    assert widget.report["pixel"]["iou"] == 1.0
    assert "RSE map [prob vs gt]" in viewer.layers


def test_errors_in_the_worker_become_notifications(qtbot, make_napari_viewer, errors):
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((8, 8), np.uint16), name="gt")  # smaller than the SSIM window
    viewer.add_labels(np.zeros((8, 8), np.uint16), name="pred")
    widget = QCWidget(viewer)
    widget.gt_combo.value = viewer.layers["gt"]
    widget.pred_combo.value = viewer.layers["pred"]
    run_and_wait(qtbot, widget)
    assert len(errors) == 1 and "at least" in errors[0]
    assert widget.run_button.enabled and not widget.stop_button.enabled


def test_export_csv(qtbot, viewer_widget, tmp_path, errors):
    _, widget = viewer_widget
    widget.export_csv(str(tmp_path / "none.csv"))
    assert errors and not (tmp_path / "none.csv").exists()  # nothing to export yet
    run_and_wait(qtbot, widget)
    widget.export_csv(str(tmp_path / "scores.csv"))
    with open(tmp_path / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["name"] == "image"
    assert float(rows[0]["f1"]) == pytest.approx(widget.table.rows[0]["f1"])


def test_stop_and_no_freeze(qtbot, make_napari_viewer, sample_pair):
    """A long stack: the GUI thread keeps ticking, and Stop ends the run without layers."""
    viewer = make_napari_viewer()
    _, gt = sample_pair
    big = np.tile(gt, (40, 4, 4))  # 40 slices of 1024 x 1024
    viewer.add_labels(big, name="gt")
    viewer.add_labels(big, name="pred")
    widget = QCWidget(viewer)
    widget.gt_combo.value = viewer.layers["gt"]
    widget.pred_combo.value = viewer.layers["pred"]
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    widget.run()
    qtbot.waitUntil(lambda: widget.progress.value >= 2, timeout=60_000)
    assert len(ticks) >= 5  # the event loop ran while slices were computed
    assert widget.stop_button.enabled
    widget.stop()
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=60_000)
    timer.stop()
    assert widget.progress.value < 40
    assert "Error map [pred vs gt]" not in viewer.layers
    assert widget.run_button.enabled
