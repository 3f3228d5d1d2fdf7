"""The Quality control dock widget in a real napari viewer."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from napari.layers import Image, Labels
from napari.utils.colormaps.standardize_color import transform_color
from qtpy.QtCore import QTimer

from conftest import degrade
from napari_segqc._widgets.layers import METADATA_KEY, map_name
from napari_segqc._widgets.qc_widget import QCWidget
from napari_segqc.core.qc.pixel import ERROR_CLASSES, ERROR_COLORS
from napari_segqc.core.qc.run import qc_report

MAP_TYPES = {"error": Labels, "object_iou": Image, "ssim": Image, "rse": Image}


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
        if kind in ("ssim", "rse"):  # grey-value maps: off for Labels vs Labels
            assert map_name(kind, "pred", "gt") not in viewer.layers
            continue
        layer = viewer.layers[map_name(kind, "pred", "gt")]
        assert isinstance(layer, layer_type)
        assert layer.metadata[METADATA_KEY] == kind
        assert layer.data.shape == sample_pair[1].shape
    error = viewer.layers["Error map [pred vs gt]"].data
    assert set(np.unique(error)) <= set(range(8)) and {1, 3, 5} <= set(np.unique(error))
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
    mine = viewer.add_image(np.zeros((256, 256)), name="Object IoU [pred vs gt]")
    run_and_wait(qtbot, widget)
    assert viewer.layers["Object IoU [pred vs gt]"] is mine
    assert METADATA_KEY not in mine.metadata
    ours = viewer.layers["Object IoU [pred vs gt] (SegQC)"]
    n_layers = len(viewer.layers)
    run_and_wait(qtbot, widget)  # a re-run updates the suffixed layer, adds nothing
    assert len(viewer.layers) == n_layers
    assert viewer.layers["Object IoU [pred vs gt] (SegQC)"] is ours


def test_renamed_map_layer_is_never_touched(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    kept = viewer.layers["Error map [pred vs gt]"]
    kept.name = "my error map"
    data = kept.data.copy()
    run_and_wait(qtbot, widget)
    assert viewer.layers["my error map"] is kept and np.array_equal(kept.data, data)
    assert viewer.layers["Error map [pred vs gt]"] is not kept


def test_rerun_on_inputs_of_another_shape_replaces_the_maps(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    n_layers = len(viewer.layers)
    for name in ("gt", "pred"):
        viewer.layers[name].data = viewer.layers[name].data[:128, :100].copy()
    run_and_wait(qtbot, widget)
    assert len(viewer.layers) == n_layers
    assert viewer.layers["Object IoU [pred vs gt]"].data.shape == (128, 100)


def test_error_map_colours_and_legend(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    layer = viewer.layers["Error map [pred vs gt]"]
    for value, colour in ERROR_COLORS.items():
        assert np.allclose(layer.colormap.map(value), transform_color(colour)[0])
    legend = widget.legend.value
    for value, name in ERROR_CLASSES.items():
        if value:  # background has no legend entry
            assert name.replace(" ", "&nbsp;").replace("-", "&#8209;") in legend
            assert ERROR_COLORS[value][:7] in legend
    iou = viewer.layers["Object IoU [pred vs gt]"]
    assert tuple(iou.contrast_limits) == (0.0, 1.0)
    assert np.isnan(iou.data[sample_background(viewer)]).all()


def sample_background(viewer):
    return viewer.layers["gt"].data == 0


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
    for combo in (widget.pred_combo, widget.gt_combo):
        names = [layer.name for layer in combo.choices]
        assert "prob" in names and "points" not in names


def test_pickers_follow_renames_and_pick_defaults(make_napari_viewer, sample_pair):
    viewer = make_napari_viewer()
    gt = sample_pair[1]
    viewer.add_image(sample_pair[0], name="raw")
    viewer.add_labels(gt, name="nuclei_GT")
    viewer.add_labels(gt, name="stardist")
    widget = QCWidget(viewer)
    assert widget.gt_combo.value.name == "nuclei_GT"
    assert widget.pred_combo.value.name == "stardist"
    viewer.layers["raw"].name = "raw renamed"  # a layer that existed before the widget
    assert "raw renamed" in [ly.name for ly in widget.gt_combo.choices]
    viewer.add_labels(gt, name="cellpose").name = "cellpose v2"  # added after the widget
    assert "cellpose v2" in [ly.name for ly in widget.pred_combo.choices]
    viewer.layers.remove("cellpose v2")
    assert "cellpose v2" not in [ly.name for ly in widget.pred_combo.choices]


def test_layers_added_after_the_widget_get_defaults(qtbot, make_napari_viewer, sample_pair):
    viewer = make_napari_viewer()
    widget = QCWidget(viewer)
    assert widget.pred_combo.value is None
    viewer.add_labels(sample_pair[1], name="ground truth")
    viewer.add_labels(sample_pair[1], name="prediction")
    assert widget.gt_combo.value.name == "ground truth"
    assert widget.pred_combo.value.name == "prediction"

    widget.run()
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=30_000)
    viewer.layers.remove("prediction")  # the picks are redone, never with a map layer
    assert widget.gt_combo.value.name == "ground truth"
    assert METADATA_KEY not in (widget.pred_combo.value.metadata or {})


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
    widget.table.cellClicked.emit(0, 0)  # the "all" row moves nothing
    assert viewer.dims.current_step[0] == 2
    assert viewer.layers["Error map [pred vs gt]"].data.shape == gts.shape
    assert widget.table.item(0, 0).font().bold()


def test_slice_jump_with_z_spacing(qtbot, make_napari_viewer, sample_pair):
    """A stack with scale and translate on its first axis: the click lands on its slice."""
    viewer = make_napari_viewer()
    gt = sample_pair[1][:64, :64]
    gts = np.stack([gt] * 4)
    placement = {"scale": (2.5, 1, 1), "translate": (10, 0, 0)}
    viewer.add_labels(gts, name="gt", **placement)
    viewer.add_labels(gts, name="pred", **placement)
    widget = QCWidget(viewer)
    widget.gt_combo.value = viewer.layers["gt"]
    widget.pred_combo.value = viewer.layers["pred"]
    run_and_wait(qtbot, widget)
    widget.table.cellClicked.emit(4, 0)  # slice 3
    assert viewer.dims.point[0] == pytest.approx(10 + 3 * 2.5)
    assert viewer.layers["gt"].world_to_data(viewer.dims.point)[0] == pytest.approx(3)
    error = viewer.layers["Error map [pred vs gt]"]
    assert tuple(error.scale) == (2.5, 1, 1) and tuple(error.translate) == (10, 0, 0)


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


def test_rgb_image_layer_is_compared_as_grey_values(qtbot, make_napari_viewer, sample_pair, errors):
    viewer = make_napari_viewer()
    _, gt = sample_pair
    rgb = np.repeat(((gt > 0) * 200 + 20).astype(np.uint8)[..., None], 3, axis=-1)
    viewer.add_labels(gt, name="gt")
    viewer.add_image(rgb, name="rgb", rgb=True)
    widget = QCWidget(viewer)
    widget.gt_combo.value = viewer.layers["gt"]
    widget.pred_combo.value = viewer.layers["rgb"]
    run_and_wait(qtbot, widget)
    assert not errors
    assert widget.report["pixel"]["iou"] == 1.0
    assert viewer.layers["Error map [rgb vs gt]"].data.shape == gt.shape


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
    assert widget.report is None and widget.table.rowCount() == 0
    assert widget.run_button.enabled and not widget.stop_button.enabled
