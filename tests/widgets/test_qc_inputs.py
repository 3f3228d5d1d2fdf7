"""A Labels layer that holds a grey-value image: the dock says so and names the fix."""

from __future__ import annotations

import numpy as np
from test_qc_widget import run_and_wait

from napari_segqc._widgets import base
from napari_segqc._widgets.qc_widget import QCWidget

FIX = "convert it to an Image layer or pick the raw image as an Image layer"


def test_labels_that_look_like_an_image_are_flagged(
    qtbot, make_napari_viewer, sample_pair, monkeypatch
):
    warnings: list[str] = []
    monkeypatch.setattr(base, "show_warning", warnings.append)
    raw, gt = sample_pair
    viewer = make_napari_viewer()
    viewer.add_labels(gt, name="nuclei_gt")
    image = viewer.add_image(raw, name="nuclei_02")
    layer = viewer.layers.pop(viewer.layers.index(image))
    viewer.add_labels(layer.data.astype(np.uint16), name="nuclei_02")  # "Convert to labels"
    widget = QCWidget(viewer)
    widget.gt_combo.value = viewer.layers["nuclei_gt"]
    widget.pred_combo.value = viewer.layers["nuclei_02"]
    assert "'nuclei_02' is a Labels layer but looks like a grey-value image" in widget.status.value
    assert FIX in widget.status.value and not widget.status.is_error
    assert not warnings  # the notification comes with Run

    run_and_wait(qtbot, widget)
    assert len(warnings) == 1
    assert "'nuclei_02'" in warnings[0] and FIX in warnings[0]  # the name as it is
    assert FIX in widget.status.value  # still there beside the scores
    assert widget.report is not None  # a warning, not a refusal


def test_real_labels_are_not_flagged(qtbot, make_napari_viewer, sample_pair, monkeypatch):
    warnings: list[str] = []
    monkeypatch.setattr(base, "show_warning", warnings.append)
    viewer = make_napari_viewer()
    viewer.add_labels(sample_pair[1], name="gt")
    viewer.add_labels(sample_pair[1], name="pred")
    widget = QCWidget(viewer)
    assert widget.status.value == ""
    run_and_wait(qtbot, widget)
    assert not warnings and "grey-value" not in widget.status.value
