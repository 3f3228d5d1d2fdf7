"""Quality control after an input changed: small inputs rerun by themselves, big ones are
marked out of date; maps left from an earlier run never look current."""

from __future__ import annotations

import numpy as np
from test_qc_widget import run_and_wait, viewer_widget  # noqa: F401 - the fixture

from napari_segqc._widgets import qc_widget
from napari_segqc._widgets.layers import METADATA_KEY, STALE, map_name

ERROR = map_name("error", "pred", "gt")
IOU = map_name("object_iou", "pred", "gt")


def _ours(viewer):
    return [layer for layer in viewer.layers if METADATA_KEY in layer.metadata]


def test_small_inputs_rerun_after_re_decoding(qtbot, viewer_widget, sample_pair):  # noqa: F811
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    assert widget.table.rows[0]["f1"] < 1.0
    viewer.layers["pred"].data = sample_pair[1].copy()  # what the Segment dock does
    assert widget._timer.isActive() and not widget.stale  # debounced: nothing yet
    qtbot.waitUntil(lambda: widget.table.rows[0]["f1"] == 1.0, timeout=30_000)
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=30_000)
    assert set(np.unique(viewer.layers[ERROR].data)) <= {0, 1}
    assert widget.status.value.startswith("updated after the change")
    assert not any(layer.name.endswith(STALE) for layer in viewer.layers)


def test_painting_reruns(qtbot, viewer_widget, sample_pair):  # noqa: F811
    viewer, widget = viewer_widget
    gt = sample_pair[1]
    pred = viewer.layers["pred"]
    pred.data = gt.copy()
    run_and_wait(qtbot, widget)
    assert widget.table.rows[0]["fn"] == 0
    ys, xs = np.nonzero(gt == gt[gt > 0][0])
    pred.selected_label = 0
    viewer.layers.selection.active = pred
    pred.fill((ys[0], xs[0]), 0)  # erase one object with the fill tool
    assert widget._timer.isActive()
    qtbot.waitUntil(lambda: widget.table.rows[0]["fn"] == 1, timeout=30_000)
    assert viewer.layers.selection.active is pred  # an automatic run keeps the user's layer


def test_a_change_during_a_run_runs_once_more(qtbot, viewer_widget, sample_pair):  # noqa: F811
    viewer, widget = viewer_widget
    widget.run()
    assert widget.running
    viewer.layers["pred"].data = sample_pair[1].copy()  # the running job read the old data
    assert widget._pending
    qtbot.waitUntil(
        lambda: bool(widget.table.rows) and widget.table.rows[0]["f1"] == 1.0, timeout=30_000
    )
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=30_000)
    assert not widget._pending


def test_big_inputs_are_marked_out_of_date(qtbot, viewer_widget, sample_pair, monkeypatch):  # noqa: F811
    monkeypatch.setattr(qc_widget, "AUTO_RUN_MAX_PIXELS", 1000)
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    maps = _ours(viewer)
    viewer.layers["pred"].data = sample_pair[1].copy()
    assert not widget.running and not widget._timer.isActive()
    assert widget.stale and widget.table.stale
    assert widget.status.value == "out of date: the prediction changed — Run again"
    assert widget.run_button.text == "Run again"
    assert all(layer.name.endswith(STALE) for layer in maps)
    assert ERROR + STALE in viewer.layers and IOU + STALE in viewer.layers

    viewer.layers["gt"].data = sample_pair[1].copy()
    assert "the ground truth changed" in widget.status.value
    run_and_wait(qtbot, widget)
    assert not widget.stale and not widget.table.stale and widget.run_button.text == "Run"
    assert sorted(ly.name for ly in _ours(viewer)) == sorted([ERROR, IOU])
    assert widget.table.rows[0]["f1"] == 1.0


def test_unticked_maps_are_removed_on_rerun(qtbot, viewer_widget):  # noqa: F811
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    assert ERROR in viewer.layers and IOU in viewer.layers
    widget.show_maps.value = False
    run_and_wait(qtbot, widget)
    assert _ours(viewer) == []
    assert widget.table.rows  # the scores are there


def test_only_the_picked_inputs_are_watched(qtbot, viewer_widget, sample_pair):  # noqa: F811
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    gt, pred = viewer.layers["gt"], viewer.layers["pred"]
    assert widget._watch.layers == [pred, gt]
    viewer.layers[ERROR].data = np.zeros_like(sample_pair[1], np.uint8)  # a map we wrote
    assert not widget._timer.isActive() and not widget.stale

    other = viewer.add_labels(sample_pair[1].copy(), name="other")
    widget.pred_combo.value = other
    assert widget._watch.layers == [other, gt]
    pred.data = sample_pair[1].copy()  # no longer picked
    other.data = np.zeros_like(sample_pair[1])  # picked, but the table shows "pred"
    assert not widget._timer.isActive() and not widget.stale
