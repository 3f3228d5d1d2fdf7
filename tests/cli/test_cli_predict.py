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
    # frame 2 is frame 1 upside down: with flip TTA the same nuclei come out
    assert abs(first["tp"] - flipped["tp"]) <= 1
    # ids are unique across frames: frame 2 continues where frame 1 ends
    ids = [set(np.unique(frame)) - {0} for frame in labels]
    assert not ids[0] & ids[1] and min(ids[1]) == max(ids[0]) + 1
    assert f"{labels.max()} objects" in capsys.readouterr().out


def test_predict_reports_a_bad_file_and_goes_on(run_dir, sample_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    image = tifffile.imread(sample_dir / "images" / "nuclei_02.tif")
    tifffile.imwrite(folder / "a_good.tif", image)
    (folder / "b_broken.tif").write_bytes(b"not a tiff at all")
    tifffile.imwrite(folder / "c_rgb.tif", np.stack([image, image // 2, image], axis=-1))
    tifffile.imwrite(folder / "d_good.tif", image[:, ::-1])
    out = tmp_path / "out"
    args = ["predict", "--model", str(run_dir), "--input", str(folder), "--out", str(out)]
    assert main([*args, "--tile", "128", "--overlap", "32"]) == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["a_good.tif", "d_good.tif"]
    assert "b_broken.tif" in captured.err and "c_rgb.tif" in captured.err
    assert "2 of 4 images failed: b_broken.tif, c_rgb.tif" in captured.err
    # --stop-on-error: the first failure ends the run with a one-line message
    out2 = tmp_path / "out2"
    stop = ["predict", "--model", str(run_dir), "--input", str(folder), "--out", str(out2)]
    assert main([*stop, "--tile", "128", "--overlap", "32", "--stop-on-error"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "b_broken.tif" in err
    assert sorted(p.name for p in out2.iterdir()) == ["a_good.tif"]


@pytest.mark.parametrize("command", ["predict", "qc"])
def test_out_that_is_a_file_or_cannot_be_created(command, sample_dir, tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    if command == "predict":
        base = ["predict", "--model", "nuclei", "--input", str(sample_dir / "images")]
    else:
        base = ["qc", "--gt", str(sample_dir / "masks"), "--pred", str(sample_dir / "masks")]
    for out, message in ((a_file, "is a file, not a folder"), (a_file / "sub", "is a file)")):
        assert main([*base, "--out", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Errno" not in err


def test_predict_a_20_pixel_image(sample_dir, tmp_path, capsys):
    small = tmp_path / "small.tif"
    tifffile.imwrite(
        small, tifffile.imread(sample_dir / "images" / "nuclei_02.tif")[90:110, 90:110]
    )
    args = ["predict", "--model", "nuclei", "--input", str(small), "--out", str(tmp_path / "o")]
    assert main(args) == 0
    assert tifffile.imread(tmp_path / "o" / "small.tif").shape == (20, 20)


def test_auto_picks_a_model_per_image_and_says_which(tmp_path, capsys):
    from napari_segqc._sample_data import load_sample

    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("nuclei_02", "stained_01", "brightfield_01"):
        tifffile.imwrite(folder / f"{name}.tif", load_sample(name)[0])
    assert main(["predict", "--input", str(folder), "--out", str(tmp_path / "o")]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["nuclei_02.tif"].startswith("nuclei (grey, dark background")
    assert lines["stained_01.tif"].startswith("nuclei-stained (colour image)")
    assert lines["brightfield_01.tif"].startswith("nuclei-stained (grey, bright background")
    assert all("(estimated)" in line for line in lines.values())
    for name in ("nuclei_02", "stained_01", "brightfield_01"):
        labels = tifffile.imread(tmp_path / "o" / f"{name}.tif")
        gt = load_sample(name)[1]
        assert labels.shape == gt.shape
        assert match_objects(gt, labels.astype(np.int32))["0.50"]["tp"] > 0.5 * gt.max()


def test_diameter_option(sample_dir, tmp_path, capsys):
    image = str(sample_dir / "images" / "nuclei_02.tif")
    args = ["predict", "--model", "nuclei", "--input", image, "--out", str(tmp_path / "o")]
    assert main([*args, "--diameter", "big"]) == 1
    assert "diameter must be 'auto' or a number" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main([*args, "--diameter", "80"]) == 0
    out = capsys.readouterr().out
    assert "diameter 80 px (given), rescaled" in out
    labels = tifffile.imread(tmp_path / "o" / "nuclei_02.tif")
    assert labels.shape == tifffile.imread(image).shape
