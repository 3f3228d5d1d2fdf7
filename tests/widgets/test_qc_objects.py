"""The per-object table of the Quality control dock: rows, camera, "Next error", sort, CSV."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from napari.utils.key_bindings import KeyBinding
from qtpy.QtCore import Qt
from test_qc_widget import run_and_wait

from conftest import degrade
from napari_segqc._widgets.object_table import COLUMNS, NEXT_ERROR_KEY
from napari_segqc._widgets.qc_widget import QCWidget
from napari_segqc.core.qc.objects import OBJECT_COLUMNS, error_rows, object_rows


def _pair_viewer(make_napari_viewer, gt, pred, **placement):
    viewer = make_napari_viewer()
    viewer.add_labels(gt, name="gt", **placement)
    viewer.add_labels(pred, name="pred", **placement)
    widget = QCWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Quality control")
    widget.gt_combo.value = viewer.layers["gt"]
    widget.pred_combo.value = viewer.layers["pred"]
    return viewer, widget


def _camera(viewer):
    return getattr(viewer, "scene", viewer).camera


def _key(row):
    return (row["side"], row["id"], row["class"], row["area"], row["matched_id"])


def test_objects_of_the_image_with_their_classes(qtbot, make_napari_viewer, sample_pair):
    gt = sample_pair[1]
    _viewer, widget = _pair_viewer(make_napari_viewer, gt, degrade(gt))
    run_and_wait(qtbot, widget)
    table = widget.objects.table
    expected = object_rows(gt, degrade(gt), threshold=0.5)
    assert [_key(r) for r in table.rows] == [_key(r) for r in expected]
    assert table.rowCount() == len(expected)
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["Side", "Id", "Class", "Area", "Match", "IoU"]
    shown = {table.item(r, 2).text() for r in range(table.rowCount())}
    assert {"TP", "FN", "FP"} <= shown
    assert widget.objects.info.text().startswith(
        f"{sum(r['side'] == 'gt' for r in expected)} ground-truth"
    )


def test_clicking_a_row_centres_and_zooms_on_the_object(qtbot, make_napari_viewer, sample_pair):
    gt = sample_pair[1]
    placement = {"scale": (0.5, 0.5), "translate": (100, -20)}
    viewer, widget = _pair_viewer(make_napari_viewer, gt, degrade(gt), **placement)
    run_and_wait(qtbot, widget)
    viewer.reset_view()
    zoom_before = _camera(viewer).zoom
    table = widget.objects.table
    row = next(r for r in range(table.rowCount()) if table.object_at(r)["area"] > 50)
    obj = table.object_at(row)
    table.cellClicked.emit(row, 0)
    cy = 100 + 0.5 * (obj["min_y"] + obj["max_y"]) / 2
    cx = -20 + 0.5 * (obj["min_x"] + obj["max_x"]) / 2
    assert _camera(viewer).center[-2:] == pytest.approx((cy, cx))
    assert _camera(viewer).zoom > 2 * zoom_before  # the object, not the whole image


def test_next_error_walks_the_errors_and_wraps(qtbot, make_napari_viewer, sample_pair):
    gt = sample_pair[1]
    viewer, widget = _pair_viewer(make_napari_viewer, gt, degrade(gt))
    run_and_wait(qtbot, widget)
    panel = widget.objects
    errors = error_rows(panel.table.rows)
    assert len(errors) >= 3 and panel.next_button.isEnabled()
    seen = []
    for _ in range(len(errors) + 1):
        panel.next_button.click()
        selected = panel.table.selectedItems()[0].row()
        seen.append(panel.table.object_at(selected))
    assert seen[:-1] == errors and seen[-1] is errors[0]  # one by one, then wraps around
    first = errors[0]
    centre = ((first["min_y"] + first["max_y"]) / 2, (first["min_x"] + first["max_x"]) / 2)
    assert _camera(viewer).center[-2:] == pytest.approx(centre)
    assert f"Error 1 of {len(errors)}" in panel.info.text()

    # the same from the keyboard: the key is bound on the viewer
    callback = viewer.keymap[KeyBinding.from_str(NEXT_ERROR_KEY.upper())]
    callback(viewer)
    assert panel.table.object_at(panel.table.selectedItems()[0].row()) is errors[1]


def test_sorting_is_numeric(qtbot, make_napari_viewer, sample_pair):
    gt = sample_pair[1]
    _viewer, widget = _pair_viewer(make_napari_viewer, gt, degrade(gt))
    run_and_wait(qtbot, widget)
    table = widget.objects.table
    area = [key for key, _, _ in COLUMNS].index("area")
    table.sortItems(area, Qt.SortOrder.DescendingOrder)
    areas = [int(table.item(r, area).text()) for r in range(table.rowCount())]
    assert areas == sorted(areas, reverse=True) and len(set(map(len, map(str, areas)))) > 1
    widget.objects.next_button.click()  # selection still finds the object wherever it sits
    obj = table.object_at(table.selectedItems()[0].row())
    assert obj is error_rows(table.rows)[0]


def test_export_objects_csv(qtbot, make_napari_viewer, sample_pair, tmp_path, errors):
    gt = sample_pair[1]
    _viewer, widget = _pair_viewer(make_napari_viewer, gt, degrade(gt))
    widget.objects.export_csv(str(tmp_path / "none.csv"))
    assert errors and not (tmp_path / "none.csv").exists()
    run_and_wait(qtbot, widget)
    widget.objects.export_csv(str(tmp_path / "objects.csv"))
    with open(tmp_path / "objects.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(OBJECT_COLUMNS)
    assert len(rows) == widget.objects.table.rowCount()
    assert [(r["side"], int(r["id"])) for r in rows] == [
        (r["side"], r["id"]) for r in widget.objects.table.rows
    ]


def test_stack_objects_follow_the_slice(qtbot, make_napari_viewer, sample_pair):
    gt = sample_pair[1][:128, :128]
    gts = np.stack([gt, gt, gt])
    preds = np.stack([gt, degrade(gt), np.zeros_like(gt)])
    viewer, widget = _pair_viewer(make_napari_viewer, gts, preds)
    viewer.dims.set_current_step(0, 0)
    run_and_wait(qtbot, widget)
    panel = widget.objects
    assert {r["class"] for r in panel.table.rows} == {"TP"}
    assert not panel.next_button.isEnabled()  # slice 0: no errors

    viewer.dims.set_current_step(0, 2)
    qtbot.waitUntil(lambda: panel._index == (2,), timeout=10_000)
    assert {r["class"] for r in panel.table.rows} == {"FN"}
    assert panel.info.text().startswith("Slice 2:")
    panel.next_button.click()
    assert viewer.dims.current_step[0] == 2
    obj = panel.table.object_at(panel.table.selectedItems()[0].row())
    assert obj["class"] == "FN"
