"""The score table fits the dock: main columns without horizontal scrolling in 420 px, six
slice rows of a stack in view, the other columns behind a chooser, every column in the CSV."""

from __future__ import annotations

import csv

import numpy as np
from test_qc_widget import run_and_wait

from conftest import degrade
from napari_segqc._widgets.qc_widget import QCWidget
from napari_segqc._widgets.score_table import MAIN_COLUMNS
from napari_segqc.core.qc.report import CSV_COLUMNS

DOCK_WIDTH = 420


def _stack_widget(qtbot, make_napari_viewer, gt, n_slices):
    viewer = make_napari_viewer()
    gts = np.stack([gt] * n_slices)
    preds = np.stack([degrade(gt, seed=i) for i in range(n_slices)])
    viewer.add_labels(gts, name="gt")
    viewer.add_labels(preds, name="pred")
    widget = QCWidget(viewer)
    widget.gt_combo.value = viewer.layers["gt"]
    widget.pred_combo.value = viewer.layers["pred"]
    run_and_wait(qtbot, widget)
    widget.native.resize(DOCK_WIDTH, 900)
    widget.native.show()
    qtbot.waitExposed(widget.native)
    return widget


def test_main_columns_fit_a_420_px_dock(qtbot, make_napari_viewer, sample_pair):
    widget = _stack_widget(qtbot, make_napari_viewer, sample_pair[1][:64, :64], 12)
    table = widget.table
    assert widget.native.width() == DOCK_WIDTH  # the dock need not be wider
    shown = [key for c, key in enumerate(CSV_COLUMNS) if not table.isColumnHidden(c)]
    assert shown == list(MAIN_COLUMNS)
    assert {"merges", "splits", "tp", "fp", "fn", "f1"} <= set(shown)
    assert table.horizontalHeader().length() <= table.viewport().width()
    for col in range(table.columnCount()):  # no cell is elided: each is as wide as its text
        if not table.isColumnHidden(col):
            assert table.columnWidth(col) >= table.sizeHintForColumn(col)


def test_a_stack_shows_six_slice_rows(qtbot, make_napari_viewer, sample_pair):
    widget = _stack_widget(qtbot, make_napari_viewer, sample_pair[1][:64, :64], 12)
    table = widget.table
    assert table.rowCount() == 13
    last = 6  # the "all" row, then slices 0..5
    assert table.rowViewportPosition(last) + table.rowHeight(last) <= table.viewport().height()


def test_column_chooser_and_full_csv(qtbot, make_napari_viewer, sample_pair, tmp_path):
    widget = _stack_widget(qtbot, make_napari_viewer, sample_pair[1][:64, :64], 2)
    table = widget.table
    menu = table.column_menu()
    actions = {action.text(): action for action in menu.actions()}
    for label in ("mIoU", "PQ", "DSB", "Px IoU", "Px Dice"):
        assert not actions[label].isChecked()
    assert any(text.startswith("SSIM") for text in actions)
    actions["PQ"].trigger()
    assert not table.isColumnHidden(CSV_COLUMNS.index("pq"))
    actions["F1"].trigger()
    assert table.isColumnHidden(CSV_COLUMNS.index("f1"))
    widget.export_csv(str(tmp_path / "scores.csv"))
    with open(tmp_path / "scores.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_COLUMNS  # every column, whatever is shown
        assert len(list(reader)) == 3
