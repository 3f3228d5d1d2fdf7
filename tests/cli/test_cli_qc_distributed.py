"""`segqc qc --workers N`: the same report files as one process, image by image; label pairs
larger than --block matched block by block (on the cluster or in this process: the same
report, and the single-process one up to SSIM rounding); zarr pairs; error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr

from conftest import degrade
from napari_segqc.cli import main


@pytest.fixture(scope="module")
def folders(sample_dir, tmp_path_factory):
    """The four sample ground truths and degraded predictions (zlib TIFFs, as segqc predict
    writes them), and a pair whose "labels" look like a grey-value image."""
    root = tmp_path_factory.mktemp("qc_distributed")
    (root / "gt").mkdir()
    (root / "pred").mkdir()
    for f in sorted((sample_dir / "masks").glob("*.tif")):
        (root / "gt" / f.name).write_bytes(f.read_bytes())
        pred = degrade(tifffile.imread(f)).astype(np.uint16)
        tifffile.imwrite(root / "pred" / f.name, pred, compression="zlib")
    rng = np.random.default_rng(0)
    tifffile.imwrite(root / "gt" / "noisy.tif", tifffile.imread(f)[:64, :64])
    tifffile.imwrite(root / "pred" / "noisy.tif", rng.integers(1, 900, (64, 64), np.uint16))
    return root / "gt", root / "pred"


def _run(capsys, gt, pred, out, *extra) -> tuple[str, str]:
    assert main(["qc", "--gt", str(gt), "--pred", str(pred), "--out", str(out), *extra]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def _same_files(a, b, names=("qc_report.json", "qc_scores.csv")) -> None:
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _without_ssim(path) -> tuple[dict, list]:
    report = json.loads((path / "qc_report.json").read_text())
    entries = [report["summary"], *report["images"]]
    return report, [e["image"].pop("ssim") for e in entries]


@pytest.fixture(scope="module")
def here(folders, tmp_path_factory):
    """The single-process run, with maps."""
    out = tmp_path_factory.mktemp("here")
    gt, pred = folders
    assert main(["qc", "--gt", str(gt), "--pred", str(pred), "--out", str(out), "--maps"]) == 0
    return out


def test_workers_give_the_single_process_files_and_maps(folders, here, tmp_path, capsys):
    capsys.readouterr()
    text, err = _run(capsys, *folders, tmp_path, "--workers", "2", "--maps")
    _same_files(here, tmp_path)
    maps = sorted(p.name for p in here.glob("*.tif"))
    assert len(maps) == 20 and sorted(p.name for p in tmp_path.glob("*.tif")) == maps
    _same_files(here, tmp_path, maps)
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        *("noisy", "nuclei_01", "nuclei_02", "nuclei_03", "nuclei_04", "summary")
    ]
    (warning,) = [line for line in err.splitlines() if "warning" in line]
    assert f"{folders[1] / 'noisy.tif'} is read as labels but looks like a grey-value" in warning


def test_big_pairs_block_by_block_on_the_cluster_and_here(folders, here, tmp_path, capsys):
    there, local = tmp_path / "there", tmp_path / "local"
    lines = _run(capsys, *folders, there, "--workers", "2", "--block", "300")[0]
    assert _run(capsys, *folders, local, "--block", "300")[0] == lines
    _same_files(there, local)  # the same blocks, the very same report
    # nuclei_03 (360 x 360) and nuclei_04 (520 x 696) went block by block: all their scores are
    # the single-process ones, the SSIM to float32 rounding
    a, ssim_a = _without_ssim(here)
    b, ssim_b = _without_ssim(there)
    assert a == b
    assert np.allclose(ssim_a, ssim_b, rtol=0, atol=1e-6)


def test_zarr_pairs_whole_and_block_by_block(folders, tmp_path, capsys):
    gt_dir, pred_dir = folders
    gt = tifffile.imread(gt_dir / "nuclei_04.tif")
    pred = tifffile.imread(pred_dir / "nuclei_04.tif")
    for name, data in (("gt", gt), ("nuclei_04", pred)):
        z = zarr.open_array(str(tmp_path / f"{name}.zarr"), mode="w", shape=data.shape,
                            chunks=(128, 128), dtype=data.dtype)  # fmt: skip
        z[:] = data
    zarrs = (tmp_path / "gt.zarr", tmp_path / "nuclei_04.zarr")
    tiffs = (gt_dir / "nuclei_04.tif", pred_dir / "nuclei_04.tif")
    for extra in ([], ["--block", "256"]):
        a, b = tmp_path / f"zarr{len(extra)}", tmp_path / f"tiff{len(extra)}"
        assert _run(capsys, *zarrs, a, *extra)[0] == _run(capsys, *tiffs, b, *extra)[0]
        _same_files(a, b)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--block", "8"], "block side must be an integer of at least 32, got 8"),
        (["--block", "512", "--maps"], "--block does not go with --maps"),
        (["--workers", "0"], "--workers must be at least 1, got 0"),
        (["--scheduler", "not an address"], "--scheduler 'not an address': give a dask"),
    ],
)
def test_bad_cluster_options_are_one_line_errors(folders, tmp_path, capsys, extra, message):
    gt, pred = folders
    assert main(["qc", "--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_scheduler_and_workers_exclude_each_other(folders, capsys):
    gt, pred = folders
    with pytest.raises(SystemExit):
        main(["qc", "--gt", str(gt), "--pred", str(pred), "--workers", "2", "--scheduler", "x:1"])
    assert "not allowed with argument" in capsys.readouterr().err
