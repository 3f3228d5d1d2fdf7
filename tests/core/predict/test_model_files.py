"""Loading model files safely: pickles, foreign, corrupt and mismatched files are refused, and
an image is checked against a model's config before the model is built."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.models.weights import save_weights
from napari_segqc.core.predict.loading import load_model
from napari_segqc.core.train.config import TrainConfig


class Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickled_model_refused_before_it_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, write in (
        ("model.pt", lambda p: torch.save({"w": Payload()}, p)),
        ("model.pkl", lambda p: p.write_bytes(pickle.dumps(Payload()))),
    ):
        path = tmp_path / name
        write(path)
        with pytest.raises(SegQCError, match="never unpickles"):
            load_model(path)
    assert not (tmp_path / "PWNED").exists()


def test_foreign_corrupt_and_mismatched_files(tmp_path, tiny_model_file):
    foreign = tmp_path / "foreign.safetensors"
    save_weights(foreign, {"x": torch.zeros(3)}, {"something": 1})
    with pytest.raises(SegQCError, match="not a napari-segqc model"):
        load_model(foreign)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(tiny_model_file.read_bytes()[:1000])
    with pytest.raises(SegQCError, match=r"corrupt|truncated|not a safetensors"):
        load_model(corrupt)
    wrong = tmp_path / "wrong.safetensors"
    config = TrainConfig(model=ModelConfig(encoder="resnet34"))  # says resnet34...
    resnet18 = build_model(ModelConfig(encoder="resnet18"))  # ...holds resnet18 weights
    save_weights(wrong, resnet18.state_dict(), {"config": config.to_dict()})
    with pytest.raises(SegQCError, match="do not fit the model"):
        load_model(wrong)
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(SegQCError, match=r"no best\.safetensors"):
        load_model(tmp_path / "empty_run")
    with pytest.raises(SegQCError, match="no such file"):
        load_model(tmp_path / "nope.safetensors")


def test_image_checked_against_the_model_before_loading_it(monkeypatch):
    """read_config reads only the header; check_image says what does not fit, at once."""
    from napari_segqc.core.predict import loading
    from napari_segqc.core.predict.inference import check_image
    from napari_segqc.core.predict.loading import read_config

    monkeypatch.setattr(loading, "build_model", lambda *_: pytest.fail("the model was built"))
    config = read_config("nuclei")
    assert config.model.in_channels == 1 and config.target_mode == "instance"
    grey = np.zeros((64, 64), np.uint8)
    assert check_image(grey, config) == ((), 1)
    assert check_image(np.stack([grey] * 3, axis=-1), config) == ((), 1)  # grey saved as RGB
    colour = np.random.default_rng(0).integers(0, 255, (64, 64, 3)).astype(np.uint8)
    with pytest.raises(SegQCError, match="expects grey"):
        check_image(colour, config)
