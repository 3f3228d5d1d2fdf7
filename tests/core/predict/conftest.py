"""Fixtures of the prediction tests: a small untrained model file."""

from __future__ import annotations

import pytest
import torch

from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.models.weights import save_weights
from napari_segqc.core.train.config import TrainConfig


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small untrained model saved as the trainer does (weights + config)."""
    torch.manual_seed(0)
    config = TrainConfig(model=ModelConfig(encoder="resnet18", in_channels=1, classes=3))
    model = build_model(config.model).eval()
    path = tmp_path_factory.mktemp("run") / "best.safetensors"
    save_weights(path, model.state_dict(), {"config": config.to_dict(), "epoch": 0})
    return path
