"""The Segment and Quality control docks on multiscale layers: they compute on level 0 (the
full resolution) and give what the plain layer gives."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from conftest import degrade
from napari_segqc._widgets.qc_widget import QCWidget
from napari_segqc._widgets.segment_widget import FILE_CHOICE, SegmentWidget
from napari_segqc.core.models.registry import ModelConfig
from napari_segqc.core.qc.run import qc_report
from napari_segqc.core.train.config import TrainConfig
from napari_segqc.core.train.data import load_training_data
from napari_segqc.core.train.loop import iter_train


def pyramid(data: np.ndarray) -> list:
    """Level 0 as a lazy dask array, then halves (what an OME-Zarr reader gives napari)."""
    return [da.from_array(data, chunks=128), da.from_array(data[::2, ::2], chunks=128)]


def wait(qtbot, w, timeout=120_000):
    w.run()
    assert w._worker is not None, w.status.value
    qtbot.waitUntil(lambda: w.run_button.enabled, timeout=timeout)


def test_qc_dock_scores_a_multiscale_pair_on_level_0(qtbot, make_napari_viewer, sample_pair):
    viewer = make_napari_viewer()
    gt = sample_pair[1]
    pred = degrade(gt)
    viewer.add_labels(pyramid(gt), name="gt", multiscale=True)
    viewer.add_labels(pyramid(pred), name="pred", multiscale=True)
    w = QCWidget(viewer)
    viewer.window.add_dock_widget(w, name="QC")
    w.gt_combo.value, w.pred_combo.value = viewer.layers["gt"], viewer.layers["pred"]
    wait(qtbot, w)
    assert not w.status.is_error, w.status.value
    expected = qc_report(gt, pred)["objects"]["0.50"]["f1"]
    assert w.table.rows[0]["f1"] == pytest.approx(expected)
    assert viewer.layers["Error map [pred vs gt]"].data.shape == gt.shape


def test_segment_dock_segments_a_multiscale_image_at_full_resolution(
    qtbot, make_napari_viewer, sample_pair, sample_dir, tmp_path
):
    config = TrainConfig(
        model=ModelConfig(encoder="resnet18", encoder_depth=3, decoder_channels=(16, 8, 4)),
        epochs=1,
        steps_per_epoch=1,
        batch=1,
        patch=64,
        val_fraction=0.25,
    )
    for _ in iter_train(config, load_training_data(sample_dir), tmp_path / "run"):
        pass
    viewer = make_napari_viewer()
    image = sample_pair[0]
    viewer.add_image(pyramid(image), name="img", multiscale=True)
    w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(w, name="Segment")
    w.image_combo.value = viewer.layers["img"]
    w.model_combo.value = FILE_CHOICE
    w.model_path.value = tmp_path / "run"
    w.diameter.value = 20
    w.tile.value = 128
    w.overlap.value = 32
    wait(qtbot, w)
    assert not w.status.is_error, w.status.value
    assert viewer.layers["img labels"].data.shape == image.shape
