"""A block's work mirrors single-process prediction: same input recipe, same tiled maps."""

from __future__ import annotations

import numpy as np
import pytest

from napari_segqc.core.distributed.settings import PredictSettings
from napari_segqc.core.distributed.window import make_recipe, window_maps
from napari_segqc.core.predict.auto import input_for_model
from napari_segqc.core.predict.inference import (
    _percentiles,
    grey_if_equal_channels,
    predict_probs_tiled,
)
from napari_segqc.core.predict.scale import resize_plane, scaled_shape


@pytest.fixture(scope="module")
def nuclei():
    from napari_segqc.core.predict.loading import load_model

    return load_model("nuclei")


def _grey(sample_pair) -> np.ndarray:
    return sample_pair[0].astype(np.uint16)


@pytest.mark.parametrize(
    ("case", "in_channels", "auto", "invert"),
    [
        ("grey", 1, True, False),
        ("grey", 1, True, True),  # a brightfield-like image inverted over its range
        ("coloured", 1, True, False),  # colour to a grey model: the mean of its channels
        ("equal", 1, False, False),  # grey saved as RGB, given to a grey model: one channel
        ("grey", 3, False, False),  # grey to a colour model: three equal channels
        ("coloured", 3, True, False),
    ],
)
def test_recipe_gives_what_single_process_prediction_gives(
    sample_pair, case, in_channels, auto, invert
):
    grey = _grey(sample_pair)
    image = {
        "grey": grey,
        "coloured": np.stack([grey, grey // 2, grey // 3 + 7], axis=-1),
        "equal": np.stack([grey] * 3, axis=-1),
    }[case]
    rgb = image.ndim == 3
    if auto or (in_channels == 3 and not rgb):
        expected = input_for_model(image, in_channels, invert=invert)
    else:
        expected = image
    expected = np.asarray(grey_if_equal_channels(expected, in_channels))
    recipe = make_recipe(image, in_channels, auto=auto, invert=invert)
    got = np.asarray(recipe.apply(image))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    window = (slice(30, 130), slice(50, 200))
    np.testing.assert_allclose(np.asarray(recipe.apply(image[window])), got[window], rtol=1e-6)


@pytest.mark.parametrize(("factor", "context"), [(1.0, None), (0.71, 20.0)])
def test_window_maps_equal_the_tiled_inference_given_the_same_percentiles(
    nuclei, sample_pair, factor, context
):
    image = _grey(sample_pair)
    settings = PredictSettings(tile=128, overlap=32, batch=3)
    # single-process prediction normalises the image as the network sees it (resized)
    scaled = resize_plane(image, scaled_shape(*image.shape, factor)) if factor != 1 else image
    lo, hi = _percentiles(scaled, 1)
    got = window_maps(nuclei, image, lo, hi, factor, context, settings)
    expected = predict_probs_tiled(
        nuclei, image, tile=128, overlap=32, batch=3, scale=factor, diameter=context
    )
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # other percentiles (the whole image's, not the window's) change the maps
    other = window_maps(nuclei, image, lo, hi * 3, factor, context, settings)
    assert np.abs(other - got).max() > 0.05
