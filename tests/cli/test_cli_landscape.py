"""`segqc landscape` on a tiny model: the files and their columns, the path from a run's initial
weights, and one-line errors before anything is loaded or written."""

from __future__ import annotations

import csv
import shutil

import pytest
import torch

from napari_segqc.cli import main
from napari_segqc.core.models.builtin import BUILTIN_INT8
from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.models.weights import save_weights
from napari_segqc.core.train.config import TrainConfig

SMALL = ["--steps", "3", "--max-images", "2", "--patch", "64", "--device", "cpu"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder of a tiny model with its initial weights."""
    folder = tmp_path_factory.mktemp("run")
    config = TrainConfig(
        model=ModelConfig(encoder="resnet18", encoder_depth=3, decoder_channels=(16, 8, 4))
    )
    for seed, name in ((0, "best.safetensors"), (1, "init.safetensors")):
        torch.manual_seed(seed)
        save_weights(
            folder / name, build_model(config.model).state_dict(), {"config": config.to_dict()}
        )
    return folder


def read_csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def data(sample_dir):
    return ["--images", str(sample_dir / "images"), "--gt", str(sample_dir / "masks")]


def test_landscape_with_the_path_from_the_initial_weights(run, sample_dir, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["landscape", "--model", str(run), *data(sample_dir), "--out", str(out), *SMALL]
    assert main([*args, "--losses", "bce,dice"]) == 0
    text = capsys.readouterr().out
    assert (
        "with the path from the initial weights" in text and "30/30 points" in text
    )  # 9 grid + 21 path
    assert "bce: minimum" in text and "dice: minimum" in text
    assert sorted(p.name for p in out.iterdir()) == [
        "interpolation.csv",
        "landscape.csv",
        "landscape.png",
    ]
    columns, rows = read_csv(out / "landscape.csv")
    assert columns == ["loss", "alpha", "beta", "value"]
    assert len(rows) == 2 * 9 and {r["loss"] for r in rows} == {"bce", "dice"}
    assert {float(r["alpha"]) for r in rows} == {-1.0, 0.0, 1.0}
    columns, path = read_csv(out / "interpolation.csv")
    assert columns == ["loss", "t", "value"] and len(path) == 2 * 21
    centre = [r for r in rows if float(r["alpha"]) == float(r["beta"]) == 0.0]
    ends = [r for r in path if float(r["t"]) == 1.0]
    assert [float(r["value"]) for r in centre] == pytest.approx(
        [float(r["value"]) for r in ends], rel=1e-5
    )
    png = (out / "landscape.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_landscape_without_initial_weights(run, sample_dir, tmp_path, capsys):
    model = tmp_path / "model.safetensors"
    shutil.copy(run / "best.safetensors", model)
    out = tmp_path / "out"
    args = ["landscape", "--model", str(model), *data(sample_dir), "--out", str(out), *SMALL]
    assert main([*args, "--losses", "focal"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["landscape.csv", "landscape.png"]
    _, rows = read_csv(out / "landscape.csv")
    assert len(rows) == 9 and {r["loss"] for r in rows} == {"focal"}
    assert "initial weights" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--losses", "bce,hinge,iou"], "--losses: unknown hinge, iou; choose from bce, dice"),
        (["--steps", "4"], "--steps must be odd"),
        (["--span", "0"], "--span must be a positive"),
        (["--patch", "100"], "--patch must be a multiple of 32"),
        (["--max-images", "0"], "--max-images must be at least 1"),
    ],
)
def test_bad_options_before_the_model_is_read(sample_dir, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    args = ["landscape", "--model", "/nonexistent/run", *data(sample_dir), "--out", str(out)]
    assert main([*args, *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("segqc landscape: error: ") and message in err
    assert len(err.splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize(
    ("model", "images", "message"),
    [
        ("/nonexistent/run", None, "no such file or run folder"),
        (BUILTIN_INT8["nuclei"], None, "ONNX model runs on onnxruntime only"),
        ("RUN", "/nonexistent/images", "no such folder"),
    ],
)
def test_bad_inputs_are_one_line(run, sample_dir, tmp_path, capsys, model, images, message):
    out = tmp_path / "out"
    inputs = data(sample_dir)
    if images:
        inputs[1] = images
    model = str(run) if model == "RUN" else str(model)
    assert main(["landscape", "--model", model, *inputs, "--out", str(out), *SMALL]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not out.exists()
