"""The Segment dock with the built-in "nuclei" model in a real viewer: the model's decoding
settings, colour and bright-background images, stacks, small images, early refusals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from qtpy.QtWidgets import QApplication

from napari_segqc._widgets.segment_inputs import INVERT_TEXT
from napari_segqc._widgets.segment_widget import FILE_CHOICE, SegmentWidget
from napari_segqc.core.instances.decoding import decode_labels
from napari_segqc.core.models.builtin import BUILTIN_TITLES, resolve_model_path
from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.models.weights import load_weights, save_weights
from napari_segqc.core.predict.loading import read_config
from napari_segqc.core.train.config import TrainConfig


@pytest.fixture
def widget(make_napari_viewer, sample_pair):
    viewer = make_napari_viewer()
    viewer.add_image(sample_pair[0], name="nuclei_02")
    w = SegmentWidget(viewer)
    w.model_combo.value = BUILTIN_TITLES["nuclei"]  # picked by hand: channel and Invert apply
    viewer.window.add_dock_widget(w, name="Segment")
    return w


@pytest.fixture(scope="module")
def tuned_model(tmp_path_factory):
    """The built-in model's weights with other decoding settings."""
    weights, meta = load_weights(resolve_model_path("nuclei"))
    config = replace(
        read_config("nuclei"), threshold=0.45, min_size=7, split_height=0.3, min_object_prob=0.1
    )
    path = tmp_path_factory.mktemp("tuned") / "tuned.safetensors"
    save_weights(path, weights, {**meta, "config": config.to_dict()})
    return path


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory):
    """An (untrained) model of colour images."""
    torch.manual_seed(0)
    config = TrainConfig(model=ModelConfig(encoder="resnet18", in_channels=3, classes=3))
    path = tmp_path_factory.mktemp("colour") / "best.safetensors"
    save_weights(path, build_model(config.model).state_dict(), {"config": config.to_dict()})
    return path


def run_and_wait(qtbot, w, timeout=120_000):
    w.run()
    assert w._worker is not None and not w.run_button.enabled
    qtbot.waitUntil(lambda: w.run_button.enabled, timeout=timeout)


def settings(w) -> tuple:
    return tuple(round(float(v), 3) for v in w.decoding_settings().values())


def brightfield(image: np.ndarray) -> np.ndarray:
    """A fluorescence image as a tinted bright-background colour image (brightfield-like)."""
    inverted = 255.0 - image
    return np.stack([inverted, 0.9 * inverted, 0.75 * inverted + 20], axis=-1).astype(np.uint8)


def test_controls_show_the_models_settings_keep_the_users_and_restore_defaults(
    qtbot, widget, tuned_model, errors
):
    builtin = read_config("nuclei")
    assert settings(widget) == (0.6, 20, 0.2, 0.88)  # before any run: the model's own
    assert (builtin.threshold, builtin.min_size, builtin.min_object_prob) == (0.6, 20, 0.88)
    widget.min_size.value = 80
    run_and_wait(qtbot, widget)
    assert not errors and widget.min_size.value == 80  # the user's value survives the run
    layer = widget.viewer.layers["nuclei_02 labels"]
    ours = decode_labels(widget.probs, widget.model_config, **widget.decoding_settings())
    np.testing.assert_array_equal(layer.data, ours)  # ... and made the labels
    widget.defaults_button.native.click()
    assert settings(widget) == (0.6, 20, 0.2, 0.88)
    np.testing.assert_array_equal(layer.data, decode_labels(widget.probs, builtin))
    assert layer.data.max() > ours.max()  # the small nuclei are back
    widget.model_combo.value = FILE_CHOICE  # another model: its settings, no question
    widget.model_path.value = tuned_model
    assert QApplication.activeModalWidget() is None
    assert settings(widget) == (0.45, 7, 0.3, 0.1)
    widget.min_size.value = 50
    widget.defaults_button.native.click()
    assert widget.min_size.value == 7


