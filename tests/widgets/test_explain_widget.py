"""The Explain dock (attribution, filters, landscape) and the Train dock's LR finder in a real
napari viewer, with a tiny model trained for the test."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_segqc._widgets.explain_attribution import OBJECT, REGION
from napari_segqc._widgets.explain_widget import FILE_CHOICE, ExplainWidget
from napari_segqc._widgets.layers import EXPLAIN_METADATA_KEY
from napari_segqc.core.models.registry import ModelConfig
from napari_segqc.core.train.config import TrainConfig
from napari_segqc.core.train.data import load_training_data
from napari_segqc.core.train.loop import iter_train

CROP = (slice(0, 160), slice(0, 192))


@pytest.fixture(scope="module")
def run_dir(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "run"
    config = TrainConfig(
        model=ModelConfig(encoder="resnet18", encoder_depth=3, decoder_channels=(32, 16, 8)),
        epochs=1,
        steps_per_epoch=2,
        batch=2,
        patch=64,
        val_fraction=0.25,
    )
    for _ in iter_train(config, load_training_data(sample_dir), out):
        pass
    return out


@pytest.fixture
def dock(make_napari_viewer, sample_pair, run_dir):
    viewer = make_napari_viewer()
    image, labels = sample_pair
    viewer.add_image(image[CROP], name="img")
    viewer.add_labels(labels[CROP], name="gt")
    w = ExplainWidget(viewer)
    viewer.window.add_dock_widget(w, name="Explain")
    w.model_combo.value = FILE_CHOICE
    w.model_path.value = run_dir
    return w


def run_and_wait(qtbot, w, timeout=120_000):
    w.run()
    assert w._worker is not None and not w.run_button.enabled, w.status.value
    qtbot.waitUntil(lambda: w.run_button.enabled, timeout=timeout)


def test_region_attribution_is_a_diverging_layer_aligned_with_the_image(qtbot, dock, errors):
    viewer = dock.viewer
    shapes = viewer.add_shapes([[[40, 60], [40, 100], [80, 100], [80, 60]]], name="box")
    panel = dock.attribution
    panel.image_combo.value = viewer.layers["img"]
    panel.shapes_combo.value = shapes
    panel.steps.value = 8
    assert panel.target(viewer.layers["img"], (160, 192)).region == (40, 60, 80, 100)
    run_and_wait(qtbot, dock)
    assert not errors, dock.status.value
    layer = viewer.layers["img attribution"]
    assert layer.data.shape == (160, 192) and layer.data.dtype == np.float32
    assert layer.metadata[EXPLAIN_METADATA_KEY] and layer.colormap.name == "segqc diverging"
    low, high = layer.contrast_limits
    assert low == pytest.approx(-high) and high > 0
    assert "completeness gap" in dock.status.value
    # a second run replaces the layer instead of adding another
    n = len(viewer.layers)
    panel.method.value = "saliency"
    run_and_wait(qtbot, dock)
    assert len(viewer.layers) == n and "completeness" not in dock.status.value


def test_object_picked_by_a_click_is_explained(qtbot, dock, sample_pair, errors):
    viewer = dock.viewer
    panel = dock.attribution
    gt = viewer.layers["gt"]
    panel.image_combo.value = viewer.layers["img"]
    panel.target_kind.value = OBJECT
    panel.labels_combo.value = gt
    assert panel._pick_object in gt.mouse_drag_callbacks
    ys, xs = np.nonzero(gt.data)
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    click = SimpleNamespace(position=(y, x), view_direction=None, dims_displayed=[0, 1])
    panel._pick_object(gt, click)
    assert panel.label_id.value == gt.data[y, x]
    panel.method.value = "gradient_x_input"
    run_and_wait(qtbot, dock)
    assert not errors, dock.status.value
    assert f"object {gt.data[y, x]}" in dock.status.value
    assert viewer.layers["img attribution"].data.shape == gt.data.shape
    panel.target_kind.value = REGION  # the click handler goes with the object mode
    assert panel._pick_object not in gt.mouse_drag_callbacks


def test_missing_target_and_wrong_model_are_clear_messages(dock, tmp_path, errors):
    panel = dock.attribution
    panel.image_combo.value = dock.viewer.layers["img"]
    dock.run()
    assert dock.status.is_error and "rectangle" in dock.status.value
    assert dock.run_button.enabled
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    dock.model_path.value = bad
    dock.viewer.add_shapes([[[0, 0], [0, 20], [20, 20], [20, 0]]], name="box")
    panel.shapes_combo.value = dock.viewer.layers["box"]
    dock.run()
    assert dock.status.is_error and "model.onnx" in dock.status.value


def test_filters_show_kernels_spectra_and_feature_maps(qtbot, dock, errors):
    dock.tabs.setCurrentIndex(dock.panels.index(dock.filters))
    assert dock.run_button.text == dock.filters.run_text
    assert len(dock.filters.layer.choices) > 3  # the model's conv layers are listed
    dock.filters.image_combo.value = dock.viewer.layers["img"]
    run_and_wait(qtbot, dock)
    assert not errors, dock.status.value
    names = [layer.name for layer in dock.viewer.layers]
    kernels = next(
        dock.viewer.layers[n] for n in names if n.startswith("kernels ") and "FFT" not in n
    )
    spectra = next(dock.viewer.layers[n] for n in names if n.startswith("kernels FFT"))
    features = next(dock.viewer.layers[n] for n in names if " features " in n)
    assert kernels.data.ndim == spectra.data.ndim == 2
    assert features.data.ndim == 3 and features.data.shape[0] > 1  # channel on the slider
    # the grids sit beside the image, the feature maps over it
    assert kernels.translate[1] > 192 and spectra.translate[1] > kernels.translate[1]
    assert features.data.shape[1] * features.scale[1] == pytest.approx(160, abs=8)


def test_landscape_plot_layers_and_png(qtbot, dock, tmp_path, errors):
    dock.tabs.setCurrentIndex(dock.panels.index(dock.landscape))
    assert not dock.landscape.plot_box.native.isHidden()
    panel = dock.landscape
    panel.image_combo.value = dock.viewer.layers["img"]
    panel.gt_combo.value = dock.viewer.layers["gt"]
    panel.loss_boxes["focal"].value = False
    panel.steps.value = 3
    panel.patch.value = 64
    run_and_wait(qtbot, dock)
    assert not errors, dock.status.value
    for name in ("bce", "dice"):
        assert dock.viewer.layers[f"landscape {name}"].data.shape == (3, 3)
    assert "landscape focal" not in dock.viewer.layers
    assert panel.plot.figure.axes and panel.plot.landscape.path_t is not None  # run kept init
    png = panel.save_png(str(tmp_path / "l.png"))
    assert png.stat().st_size > 1000


def test_train_dock_lr_finder_suggests_a_rate_and_writes_nothing(
    qtbot, make_napari_viewer, sample_pair, tmp_path, errors
):
    from napari_segqc._widgets.train_widget import TrainWidget

    viewer = make_napari_viewer()
    viewer.add_image(sample_pair[0], name="img")
    viewer.add_labels(sample_pair[1], name="gt")
    w = TrainWidget(viewer)
    viewer.window.add_dock_widget(w, name="Train")
    w.out_dir.value = tmp_path / "run"
    w.encoder.value = "resnet18"
    w.patch.value = 64
    w.batch.value = 2
    w.image_combo.value, w.labels_combo.value = viewer.layers["img"], viewer.layers["gt"]
    w.add_pair()
    row = w.lr_finder
    row.steps = 12
    worker = row.find()
    assert worker is not None and not w.start_button.enabled
    qtbot.waitUntil(lambda: not row.running, timeout=120_000)
    assert not errors, w.status.value
    assert row.result is not None and len(row.result.lrs) <= 12
    assert not row.plot.isHidden() and row.use_button.enabled
    row.use_suggested()
    assert w.lr.value == pytest.approx(float(f"{row.result.suggested:.1e}"))
    assert w.start_button.enabled
    assert not any(tmp_path.iterdir())  # no run folder


def test_lr_finder_stop_says_so(qtbot, make_napari_viewer, sample_pair, tmp_path, errors):
    from napari_segqc._widgets.train_widget import TrainWidget

    viewer = make_napari_viewer()
    viewer.add_image(sample_pair[0], name="img")
    viewer.add_labels(sample_pair[1], name="gt")
    w = TrainWidget(viewer)
    w.encoder.value, w.patch.value, w.batch.value = "resnet18", 64, 2
    w.image_combo.value, w.labels_combo.value = viewer.layers["img"], viewer.layers["gt"]
    w.add_pair()
    w.lr_finder.steps = 10_000
    w.lr_finder.find()
    qtbot.waitUntil(lambda: "step" in w.status.value, timeout=60_000)
    w.lr_finder.find()  # the button reads "Stop LR test" now
    qtbot.waitUntil(lambda: not w.lr_finder.running, timeout=60_000)
    assert not errors and w.status.value == "LR test stopped"
    assert w.lr_finder.result is None and w.start_button.enabled
