"""Shared fixtures: the real sample images and their ground truth shipped in sample_data/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "sample_data"
SHARED_DATA = ROOT.parent / "shared" / "data"

#: Settings for a training run of a few seconds on the sample data (CLI arguments).
TINY_TRAIN_ARGS = [
    *("--epochs", "1", "--steps-per-epoch", "2", "--batch", "2", "--patch", "64"),
    *("--encoder", "resnet18", "--val-fraction", "0.25"),
]


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_pair() -> tuple[np.ndarray, np.ndarray]:
    """A real 256 x 256 fluorescence image and its instance labels (49 nuclei)."""
    import tifffile

    image = tifffile.imread(SAMPLE_DIR / "images" / "nuclei_02.tif")
    labels = tifffile.imread(SAMPLE_DIR / "masks" / "nuclei_02.tif")
    return image, labels


def degrade(labels: np.ndarray, *, drop_every: int = 5, seed: int = 0) -> np.ndarray:
    """An imperfect prediction: some objects dropped, the rest eroded, one spurious blob."""
    from skimage.morphology import disk, erosion

    rng = np.random.default_rng(seed)
    out = erosion(labels, disk(1))
    ids = np.unique(labels)[1:]
    out[np.isin(out, ids[::drop_every])] = 0
    y, x = rng.integers(10, np.array(labels.shape) - 10)
    out[y - 4 : y + 4, x - 4 : x + 4] = labels.max() + 1
    return out


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The DSB 2018 data beside the repository (absent on a user's machine: tests skip)."""
    if not (SHARED_DATA / "dsb2018" / "train").is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory) -> Path:
    """A small untrained model saved as the trainer does (weights + config)."""
    import torch

    from napari_segqc.core.models.registry import ModelConfig, build_model
    from napari_segqc.core.models.weights import save_weights
    from napari_segqc.core.train.config import TrainConfig

    torch.manual_seed(0)
    config = TrainConfig(model=ModelConfig(encoder="resnet18", in_channels=1, classes=3))
    model = build_model(config.model).eval()
    path = tmp_path_factory.mktemp("run") / "best.safetensors"
    save_weights(path, model.state_dict(), {"config": config.to_dict(), "epoch": 0})
    return path


@pytest.fixture
def errors(monkeypatch):
    """Messages the dock widgets sent to napari's show_error (in the order shown)."""
    from napari_segqc._widgets import base

    shown: list[str] = []
    monkeypatch.setattr(base, "show_error", shown.append)
    return shown