def test_stack_ids_are_unique_and_the_count_is_the_total(qtbot, widget, sample_pair, errors):
    image = sample_pair[0]
    widget.viewer.add_image(np.stack([image, image[::-1, ::-1]]), name="stack")
    widget.image_combo.value = widget.viewer.layers["stack"]
    run_and_wait(qtbot, widget)
    labels = widget.viewer.layers["stack labels"].data
    first, second = np.unique(labels[0])[1:], np.unique(labels[1])[1:]
    assert len(first) > 20 and len(second) > 20 and first.max() < second.min()  # no id twice
    total = len(first) + len(second)
    assert labels.max() == total
    assert widget.status.value.endswith(f" {total} objects in 2 slices")
    assert not errors


def test_bright_colour_image_is_flagged_before_the_run_and_invert_fixes_it(
    qtbot, widget, sample_pair, errors
):
    viewer, inputs = widget.viewer, widget.inputs
    assert inputs.note.native.isHidden()  # a fluorescence image: nothing to say
    run_and_wait(qtbot, widget)
    grey_count = int(viewer.layers["nuclei_02 labels"].data.max())
    viewer.add_image(brightfield(sample_pair[0]), name="brightfield", rgb=True)
    widget.image_combo.value = viewer.layers["brightfield"]
    note = inputs.note.value  # said when the image is picked, before any run
    assert not inputs.note.native.isHidden() and "bright background" in note
    assert f'tick "{INVERT_TEXT}"' in note and 'under "Channel"' in note
    assert "colour" in note and not widget.status.is_error
    inputs.invert.value = True
    inputs.channel.value = "channel 1"
    assert inputs.note.native.isHidden() and inputs.note.value == ""
    run_and_wait(qtbot, widget)
    count = int(viewer.layers["brightfield labels"].data.max())
    assert abs(count - grey_count) <= 0.1 * grey_count  # the nuclei, not nonsense
    assert not errors


def test_small_images_segment(qtbot, widget, sample_pair, errors):
    image = sample_pair[0]
    for name, data in (("tiny", image[100:120, 100:120]), ("strip", image[100:107, :])):
        widget.viewer.add_image(data, name=name)
        widget.image_combo.value = widget.viewer.layers[name]
        run_and_wait(qtbot, widget)
        assert not errors, errors
        labels = widget.viewer.layers[f"{name} labels"].data
        assert labels.shape == data.shape and labels.dtype.kind in "iu"
    assert widget.viewer.layers["tiny labels"].data.max() >= 1  # a nucleus is in that corner


def test_grey_image_goes_to_a_colour_model_as_three_equal_channels(
    widget, colour_model, sample_pair, errors
):
    from napari_segqc.core.predict.inference import check_image
    from napari_segqc.core.predict.loading import read_config

    widget.model_combo.value = FILE_CHOICE
    widget.model_path.value = colour_model
    layer = widget.viewer.layers["nuclei_02"]
    data = widget.inputs.model_input(layer)
    assert data.shape == (*layer.data.shape, 3)
    assert (data[..., 0] == data[..., 2]).all() and (data[..., 1] == layer.data).all()
    check_image(data, read_config(colour_model))  # fits: no refusal
    assert "expects RGB" not in widget.inputs.note.value
    viewer = widget.viewer
    viewer.add_image(brightfield(sample_pair[0]), name="colour", rgb=True)
    widget.image_combo.value = viewer.layers["colour"]
    channel = widget.inputs.channel
    assert "RGB" in channel.choices and channel.value == "RGB"  # a colour model: offered
    assert widget.inputs.model_input(viewer.layers["colour"]).shape[-1] == 3
    channel.value = "channel 2"  # one channel, given as three
    data = widget.inputs.model_input(viewer.layers["colour"])
    assert data.shape[-1] == 3 and (data[..., 0] == data[..., 1]).all()
    assert not errors
