"""The Segment dock widget in a real napari viewer (with a tiny model trained for the test)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import degrade
from napari_segqc._widgets.segment_widget import (
    AUTO_CHOICE,
    FILE_CHOICE,
    TRAINED_PREFIX,
    SegmentWidget,
)
from napari_segqc._widgets.session import TRAINED_MODELS
from napari_segqc.core.models.registry import ModelConfig
from napari_segqc.core.train.config import TrainConfig
from napari_segqc.core.train.data import load_training_data
from napari_segqc.core.train.loop import iter_train


@pytest.fixture(scope="module")
def model_path(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "run"
    config = TrainConfig(
        model=ModelConfig(encoder="resnet18"),
        epochs=1,
        steps_per_epoch=2,
        batch=2,
        patch=64,
        val_fraction=0.25,
    )
    for _ in iter_train(config, load_training_data(sample_dir), out):
        pass
    return out / "best.safetensors"


@pytest.fixture
def widget(make_napari_viewer, sample_pair, model_path):
    viewer = make_napari_viewer()
    viewer.add_image(sample_pair[0], name="img")
    w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(w, name="Segment")
    w.image_combo.value = viewer.layers["img"]
    w.model_combo.value = FILE_CHOICE
    w.model_path.value = model_path
    w.tile.value = 128
    w.overlap.value = 32
    w.diameter.value = 20  # the tiny model's own scale: an untrained model's estimate is noise
    return w


def run_and_wait(qtbot, w, timeout=60_000):
    w.run()
    assert w._worker is not None and not w.run_button.enabled
    qtbot.waitUntil(lambda: w.run_button.enabled, timeout=timeout)


def test_labels_appear_and_threshold_redecodes_without_the_network(qtbot, widget, errors):
    run_and_wait(qtbot, widget)
    assert not errors
    layer = widget.viewer.layers["img labels"]
    assert layer.data.shape == (256, 256) and layer.data.dtype.kind in "iu"
    worker = widget._worker
    fake = np.zeros_like(widget.probs)
    fake[:, 20:40, 20:40] = 0.9  # one square object in every channel
    fake[1] = 0.0  # no boundary
    widget.probs = fake
    widget.threshold.value = 0.3  # a control change: decoding only
    assert widget._worker is worker  # no new network run
    assert len(np.unique(layer.data)) == 2 and layer.data[30, 30] > 0
    assert widget.status.value.endswith("; 1 object")


def test_rerun_replaces_the_layer_and_probability_map(qtbot, widget):
    widget.show_probs.value = True
    run_and_wait(qtbot, widget)
    n = len(widget.viewer.layers)
    run_and_wait(qtbot, widget)
    assert len(widget.viewer.layers) == n
    probs = widget.viewer.layers["img probability"].data
    assert probs.shape == (256, 256) and probs.min() >= 0 and probs.max() <= 1


def test_cancel_stops_before_any_layer(qtbot, widget, sample_pair):
    widget.viewer.add_image(np.tile(sample_pair[0], (6, 6)), name="big")  # 1536 x 1536
    widget.image_combo.value = widget.viewer.layers["big"]
    widget.run()
    qtbot.waitUntil(lambda: widget.progress.value >= 1, timeout=60_000)
    widget.cancel()
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=60_000)
    assert "big labels" not in widget.viewer.layers
    assert widget.progress.value < widget.progress.max


def test_missing_model_file_is_a_notification(widget, errors, tmp_path):
    widget.model_path.value = tmp_path / "missing.safetensors"
    widget.run()
    assert widget._worker is None and "choose a run folder" in errors[-1]


def test_colour_image_goes_to_a_grey_model_as_one_channel(qtbot, widget, errors):
    rng = np.random.default_rng(0)
    widget.viewer.add_image(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), name="rgb", rgb=True)
    widget.image_combo.value = widget.viewer.layers["rgb"]
    channel = widget.inputs.channel
    assert not channel.native.isHidden() and channel.value.startswith("grey")
    widget.inputs.channel.value = "channel 2"
    run_and_wait(qtbot, widget)
    assert not errors and widget.viewer.layers["rgb labels"].data.shape == (64, 64)


def test_trained_models_are_offered(widget, model_path):
    TRAINED_MODELS.append(model_path)
    try:
        widget.reset_choices()
        assert f"{TRAINED_PREFIX}{model_path}" in widget.model_combo.choices
        widget.model_combo.value = f"{TRAINED_PREFIX}{model_path}"
        assert widget.model_source() == str(model_path)
    finally:
        TRAINED_MODELS.remove(model_path)


def test_segmentation_can_be_checked_with_qc(qtbot, widget, sample_pair):
    from napari_segqc._widgets.qc_widget import QCWidget
    from napari_segqc.core.qc.run import qc_report

    viewer = widget.viewer
    viewer.add_labels(sample_pair[1], name="img ground truth")
    viewer.add_labels(degrade(sample_pair[1]), name="other labels")
    qc = QCWidget(viewer)
    assert qc.gt_combo.value.name == "img ground truth"
    run_and_wait(qtbot, widget)
    assert qc.pred_combo.value is viewer.layers["img labels"]  # the new labels are picked
    labels = widget.viewer.layers["img labels"].data
    report = qc_report(sample_pair[1], labels)
    assert 0.0 <= report["objects"]["0.50"]["f1"] <= 1.0
    assert qc_report(sample_pair[1], degrade(sample_pair[1]))["pixel"]["iou"] < 1.0


def test_time_lapse_is_segmented_slice_by_slice(qtbot, widget, sample_pair, errors):
    frames = np.stack([sample_pair[0][:128, :128], sample_pair[0][128:, 128:]])
    widget.viewer.add_image(frames, name="movie", scale=(5.0, 0.5, 0.5))
    widget.image_combo.value = widget.viewer.layers["movie"]
    widget.show_probs.value = True
    widget.tta.value = True
    run_and_wait(qtbot, widget)
    assert not errors
    labels = widget.viewer.layers["movie labels"]
    assert labels.data.shape == (2, 128, 128) and tuple(labels.scale) == (5.0, 0.5, 0.5)
    assert widget.viewer.layers["movie probability"].data.shape == (2, 128, 128)
    widget.min_size.value = 10**5  # re-decoding covers every frame
    assert labels.data.max() == 0


def test_auto_is_the_default_and_picks_per_image(make_napari_viewer):
    from napari_segqc._sample_data import load_sample

    viewer = make_napari_viewer()
    w = SegmentWidget(viewer)
    assert w.model_combo.value == AUTO_CHOICE and w.model_source() == "auto"
    assert not w.model_path.visible and not w.inputs.invert.enabled
    viewer.add_image(load_sample("nuclei_02")[0], name="fluo")
    w.image_combo.value = viewer.layers["fluo"]
    assert w.auto_choice.model == "nuclei" and w.picked_config.model.in_channels == 1
    viewer.add_image(load_sample("stained_01")[0], name="stained", rgb=True)
    w.image_combo.value = viewer.layers["stained"]
    assert w.auto_choice.model == "nuclei-stained" and w.picked_config.model.in_channels == 3
    assert w.inputs.channel.value == "RGB" and not w.inputs.note.visible


def test_controls_keep_the_users_values_across_runs(qtbot, widget):
    from napari_segqc.core.instances.decoding import decode_labels

    assert widget.min_size.value == 15  # the picked model's own setting
    widget.min_size.value = 3
    widget.threshold.value = 0.4
    run_and_wait(qtbot, widget)
    assert widget.min_size.value == 3 and widget.threshold.value == pytest.approx(0.4)
    expected = decode_labels(widget.probs, widget.model_config, **widget.decoding_settings())
    np.testing.assert_array_equal(widget.viewer.layers["img labels"].data, expected)
    run_and_wait(qtbot, widget)  # a second run too
    assert widget.min_size.value == 3
    assert widget.split_height.enabled  # an instance-target model


def test_min_size_is_in_the_models_pixels_when_the_image_is_rescaled(qtbot, widget):
    widget.diameter.value = round(widget.picked_config.diameter / 2, 1)  # enlarged ~x2
    run_and_wait(qtbot, widget)
    assert widget.map_scale == pytest.approx(2.0, rel=0.05)
    assert "rescaled" in widget.status.value
    worker, layer = widget._worker, widget.viewer.layers["img labels"]
    fake = np.zeros_like(widget.probs)
    fake[:, 20:40, 20:40] = 0.9  # one 400-px square in the image's pixels
    fake[1] = 0.0
    widget.probs = fake
    widget.min_size.value = 1000  # ~250 px of this image: kept
    assert layer.data.max() == 1
    widget.min_size.value = 2000  # ~500 px of this image: dropped
    assert layer.data.max() == 0 and widget._worker is worker


def test_split_height_and_object_prob_redecode(qtbot, widget):
    run_and_wait(qtbot, widget)
    worker = widget._worker
    widget.probs = _two_touching_cores()
    widget.split_height.value = 0.0  # the cores touch above the seed threshold: one object
    layer = widget.viewer.layers["img labels"]
    assert layer.data.max() == 1
    widget.split_height.value = 0.2  # each core's peak rises far above the dip: two objects
    assert layer.data.max() == 2 and widget._worker is worker
    widget.probs[0, :, 60:] *= 0.6  # the right nucleus: the network is unsure of it
    widget.min_object_prob.value = 0.8
    assert layer.data.max() == 1 and layer.data[60, 52] == 1 and widget._worker is worker


def _two_touching_cores() -> np.ndarray:
    """Maps (3, 256, 256) of two discs (radius 12, centres 16 px apart): foreground, no
    boundary, distance falling linearly from each centre (peaks 1 and 0.9), ~0.3 at the dip
    between them."""
    yy, xx = np.mgrid[:256, :256]
    r = [np.hypot(yy - 60, xx - cx) for cx in (52, 68)]
    probs = np.zeros((3, 256, 256), np.float32)
    probs[0] = (np.minimum(*r) < 12) * 0.95
    probs[2] = np.maximum(np.clip(1 - r[0] / 12, 0, 1), 0.9 * np.clip(1 - r[1] / 12, 0, 1))
    return probs


def test_big_maps_are_redecoded_in_a_worker(qtbot, widget, monkeypatch):
    """Past LIVE_DECODE_PIXELS a control change decodes in a thread; changes made meanwhile
    are decoded when it ends, so the labels end up matching the last setting."""
    import napari_segqc._widgets.segment_decoding as segment_decoding

    run_and_wait(qtbot, widget)
    monkeypatch.setattr(segment_decoding, "LIVE_DECODE_PIXELS", 0)
    widget.probs = _two_touching_cores()
    layer = widget.viewer.layers["img labels"]
    widget.split_height.value = 0.0  # one object, decoded in a worker
    assert widget._decode_worker is not None and widget.status.value == "decoding..."
    widget.split_height.value = 0.2  # while it runs: decoded after it
    qtbot.waitUntil(lambda: widget._decode_worker is None, timeout=20_000)
    qtbot.waitUntil(lambda: layer.data.max() == 2, timeout=20_000)
    assert widget.status.value.endswith("2 objects")


def test_export_row_writes_an_onnx_model_that_loads(qtbot, widget, model_path, tmp_path):
    pytest.importorskip("onnxruntime")
    from napari_segqc.core.predict.loading import load_model

    widget.model_combo.value = FILE_CHOICE
    widget.model_path.value = model_path
    widget.exporter.format.value = "ONNX int8"  # a trained model: calibrated on the picked image
    worker = widget.exporter.export(dest=str(tmp_path / "exported"))
    assert worker is not None
    qtbot.waitUntil(lambda: widget.exporter.button.enabled, timeout=60_000)
    out = tmp_path / "exported.onnx"
    assert load_model(out).backend == "onnx"
    assert "model exported" in widget.status.value
    # auto exports the built-in model it picks; a folder that cannot be made is a message
    widget.model_combo.value = AUTO_CHOICE
    widget.exporter.format.value = "TorchScript"
    widget.exporter.export(dest=str(tmp_path / "picked.pt"))
    qtbot.waitUntil(lambda: widget.exporter.button.enabled, timeout=60_000)
    assert load_model(tmp_path / "picked.pt").config == load_model("nuclei").config
    (tmp_path / "a_file").write_text("")
    widget.exporter.export(dest=str(tmp_path / "a_file" / "x.pt"))
    qtbot.waitUntil(lambda: widget.exporter.button.enabled, timeout=60_000)
    assert "export failed" in widget.status.value
    assert not (tmp_path / "a_file").is_dir()
