"""`segqc qc` end to end on the sample data, and its error handling."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from conftest import degrade
from napari_segqc.cli import main


@pytest.fixture
def pred_dir(tmp_path, sample_dir):
    """Predictions for every sample image: degraded copies of the ground truth."""
    out = tmp_path / "pred"
    out.mkdir()
    for f in sorted((sample_dir / "masks").glob("*.tif")):
        tifffile.imwrite(out / f.name, degrade(tifffile.imread(f)).astype(np.uint16))
    return out


def test_qc_folders_json(pred_dir, sample_dir, capsys):
    assert main(["qc", "--gt", str(sample_dir / "masks"), "--pred", str(pred_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [e["name"] for e in report["images"]]
    assert names == ["nuclei_01", "nuclei_02", "nuclei_03", "nuclei_04"]
    s = report["summary"]["objects"]["0.50"]
    assert s["tp"] == sum(e["objects"]["0.50"]["tp"] for e in report["images"])
    assert 0.5 < s["f1"] < 1.0
    assert 0.0 < report["summary"]["dsb_score"] < 1.0


def test_qc_maps_and_files_written(pred_dir, sample_dir, tmp_path, capsys):
    out = tmp_path / "qc"
    args = ["qc", "--gt", str(sample_dir / "masks"), "--pred", str(pred_dir), "--out", str(out)]
    assert main([*args, "--maps"]) == 0
    text = capsys.readouterr().out
    assert "nuclei_03: pixel IoU" in text and text.strip().splitlines()[-1].startswith("summary")
    written = sorted(p.name for p in out.iterdir())
    assert "qc_report.json" in written and "qc_scores.csv" in written
    for kind in ("error", "object_iou", "ssim", "rse"):
        data = tifffile.imread(out / f"nuclei_02_{kind}.tif")
        assert data.shape == (256, 256)
    assert set(np.unique(tifffile.imread(out / "nuclei_02_error.tif"))) <= set(range(6))
    rows = (out / "qc_scores.csv").read_text().splitlines()
    assert rows[0].startswith("name,f1,accuracy,precision") and len(rows) == 1 + 4 + 1
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_qc_single_files_probability_prediction(sample_dir, tmp_path, capsys):
    gt = tifffile.imread(sample_dir / "masks" / "nuclei_01.tif")
    prob = tmp_path / "nuclei_01.tif"
    tifffile.imwrite(prob, (gt > 0).astype(np.float32) * 0.8 + 0.1)
    assert (
        main(
            [
                "qc",
                "--gt",
                str(sample_dir / "masks" / "nuclei_01.tif"),
                "--pred",
                str(prob),
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["images"][0]["pixel"]["iou"] == 1.0


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such file or folder"),
        ("unpaired", "unpaired files"),
        ("shape", "shape"),
        ("corrupt", "cannot be read"),
        ("maps_without_out", "--maps needs --out"),
    ],
)
def test_qc_errors_are_one_line(setup, message, tmp_path, sample_dir, capsys):
    gt = tmp_path / "gt"
    pred = tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    tifffile.imwrite(gt / "a.tif", np.zeros((16, 16), np.uint16))
    tifffile.imwrite(pred / "a.tif", np.zeros((16, 16), np.uint16))
    extra = []
    if setup == "missing":
        pred = tmp_path / "nowhere"
    elif setup == "unpaired":
        tifffile.imwrite(gt / "b.tif", np.zeros((16, 16), np.uint16))
    elif setup == "shape":
        tifffile.imwrite(pred / "a.tif", np.zeros((16, 17), np.uint16))
    elif setup == "corrupt":
        (pred / "a.tif").write_bytes(b"garbage")
    elif setup == "maps_without_out":
        extra = ["--maps"]
    assert main(["qc", "--gt", str(gt), "--pred", str(pred), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_console_script_runs(sample_dir):
    mask = str(sample_dir / "masks" / "nuclei_01.tif")
    done = subprocess.run(
        [sys.executable, "-m", "napari_segqc.cli", "qc", "--gt", mask, "--pred", mask, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["dsb_score"] == 1.0
    bad = subprocess.run(
        [sys.executable, "-m", "napari_segqc.cli", "qc", "--gt", mask, "--pred", "/nonexistent"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
