"""Convolution kernels, their spectra and mosaics, and feature maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.explain.filters import (
    conv_layers,
    feature_maps,
    kernel_grid,
    kernel_spectra,
    kernels,
)
from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.predict.loading import LoadedModel
from napari_segqc.core.train.config import TrainConfig


@pytest.fixture(scope="module")
def unet() -> LoadedModel:
    torch.manual_seed(0)
    model = ModelConfig(
        encoder="resnet18", encoder_depth=3, decoder_channels=(16, 8, 4), in_channels=1
    )
    network = build_model(model).eval().to(memory_format=torch.channels_last)
    return LoadedModel(network, TrainConfig(model=model), Path("tiny.safetensors"))


class Backwards(torch.nn.Module):
    """Registers its convolutions in the opposite order to the one it runs them in."""

    def __init__(self) -> None:
        super().__init__()
        self.late = torch.nn.Conv2d(4, 3, 1)
        self.early = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.unused = torch.nn.Conv2d(2, 2, 1)

    def forward(self, x):
        return self.late(self.early(x))


def test_conv_layers_in_forward_order(unet):
    names = conv_layers(unet)
    modules = dict(unet.model.named_modules())
    assert all(isinstance(modules[n], torch.nn.Conv2d) for n in names)
    assert len(names) == sum(isinstance(m, torch.nn.Conv2d) for m in modules.values())
    assert names[0] == "encoder.conv1" and names[-1] == "segmentation_head.0"
    assert conv_layers(Backwards()) == ["early", "late", "unused"]


def test_kernels(unet):
    first = kernels(unet)
    assert first.shape == (64, 1, 7, 7) and first.dtype == np.float32
    np.testing.assert_array_equal(first, unet.model.encoder.conv1.weight.detach().numpy())
    head = kernels(unet, "segmentation_head.0")
    assert head.shape == (3, 4, 3, 3)
    with pytest.raises(SegQCError, match="no convolution layer 'conv9'; this model has: encoder"):
        kernels(unet, "conv9")
    with pytest.raises(SegQCError, match="no convolution layers"):
        kernels(torch.nn.Sequential(torch.nn.ReLU()))


def test_kernel_spectra():
    stack = np.zeros((2, 3, 3, 3), np.float32)
    stack[0, :, 1, 1] = 1.0  # delta: passes every frequency alike
    stack[1] = 1.0  # box blur: zero frequency strongest
    spectra = kernel_spectra(stack, size=16)
    assert spectra.shape == (2, 3, 16, 16) and spectra.dtype == np.float32
    np.testing.assert_allclose(spectra[0], 1.0, atol=1e-6)
    box = spectra[1, 0]
    assert np.unravel_index(box.argmax(), box.shape) == (8, 8) and box[8, 8] == pytest.approx(9)
    assert box[8, 8] > box.sum() / box.size * 3
    assert kernel_spectra(stack, size=5).shape == (2, 3, 5, 5)
    with pytest.raises(SegQCError, match="smaller than the kernels"):
        kernel_spectra(stack, size=2)
    with pytest.raises(SegQCError, match=r"\(out, in, kh, kw\)"):
        kernel_spectra(stack[0])


def test_kernel_grid_layout():
    stack = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    stack[1, 2, 0, 0] = np.nan
    grid = kernel_grid(stack, gap=1)
    assert grid.shape == (2 * 3 - 1, 3 * 3 - 1) and grid.dtype == np.float32
    np.testing.assert_array_equal(grid[0:2, 3:5], stack[0, 1])  # row 0 = output 0, input 1
    np.testing.assert_array_equal(grid[3:5, 0:2], stack[1, 0])
    assert grid[2].max() == 0 and grid[:, 2].max() == 0 and grid[:, 5].max() == 0  # gaps
    assert np.isfinite(grid).all() and grid[3, 6] == 0.0  # the NaN
    assert kernel_grid(stack, gap=0).shape == (4, 6)
    with pytest.raises(SegQCError, match="out, in, h, w"):
        kernel_grid(stack[0])


def test_feature_maps_shape_and_stride(unet, sample_pair):
    image = sample_pair[0][:100, :130]  # padded to 128 x 160 for the network
    maps, stride = feature_maps(unet, image)
    assert maps.shape == (64, 50, 65) and stride == 2.0 and maps.dtype == np.float32
    deep, stride = feature_maps(unet, image, "encoder.layer2.0.conv1")
    assert deep.shape == (128, 13, 17) and stride == 8.0
    out, stride = feature_maps(unet, image, "segmentation_head.0")
    assert out.shape == (3, 100, 130) and stride == 1.0 and np.isfinite(out).all()
    block, stride = feature_maps(unet, image, "encoder.layer1")  # any module by name
    assert block.shape == (64, 25, 33) and stride == 4.0


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("big", "at most 64 pixels a side"),
        ("layer", "no convolution layer 'nope'"),
        ("stack", "pick one slice"),
        ("onnx", "load with backend='torch'"),
    ],
)
def test_feature_maps_bad_input(case, message, unet):
    image, layer, loaded = np.zeros((48, 48), np.float32), None, unet
    if case == "big":
        image = np.zeros((48, 80), np.float32)
    elif case == "layer":
        layer = "nope"
    elif case == "stack":
        image = np.zeros((2, 48, 48), np.float32)
    elif case == "onnx":
        loaded = LoadedModel(torch.nn.Identity(), unet.config, Path("m.onnx"), backend="onnx")
    with pytest.raises(SegQCError, match=message):
        feature_maps(loaded, image, layer, max_side=64)
    if case == "onnx":
        with pytest.raises(SegQCError, match="load with backend='torch'"):
            conv_layers(loaded)
