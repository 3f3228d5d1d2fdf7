"""Checkpoints: safetensors only, round trips, atomic writes, pickles refused before they run."""

import pickle

import pytest
import torch

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.models.weights import load_state, load_weights, save_state, save_weights
from napari_segqc.core.train.optim import make_optimizer


def test_weights_round_trip_with_metadata(tmp_path):
    config = ModelConfig(encoder="resnet18", in_channels=1, classes=3)
    model = build_model(config)
    path = save_weights(
        tmp_path / "best.safetensors", model.state_dict(), {"model": config.to_dict()}
    )
    state, meta = load_weights(path)
    assert ModelConfig.from_dict(meta["model"]) == config
    again = build_model(config)
    again.load_state_dict(state)
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["best.safetensors"]  # no temp files left


def test_optimizer_state_round_trip(tmp_path):
    model = torch.nn.Linear(4, 2)
    opt = make_optimizer("adam", model.parameters(), lr=1e-3)
    model(torch.ones(3, 4)).sum().backward()
    opt.step()
    save_state(tmp_path / "state.safetensors", {"optimizer": opt.state_dict(), "epoch": 7})
    state = load_state(tmp_path / "state.safetensors")
    assert state["epoch"] == 7
    opt2 = make_optimizer("adam", model.parameters(), lr=1e-3)
    opt2.load_state_dict(state["optimizer"])
    a, b = opt.state_dict()["state"][0], opt2.state_dict()["state"][0]
    assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["step"], b["step"])


class Payload:
    ran = False

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


@pytest.mark.parametrize("how", ["pickle", "torch"])
def test_pickles_are_refused_before_running(tmp_path, monkeypatch, how):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.safetensors"
    if how == "pickle":
        path.write_bytes(pickle.dumps({"w": Payload()}))
    else:
        torch.save({"w": Payload()}, path)
    with pytest.raises(SegQCError, match="never unpickles"):
        load_weights(path)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "content", [b"", b"garbage!!", b"\x10\x00\x00\x00\x00\x00\x00\x00{bad json}"]
)
def test_corrupt_files_give_clear_errors(tmp_path, content):
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(SegQCError, match=r"x\.safetensors"):
        load_weights(path)


def test_state_file_needs_a_tree(tmp_path):
    save_weights(tmp_path / "w.safetensors", {"a": torch.zeros(2)}, {})
    with pytest.raises(SegQCError, match="not a napari-segqc training state"):
        load_state(tmp_path / "w.safetensors")
