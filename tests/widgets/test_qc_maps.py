"""Maps you can read: legend with merges and splits, colour bars, SSIM's real range, grey-value
maps only on request for Labels vs Labels, inputs dimmed under the error map."""

from __future__ import annotations

import numpy as np
import pytest
from test_qc_widget import run_and_wait, viewer_widget  # noqa: F401 - the fixture

from napari_segqc._widgets.layers import DIM_OPACITY, map_name
from napari_segqc._widgets.map_legend import nobreak
from napari_segqc._widgets.qc_widget import QCWidget
from napari_segqc._widgets.score_table import GREY_MARK
from napari_segqc.core.qc.pixel import ERROR_CLASSES, ERROR_COLORS
from napari_segqc.core.qc.report import CSV_COLUMNS


def test_legend_and_table_show_merges_and_splits(qtbot, viewer_widget):  # noqa: F811
    _viewer, widget = viewer_widget
    legend = widget.legend.value
    classes = [name for value, name in ERROR_CLASSES.items() if value]
    assert len(classes) == 7 and {"merge", "split"} <= set(classes)
    for value, name in ERROR_CLASSES.items():
        if value:
            assert nobreak(name) in legend and ERROR_COLORS[value][:7] in legend
    assert legend.count("<tr>") >= 4  # two columns: seven classes in four rows
    # it wraps to the dock instead of widening it
    assert widget.legend.native.minimumSizeHint().width() <= 420
    run_and_wait(qtbot, widget)
    table = widget.table
    for key, label in (("merges", "Mrg"), ("splits", "Spl")):
        col = CSV_COLUMNS.index(key)
        assert table.horizontalHeaderItem(col).text() == label
        assert not table.isColumnHidden(col)
        assert table.item(0, col).text() == str(table.rows[0][key])


def _grey_pair(make_napari_viewer, sample_pair):
    viewer = make_napari_viewer()
    raw = sample_pair[0].astype(np.float32)
    viewer.add_image(raw, name="raw")
    inverted = raw.copy()
    inverted[:, 160:] = raw.max() - raw[:, 160:]  # partly anti-correlated: SSIM < 0 there
    viewer.add_image(inverted, name="inverted")
    widget = QCWidget(viewer)
    widget.gt_combo.value = viewer.layers["raw"]
    widget.pred_combo.value = viewer.layers["inverted"]
    return viewer, widget


def test_ssim_map_keeps_its_real_range(qtbot, make_napari_viewer, sample_pair, errors):
    viewer, widget = _grey_pair(make_napari_viewer, sample_pair)
    assert widget.grey_maps.value  # Image inputs: SSIM and RSE maps on by themselves
    run_and_wait(qtbot, widget)
    assert not errors
    ssim = viewer.layers[map_name("ssim", "inverted", "raw")]
    assert tuple(ssim.contrast_limits) == (-1.0, 1.0)
    assert float(np.min(ssim.data)) < 0  # negative values kept, not clipped
    low, mid, high = ssim.colormap.map(np.array([0.0, 0.5, 1.0]))
    assert low[:3].max() > 0.5 and mid[:3].min() > 0.8  # -1 is pink, not black; 0 white
    assert high[1] > high[0] and high[1] > high[2]  # +1 (same) is green
    for kind in ("object_iou", "ssim", "rse"):
        layer = viewer.layers[map_name(kind, "inverted", "raw")]
        assert layer.colorbar.visible  # napari draws it while the layer is visible
    assert nobreak("SSIM map") in widget.legend.value and nobreak("RSE map") in widget.legend.value


def test_grey_value_maps_only_on_request_for_labels(qtbot, viewer_widget):  # noqa: F811
    viewer, widget = viewer_widget
    assert not widget.grey_maps.value
    assert "for grey-value images" in widget.grey_maps.text
    assert nobreak("SSIM map") not in widget.legend.value
    run_and_wait(qtbot, widget)
    names = {layer.name for layer in viewer.layers}
    assert map_name("ssim", "pred", "gt") not in names
    assert map_name("rse", "pred", "gt") not in names
    for key in ("ssim", "nrmse", "psnr"):
        col = CSV_COLUMNS.index(key)
        header = widget.table.horizontalHeaderItem(col)
        assert header.text().endswith(GREY_MARK) and "binary foregrounds" in header.toolTip()

    widget.grey_maps.value = True  # ticked by the user: still works
    run_and_wait(qtbot, widget)
    assert map_name("ssim", "pred", "gt") in viewer.layers
    assert map_name("rse", "pred", "gt") in viewer.layers
    widget.grey_maps.value = False
    run_and_wait(qtbot, widget)
    assert map_name("ssim", "pred", "gt") not in viewer.layers  # not left looking current


def test_error_map_dims_the_input_labels(qtbot, viewer_widget):  # noqa: F811
    viewer, widget = viewer_widget
    gt, pred = viewer.layers["gt"], viewer.layers["pred"]
    gt.opacity, pred.opacity = 0.7, 0.6
    run_and_wait(qtbot, widget)
    error = viewer.layers[map_name("error", "pred", "gt")]
    assert error.visible
    assert gt.opacity == pytest.approx(DIM_OPACITY) and pred.opacity == pytest.approx(DIM_OPACITY)
    error.visible = False
    assert gt.opacity == pytest.approx(0.7) and pred.opacity == pytest.approx(0.6)
    error.visible = True
    assert gt.opacity == pytest.approx(DIM_OPACITY)
