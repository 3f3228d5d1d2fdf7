"""Attribution maps: completeness, locality, tiles, targets and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_segqc.core.errors import SegQCError, Stopped
from napari_segqc.core.explain.attribution import (
    METHODS,
    Target,
    attribute,
    iter_attribution,
    label_target,
    region_target,
)
from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.predict.inference import predict_probs_tiled
from napari_segqc.core.predict.loading import LoadedModel
from napari_segqc.core.predict.tiling import fit_tile, tile_starts
from napari_segqc.core.train.config import TrainConfig

#: How far the tiny U-Net's outputs see (measured: gradients reach 71 pixels, by the stride-8 grid).
RF_MARGIN = 72


def tiny_unet(in_channels: int = 1, target_mode: str = "instance") -> LoadedModel:
    torch.manual_seed(0)
    classes = 3 if target_mode == "instance" else 1
    model = ModelConfig(
        encoder="resnet18",
        encoder_depth=3,
        decoder_channels=(16, 8, 4),
        in_channels=in_channels,
        classes=classes,
    )
    config = TrainConfig(model=model, target_mode=target_mode)
    network = build_model(model).eval().to(memory_format=torch.channels_last)
    return LoadedModel(network, config, Path("tiny.safetensors"))


class Local(torch.nn.Module):
    """Two 3x3 convolutions: each output pixel sees the 5 x 5 pixels around it (pointwise:
    one 1x1 convolution, each output sees its own pixel only)."""

    def __init__(self, pointwise: bool = False) -> None:
        super().__init__()
        torch.manual_seed(1)
        if pointwise:
            self.net = torch.nn.Conv2d(1, 3, 1)
        else:
            self.net = torch.nn.Sequential(
                torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(4, 3, 3, 1, 1)
            )

    def forward(self, x):
        return self.net(x)


def local_model(pointwise: bool = False) -> LoadedModel:
    config = TrainConfig(model=ModelConfig(encoder="resnet18", in_channels=1, classes=3))
    return LoadedModel(Local(pointwise).eval(), config, Path("local.safetensors"))


@pytest.fixture(scope="module")
def unet() -> LoadedModel:
    return tiny_unet()


@pytest.fixture(scope="module")
def image(sample_pair) -> np.ndarray:
    return sample_pair[0]


def _grown(shape, region, margin: int) -> np.ndarray:
    y0, x0, y1, x1 = region
    inside = np.zeros(shape, bool)
    inside[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin] = True
    return inside


def test_integrated_gradients_complete_and_local(unet, image):
    region = (112, 120, 136, 144)
    result = attribute(unet, image, region_target(region), tile=512)
    assert result.map.shape == image.shape and result.map.dtype == np.float32
    assert result.method == "integrated_gradients" and result.tiles == result.tiles_total == 1
    # the target's value is the prediction's foreground summed over the region
    probs = predict_probs_tiled(unet, image, tile=512, dtype=None)
    assert result.output_value == pytest.approx(probs[0, 112:136, 120:144].sum(), rel=1e-4)
    # completeness: the map sums to F(image) - F(baseline), within 5 %
    change = result.output_value - result.baseline_value
    assert result.completeness_gap < 0.05
    assert result.map.sum() == pytest.approx(change, rel=0.05, abs=1e-3)
    # locality: nothing beyond the receptive field, most of the mass near the region
    mass = np.abs(result.map)
    assert mass[~_grown(image.shape, region, RF_MARGIN)].max() == 0.0
    assert mass[_grown(image.shape, region, RF_MARGIN // 2)].sum() >= 0.8 * mass.sum()
    record = result.to_json()
    assert json.loads(json.dumps(record)) == record
    assert record["target"] == {"output": "foreground", "region": list(region), "pixels": 576}


@pytest.mark.parametrize("method", ["gradient_x_input", "saliency"])
def test_gradient_methods_are_local(method, unet, image):
    region = (100, 60, 110, 75)
    result = attribute(unet, image, region_target(region, "boundary"), method=method)
    mass = np.abs(result.map)
    assert np.isfinite(result.map).all() and mass.sum() > 0
    assert mass[~_grown(image.shape, region, RF_MARGIN)].max() == 0.0
    assert math.isnan(result.baseline_value) and math.isnan(result.completeness_gap)
    assert result.to_json()["completeness_gap"] is None
    if method == "saliency":
        assert result.map.min() >= 0.0


def test_exact_locality_and_occlusion_on_a_small_network(image):
    loaded, region = local_model(), (40, 50, 44, 60)
    crop = image[:96, :96]
    for method in METHODS:
        result = attribute(loaded, crop, region_target(region), method=method, window=4)
        mass = np.abs(result.map)
        assert mass.sum() > 0, method
        # each output pixel sees 2 pixels around it; occlusion windows reach 3 more
        margin = 2 + (4 if method == "occlusion" else 0)
        assert mass[~_grown(crop.shape, region, margin)].max() == 0.0, method


def test_only_the_target_tiles_are_computed_and_agree_with_one_tile(image):
    big = np.tile(image, (1, 2))[:, :448]  # 256 x 448: tiles of 128 (+32 overlap)
    region = (10, 12, 30, 40)  # in the first tile only
    h, w = big.shape
    th, tw = fit_tile(h, 128, 32), fit_tile(w, 128, 32)
    total = len(tile_starts(h, th, 32)) * len(tile_starts(w, tw, 32))
    for loaded, tol in ((local_model(pointwise=True), 1e-5), (local_model(), 0.05)):
        tiled = attribute(loaded, big, region_target(region), tile=128, overlap=32)
        whole = attribute(loaded, big, region_target(region), tile=512)
        assert tiled.tiles_total == total > tiled.tiles == 1 and whole.tiles_total == 1
        assert tiled.map[:, 160:].max() == tiled.map[:, 160:].min() == 0.0  # not computed
        diff = np.abs(tiled.map - whole.map).sum() / np.abs(whole.map).sum()
        assert diff < tol
        assert tiled.output_value == pytest.approx(whole.output_value, rel=tol)
        assert tiled.completeness_gap < 0.05


def test_a_target_across_tiles_adds_their_shares(image):
    loaded = local_model(pointwise=True)  # exact: the tiles' shares add up to the target
    region = (20, 20, 236, 236)
    tiled = attribute(loaded, image, region_target(region), tile=128, overlap=32)
    whole = attribute(loaded, image, region_target(region), tile=256)
    assert tiled.tiles == tiled.tiles_total > 1
    np.testing.assert_allclose(tiled.map, whole.map, rtol=1e-3, atol=1e-6)
    probs = predict_probs_tiled(loaded, image, tile=128, overlap=32, dtype=None)
    assert tiled.output_value == pytest.approx(probs[0, 20:236, 20:236].sum(), rel=1e-4)


def test_object_target_and_colour_model(sample_pair):
    image, labels = sample_pair
    label = int(np.unique(labels)[5])
    target = label_target(labels, label, "distance")
    assert target.describe() == {
        "output": "distance",
        "label": label,
        "pixels": int((labels == label).sum()),
    }
    colour = tiny_unet(in_channels=3)  # a grey image goes in as three equal channels
    result = attribute(colour, image, target, method="gradient_x_input")
    assert result.map.shape == image.shape and np.abs(result.map).sum() > 0
    rgb = np.stack([image, image // 2, image // 3], axis=-1)
    assert attribute(colour, rgb, target, method="saliency").map.shape == image.shape


def test_progress_and_stop(image):
    loaded, target = local_model(), region_target((0, 0, 256, 40))
    gen = iter_attribution(loaded, image, target, tile=128, overlap=32, method="saliency")
    steps = []
    with pytest.raises(StopIteration):
        while True:
            steps.append(next(gen))
    assert steps[0] == (0, steps[-1][1]) and steps[-1][0] == steps[-1][1] == len(steps) - 1
    seen = []
    attribute(loaded, image, target, tile=128, overlap=32, progress=lambda *d: seen.append(d))
    assert seen[-1] == steps[-1]
    with pytest.raises(Stopped):
        attribute(loaded, image, target, stop=lambda: True)


def _nan_image(image):
    bad = image.astype(np.float32)
    bad[5, 5] = np.nan
    return bad


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("out_of_bounds", "outside the image (256 x 256 pixels"),
        ("mask_shape", "must match"),
        ("empty_mask", "no pixels"),
        ("no_target", "exactly one"),
        ("method", "use one of: integrated_gradients, gradient_x_input"),
        ("output", "this model has: foreground"),
        ("nan", "NaN"),
        ("stack", "pick one slice"),
        ("tile", "multiple of 32"),
        ("onnx", "backend='torch'"),
        ("steps", "at least 1 step"),
    ],
)
def test_bad_input(case, message, image):
    loaded, target, kwargs = local_model(), region_target((0, 0, 10, 10)), {}
    binary = LoadedModel(Local().eval(), TrainConfig(target_mode="binary"), Path("b"))
    if case == "out_of_bounds":
        target = region_target((200, 10, 300, 20))
    elif case == "mask_shape":
        target = Target(mask=np.ones((10, 10), bool))
    elif case == "empty_mask":
        target = Target(mask=np.zeros(image.shape, bool))
    elif case == "no_target":
        target = Target()
    elif case == "method":
        kwargs = {"method": "gradcam"}
    elif case == "output":
        loaded, target = binary, region_target((0, 0, 10, 10), "boundary")
    elif case == "nan":
        image = _nan_image(image)
    elif case == "stack":
        image = np.stack([image, image])
    elif case == "tile":
        kwargs = {"tile": 100}
    elif case == "onnx":
        loaded = LoadedModel(Local(), loaded.config, Path("m.onnx"), backend="onnx")
    elif case == "steps":
        kwargs = {"steps": 0}
    with pytest.raises(SegQCError, match=message.replace("(", r"\(")):
        attribute(loaded, image, target, **kwargs)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: region_target((10, 5, 10, 8)), "0 <= y0 < y1"),
        (lambda: region_target((-1, 5, 10, 8)), "0 <= y0 < y1"),
        (lambda: region_target((1, 2, 3)), "four integers"),
        (lambda: region_target((0, 0, 5, 5), "edges"), "unknown output 'edges'"),
        (lambda: label_target(np.zeros((8, 8), np.int32), 3), "label 3 is not in the labels"),
        (lambda: label_target(np.ones((8, 8), np.int32), 0), "0 is the background"),
        (lambda: label_target(np.ones((8, 8), np.float32), 1), "integer image"),
    ],
)
def test_bad_targets(make, message):
    with pytest.raises(SegQCError, match=message):
        make()
