"""What the three docks share (`_widgets/base.py`, `_widgets/pickers.py`), in a real viewer:
pickers that survive renames, the wrapping status line, the scroll area, the window size."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication, QScrollArea

from napari_segqc._widgets.qc_widget import QCWidget
from napari_segqc._widgets.segment_widget import SegmentWidget
from napari_segqc._widgets.train_widget import TrainWidget

WIDGETS = {"Quality control": QCWidget, "Segment": SegmentWidget, "Train U-Net": TrainWidget}
LONG_PATH = "/data/" + "a_very_long_folder_name_without_any_spaces_" * 4 + "nuclei_prediction.tif"


def long_message() -> str:
    text = f"SegQC quality control failed: could not read {LONG_PATH} as a prediction; "
    text += "check that the file holds a labels image of the same shape as the ground truth "
    return (text * 2)[:300]


def add_layers(viewer, sample_pair):
    image, gt = sample_pair
    viewer.add_image(image, name="raw")
    viewer.add_labels(gt, name="gt")
    viewer.add_labels(gt.copy(), name="pred")
    return viewer


@pytest.fixture
def layers(make_napari_viewer, sample_pair):
    return add_layers(make_napari_viewer(), sample_pair)


def settle() -> None:
    for _ in range(3):
        QApplication.processEvents()


def test_renames_keep_the_qc_picks(layers):
    viewer = layers
    widget = QCWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Quality control")
    pred, gt = viewer.layers["pred"], viewer.layers["gt"]
    widget.pred_combo.value, widget.gt_combo.value = pred, gt
    changes = []
    widget.pred_combo.changed.connect(changes.append)
    pred.name = "prediction v2"
    gt.name = "manual annotation"
    assert widget.pred_combo.value is pred and widget.gt_combo.value is gt
    assert "prediction v2" in [ly.name for ly in widget.pred_combo.choices]
    assert widget.pred_combo.native.currentText() == "prediction v2"
    assert changes == []  # the pick never moved, not even for a moment
    viewer.layers["raw"].name = "raw v2"  # renaming another layer changes nothing either
    assert widget.pred_combo.value is pred and widget.gt_combo.value is gt


def test_renames_keep_the_segment_and_train_picks(layers):
    viewer = layers
    viewer.add_image(np.zeros((16, 16)), name="other image")
    segment, train = SegmentWidget(viewer), TrainWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    viewer.window.add_dock_widget(train, name="Train U-Net")
    other, pred = viewer.layers["other image"], viewer.layers["pred"]
    segment.image_combo.value = other  # not the first choice: a reset would pick "raw"
    train.image_combo.value, train.labels_combo.value = other, pred
    other.name, pred.name = "other image v2", "pred v2"
    assert segment.image_combo.value is other
    assert train.image_combo.value is other and train.labels_combo.value is pred
    assert segment.image_combo.native.currentText() == "other image v2"
    viewer.layers.move(3, 0)  # reordered
    assert segment.image_combo.value is other and train.labels_combo.value is pred
    viewer.layers.remove(other)  # a removed layer cannot stay picked
    assert segment.image_combo.value is viewer.layers["raw"]
    assert train.image_combo.value is viewer.layers["raw"] and train.labels_combo.value is pred


@pytest.mark.parametrize("name", list(WIDGETS))
def test_content_is_in_a_scroll_area(make_napari_viewer, name):
    viewer = make_napari_viewer()
    widget = WIDGETS[name](viewer)
    dock = viewer.window.add_dock_widget(widget, name=name)
    scrolls = dock.widget().findChildren(QScrollArea)
    scroll = next(s for s in scrolls if s.widget().isAncestorOf(widget.run_button.native))
    assert scroll.widget().isAncestorOf(widget.status.native)
    assert scroll.widget().isAncestorOf(widget.progress.native)
    assert dock.widget().minimumSizeHint().height() < 300  # the scroll area may shrink


def test_long_error_wraps_in_the_status_line_and_never_widens_the_dock(
    make_napari_viewer, sample_pair, errors
):
    viewer = add_layers(make_napari_viewer(show=True), sample_pair)  # shown: real geometry
    widget = QCWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name="Quality control")
    window = viewer.window._qt_window
    settle()
    before = (dock.width(), dock.minimumSizeHint().width(), dock.sizeHint().width())
    window_before = window.width()

    widget.pred_combo.value = widget.gt_combo.value = viewer.layers["gt"]
    widget.run()  # a real validation error: in the notification and in the status line
    assert "both prediction and ground truth" in errors[-1]
    assert widget.status.value == errors[-1] and widget.status.is_error

    message = long_message()
    assert len(message) == 300 and LONG_PATH[:60] in message
    widget.show_error(message)
    settle()
    assert errors[-1] == message and widget.status.value == message
    assert (dock.width(), dock.minimumSizeHint().width(), dock.sizeHint().width()) == before
    assert window.width() == window_before
    label = widget.status.native
    assert label.width() <= dock.width()
    assert label.height() >= 3 * label.fontMetrics().height()  # wrapped over several lines
    assert "\u200b" in label.text() and "\u200b" not in widget.status.value  # display only


def test_status_line_is_plain_text_and_cleared_by_the_next_status(make_napari_viewer, errors):
    widget = QCWidget(make_napari_viewer())
    widget.show_error("<b>not bold</b>")
    assert widget.status.is_error and widget.status.native.text().startswith("<b>")
    assert "bold" in errors[-1]
    widget.set_status("comparing...")
    assert widget.status.value == "comparing..." and not widget.status.is_error


def test_worker_error_reaches_the_status_line(qtbot, make_napari_viewer, errors):
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((8, 8), np.uint16), name="gt")  # smaller than the SSIM window
    viewer.add_labels(np.zeros((8, 8), np.uint16), name="pred")
    widget = QCWidget(viewer)
    widget.gt_combo.value, widget.pred_combo.value = viewer.layers["gt"], viewer.layers["pred"]
    widget.run()
    assert widget.status.value == "comparing..." and not widget.progress.native.isHidden()
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=30_000)
    assert len(errors) == 1 and "at least" in errors[0]
    assert widget.status.value == errors[0] and widget.status.is_error
    assert widget.progress.native.isHidden() and not widget.stop_button.enabled


def test_three_docks_fit_a_1600_by_1000_screen(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-segqc", "nuclei_dense")
    for name in ("Segment", "Train U-Net", "Quality control"):
        viewer.window.add_plugin_dock_widget("napari-segqc", name)
    window = viewer.window._qt_window
    docks = [viewer.window._wrapped_dock_widgets[n] for n in viewer.window._wrapped_dock_widgets]
    window.resize(1600, 1000)
    settle()
    assert len(docks) == 3 and all(d.isVisible() for d in docks)  # not tabified
    assert window.minimumSizeHint().width() <= 1600
    assert window.minimumSizeHint().height() <= 1000
    assert window.width() <= 1600 and window.height() <= 1000
    for dock in docks:  # each dock keeps a readable width
        assert dock.width() >= 250


def _ink_rows(widget) -> list[int]:
    """How many pixels of each row of ``widget``'s rendering differ from its corner pixel."""
    image = widget.grab().toImage()
    corner = image.pixelColor(0, 0).lightness()
    return [
        sum(abs(image.pixelColor(x, y).lightness() - corner) > 40 for x in range(image.width()))
        for y in range(image.height())
    ]


@pytest.mark.parametrize("kind", ["info", "error", "warning"])
def test_notifications_show_underscores(qtbot, make_napari_viewer, kind):
    """napari's collapsed notification clipped the lowest pixel rows: "nuclei_04" read
    "nuclei 04". What the notification widget renders has the underscores."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    viewer = make_napari_viewer(show=True)
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    settle()
    before = set(NapariQtNotification._instances)
    if kind == "warning":
        widget.on_warned(type("W", (), {"message": "________"})())
    else:
        getattr(widget, f"show_{kind}")("SegQC: ________")
    settle()
    (note,) = set(NapariQtNotification._instances) - before
    label = note.message
    assert label.text().endswith("________")  # the text as given: nothing escaped
    qtbot.waitUntil(lambda: note.geom_anim.state() != note.geom_anim.State.Running)
    margins = label.contentsMargins()
    assert label.height() - margins.top() - margins.bottom() >= label.fontMetrics().height()
    rows = _ink_rows(label)
    underscores = [y for y, n in enumerate(rows) if n >= 20]  # a long horizontal stroke
    assert underscores, rows
    note.close()
