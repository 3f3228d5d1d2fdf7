"""`segqc explain`: attribution maps and kernels written from a tiny saved model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_segqc.cli import main
from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.models.weights import save_weights
from napari_segqc.core.train.config import TrainConfig


@pytest.fixture(scope="module")
def files(tmp_path_factory, sample_pair):
    """A tiny untrained model as the trainer saves it, a 96 x 120 image and its labels."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("explain")
    model = ModelConfig(
        encoder="resnet18", encoder_depth=3, decoder_channels=(16, 8, 4), in_channels=1
    )
    config = TrainConfig(model=model)
    path = folder / "tiny.safetensors"
    save_weights(path, build_model(model).state_dict(), {"config": config.to_dict()})
    image, labels = (a[:96, :120] for a in sample_pair)
    tifffile.imwrite(folder / "image.tif", image)
    tifffile.imwrite(folder / "labels.tif", labels.astype(np.uint16))
    return {"model": str(path), "image": str(folder / "image.tif"), "labels": labels, "dir": folder}


def _base(files, out) -> list[str]:
    return ["explain", "--model", files["model"], "--input", files["image"], "--out", str(out)]


def test_region_attribution(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*_base(files, out), "--region", "30,40,50,70", "--steps", "8"]) == 0
    attribution = tifffile.imread(out / "attribution.tif")
    assert attribution.shape == (96, 120) and attribution.dtype == np.float32
    record = json.loads((out / "explain.json").read_text())
    keys = {"method", "target", "completeness_gap", "seconds", "model", "input"}
    assert keys | {"output_value", "baseline_value", "tiles", "tiles_total"} <= set(record)
    assert record["method"] == "integrated_gradients" and record["completeness_gap"] < 0.05
    assert record["target"] == {"output": "foreground", "region": [30, 40, 50, 70], "pixels": 600}
    assert record["model"] == files["model"] and record["tiles"] == 1
    line = capsys.readouterr().out.strip()
    assert "integrated_gradients of foreground over region" in line and "gap" in line
    assert len(line.splitlines()) == 1


def test_object_attribution(files, tmp_path, capsys):
    labels = files["labels"]
    label = int(np.unique(labels)[3])
    out = tmp_path / "out"
    args = [*_base(files, out), "--label", str(label), "--labels", str(files["dir"] / "labels.tif")]
    assert main([*args, "--method", "saliency", "--output", "boundary"]) == 0
    assert tifffile.imread(out / "attribution.tif").min() >= 0
    record = json.loads((out / "explain.json").read_text())
    assert record["target"]["label"] == label and record["completeness_gap"] is None
    assert f"saliency of boundary over object {label}" in capsys.readouterr().out


def test_kernels_and_layers(files, tmp_path, capsys):
    out = tmp_path / "k"
    assert main(["explain", "--model", files["model"], "--kernels", "--out", str(out)]) == 0
    assert tifffile.imread(out / "kernels.tif").shape == (64, 1, 7, 7)
    spectra = tifffile.imread(out / "kernels_fft.tif")
    assert spectra.shape == (64, 1, 16, 16) and spectra.dtype == np.float32
    head = ["--layer", "segmentation_head.0"]
    assert main(["explain", "--model", files["model"], "--kernels", "--out", str(out), *head]) == 0
    assert tifffile.imread(out / "kernels.tif").shape == (3, 4, 3, 3)
    capsys.readouterr()
    assert main(["explain", "--model", files["model"], "--list-layers"]) == 0
    names = capsys.readouterr().out.split()
    assert names[0] == "encoder.conv1" and names[-1] == "segmentation_head.0"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give the target as --region"),
        (["--region", "1,2,3,4", "--label", "3"], "give the target as --region"),
        (["--label", "3"], "--label and --labels go together"),
        (["--region", "1,2,x,4"], "--region must be Y0,X0,Y1,X1"),
        (["--region", "0,0,100,10"], "outside the image (96 x 120 pixels"),
        (["--region", "5,5,1,10"], "0 <= y0 < y1"),
        (["--region", "0,0,8,8", "--method", "gradcam"], "unknown method 'gradcam'"),
        (["--region", "0,0,8,8", "--output", "edges"], "unknown output 'edges'"),
        (["--region", "0,0,8,8", "--tile", "100"], "multiple of 32"),
        (["--region", "0,0,8,8", "--input", "/no/such.tif"], "no such file"),
        (["--region", "0,0,8,8", "--model", "/no/run"], "no such file or run folder"),
    ],
)
def test_errors(extra, message, files, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*_base(files, out), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("segqc explain: error: ") and message in err
    assert len(err.splitlines()) == 1
    assert not out.exists()  # nothing written


def test_errors_without_input_or_out(files, capsys):
    assert main(["explain", "--model", files["model"], "--region", "0,0,4,4", "--out", "x"]) == 1
    assert "--input IMAGE is required" in capsys.readouterr().err
    assert main(["explain", "--model", files["model"], "--kernels"]) == 1
    assert "--out DIR is required" in capsys.readouterr().err
