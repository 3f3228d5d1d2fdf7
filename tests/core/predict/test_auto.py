"""``--model auto`` and the two built-in models."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from napari_segqc._sample_data import load_sample
from napari_segqc.core.errors import SegQCError
from napari_segqc.core.models.builtin import BUILTIN_INT8, BUILTIN_MODELS
from napari_segqc.core.predict.auto import (
    FLUORESCENCE,
    GREY_BRIGHTFIELD,
    STAINED,
    BuiltinModels,
    choose_model,
    input_for_model,
)
from napari_segqc.core.predict.loading import load_model
from napari_segqc.core.predict.segmentation import segment, segment_auto
from napari_segqc.core.qc.matching import match_objects


@pytest.fixture(scope="module")
def models():
    return BuiltinModels()


@pytest.mark.parametrize(
    ("sample", "model", "reason"),
    [
        ("nuclei_02", FLUORESCENCE, "fluorescence"),
        ("nuclei_04", FLUORESCENCE, "fluorescence"),
        ("stained_01", STAINED, "colour"),
        ("brightfield_01", GREY_BRIGHTFIELD, "brightfield"),
    ],
)
def test_auto_picks_the_model_that_fits(sample, model, reason):
    image = load_sample(sample)[0]
    choice = choose_model(image)
    assert choice.model == model and reason in choice.reason
    # the same image saved as RGB with equal channels is still grey
    if image.ndim == 2:
        assert choose_model(np.stack([image] * 3, axis=-1)).model == model
    # a stack of them too (judged from a few slices)
    assert choose_model(np.stack([image, image])).model == model


def test_input_for_model_is_a_view_and_keeps_values():
    grey = load_sample("brightfield_01")[0]
    three = input_for_model(grey, 3)
    assert three.shape == (*grey.shape, 3) and np.shares_memory(three, grey)
    assert (three[..., 2] == grey).all()
    colour = load_sample("stained_01")[0]
    assert input_for_model(colour, 1).shape == colour.shape[:2]
    flipped = np.asarray(input_for_model(grey, 1, invert=True))
    assert np.allclose(flipped + grey, float(grey.min()) + float(grey.max()))
    # a colour image inverted for a colour model stays colour (it used to become grey mean)
    flipped = np.asarray(input_for_model(colour, 3, invert=True))
    assert flipped.shape == (*colour.shape[:2], 3)
    rgb = colour[..., :3].astype(np.float32)
    lo, hi = float(colour.min()), float(colour.max())
    assert np.allclose(flipped, lo + hi - rgb)


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_builtin_models_load_segment_and_know_their_size(name, tmp_path):
    loaded = load_model(name)
    assert BUILTIN_MODELS[name].stat().st_size <= 25_000_000
    assert BUILTIN_INT8[name].stat().st_size <= 25_000_000
    config = loaded.config
    assert config.diameter > 0 and config.diameter_range[0] < config.diameter
    card_test = _card(name)["scores"]["test"]
    assert 0.0 < card_test["0.9"]["accuracy"] < card_test["0.5"]["accuracy"] <= 1.0
    sample = {FLUORESCENCE: "nuclei_02", STAINED: "stained_01"}[name]
    image, gt = load_sample(sample)
    labels, _ = segment(loaded, input_for_model(image, config.model.in_channels))
    assert labels.shape == gt.shape
    assert match_objects(gt, labels)["0.50"]["accuracy"] > 0.5
    fake = tmp_path / "model.safetensors"  # a pickle under a safetensors name
    fake.write_bytes(pickle.dumps({"weights": np.zeros(3)}))
    with pytest.raises(SegQCError):
        load_model(fake)


def _card(name: str) -> dict:
    from napari_segqc.core.models.weights import load_weights

    return load_weights(BUILTIN_MODELS[name], tensors=False)[1]["card"]


def test_segment_auto_says_which_model_and_size(models):
    for sample in ("nuclei_02", "stained_01", "brightfield_01"):
        image, gt = load_sample(sample)
        labels, maps, choice, scale = segment_auto(image, models=models)
        assert labels.shape == gt.shape and maps.shape[-2:] == gt.shape
        assert choice.model in BUILTIN_MODELS and scale.estimated
        assert match_objects(gt, labels)["0.50"]["tp"] > 0.5 * len(np.unique(gt))
