"""`segqc predict` end to end: train a tiny model, segment the samples, QC the result."""

import json

import numpy as np
import pytest
import tifffile
import torch

from conftest import TINY_TRAIN_ARGS as TINY
from napari_segqc.cli import main
from napari_segqc.core.qc.matching import match_objects


@pytest.fixture(scope="module")
def run_dir(sample_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--images", str(sample_dir), "--out", str(run), *TINY]) == 0
    return run


def test_predict_folder_then_qc(run_dir, sample_dir, tmp_path, capsys):
    out = tmp_path / "labels"
    args = [
        "predict",
        "--model",
        str(run_dir),
        "--input",
        str(sample_dir / "images"),
        "--out",
        str(out),
        "--tile",
        "128",
        "--overlap",
        "32",
    ]
    assert main(args) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in (sample_dir / "images").glob("*.tif"))
    labels = tifffile.imread(out / "nuclei_04.tif")
    assert labels.dtype == np.uint16 and labels.shape == (520, 696)
    assert "objects ->" in capsys.readouterr().out
    assert main(["qc", "--gt", str(sample_dir / "masks"), "--pred", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["images"]) == 4 and 0.0 <= report["summary"]["dsb_score"] <= 1.0


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("nucleii", "no such file or run folder"),  # a typo of the built-in name
        ("/nonexistent/run", "no such file or run folder"),
        ("PICKLE", "never unpickles"),
    ],
)
def test_predict_model_errors(model, message, sample_dir, tmp_path, capsys):
    if model == "PICKLE":
        model = str(tmp_path / "model.pt")
        torch.save({"w": torch.zeros(2)}, model)
    args = [
        "predict",
        "--model",
        model,
        "--input",
        str(sample_dir / "images"),
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_predict_bad_decoding_setting(run_dir, sample_dir, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["predict", "--model", str(run_dir), "--input", str(sample_dir / "images")]
    assert main([*args, "--out", str(out), "--split-height", "1.5"]) == 1
    assert "split height must be in [0, 1)" in capsys.readouterr().err
    assert not out.exists()


def test_predict_channel_mismatch(run_dir, tmp_path, capsys):
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    args = ["predict", "--model", str(run_dir), "--input", str(rgb), "--out", str(tmp_path / "o")]
    assert main(args) == 1
    assert "expects grey" in capsys.readouterr().err


def test_builtin_model_on_a_time_lapse_with_tta(sample_dir, tmp_path, capsys):
    image = tifffile.imread(sample_dir / "images" / "nuclei_01.tif")
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, np.stack([image, image[::-1]]))  # (T, H, W)
    args = ["predict", "--model", "nuclei", "--input", str(movie), "--out", str(tmp_path / "o")]
    assert main([*args, "--tta"]) == 0
    labels = tifffile.imread(tmp_path / "o" / "movie.tif")
    assert labels.shape == (2, *image.shape) and labels.dtype == np.uint16
    gt = tifffile.imread(sample_dir / "masks" / "nuclei_01.tif")
    first = match_objects(gt, labels[0].astype(np.int32))["0.50"]
    flipped = match_objects(gt, labels[1][::-1].astype(np.int32))["0.50"]
    assert first["accuracy"] > 0.6  # a training image of the model: a check that it works
    # frame 2 is frame 1 upside down: with flip TTA the same nuclei come out (ids restart)
    assert abs(first["tp"] - flipped["tp"]) <= 1
