"""`segqc predict` with zarr in and out, on a local dask cluster and on a scheduler and worker
started as separate processes (127.0.0.1 only)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
import zarr

from napari_segqc.cli import main
from napari_segqc.core.qc.matching import match_objects


def _ome_image(path, image):
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image

    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    write_image(image[None, None, None], group, axes="tczyx", fmt=FormatV05(), scale_factors=(2,))
    return path


@pytest.fixture(scope="module")
def folder(sample_dir, tmp_path_factory):
    """Two sample TIFFs and one sample image as an OME-Zarr (t, c, z of size 1)."""
    root = tmp_path_factory.mktemp("inputs")
    images = sorted((sample_dir / "images").glob("*.tif"))
    for p in images[:2]:
        (root / p.name).write_bytes(p.read_bytes())
    _ome_image(root / "big.ome.zarr", tifffile.imread(images[3]))  # 520 x 696
    return root


def _labels(path):
    if path.suffix == ".zarr":
        return zarr.open_group(str(path), mode="r")["0"][:]
    return tifffile.imread(path)


def test_local_cluster_gives_single_process_labels(folder, tmp_path, capsys):
    common = ["predict", "--model", "nuclei", "--input", str(folder)]
    assert main([*common, "--out", str(tmp_path / "here")]) == 0
    here = capsys.readouterr().out
    assert "big.ome.zarr" in here and "blocks" not in here  # lazily, whole, in this process
    out = tmp_path / "cluster"
    assert main([*common, "--out", str(out), "--workers", "2", "--block", "256"]) == 0
    printed = capsys.readouterr().out
    assert "(9 blocks, halo 128 px)" in printed  # 520 x 696 in blocks of 256
    names = sorted(p.name for p in out.iterdir())
    assert names == ["big.ome.zarr", "nuclei_01.tif", "nuclei_02.tif"]
    for name in names[1:]:  # whole images on a worker: the very same labels
        assert np.array_equal(_labels(out / name), _labels(tmp_path / "here" / name))
    single, blocks = _labels(tmp_path / "here" / names[0]), _labels(out / names[0])
    assert single.dtype == blocks.dtype == np.uint32
    result = match_objects(single, blocks, thresholds=(0.5,))["0.50"]
    assert result["accuracy"] >= 0.97, result
    ome = zarr.open_group(str(out / names[0]), mode="r").attrs["ome"]
    assert [d["path"] for d in ome["multiscales"][0]["datasets"]] == ["0", "1"]


@pytest.fixture
def dask_processes(tmp_path):
    """A dask scheduler and one worker as separate processes on 127.0.0.1; killed after."""
    file = tmp_path / "scheduler.json"
    python = sys.executable
    local = ["--host", "127.0.0.1", "--no-dashboard", "--scheduler-file", str(file)]
    started = [
        subprocess.Popen(
            [python, "-m", "distributed.cli.dask_scheduler", "--port", "0", *local],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        started.append(
            subprocess.Popen(
                [python, "-m", "distributed.cli.dask_worker", "--nthreads", "1", *local],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        from distributed import Client

        with Client(scheduler_file=str(file), timeout=60) as client:
            client.wait_for_workers(1, timeout=90)
        yield json.loads(file.read_text())["address"]
    finally:
        for proc in reversed(started):
            proc.terminate()
        for proc in reversed(started):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_existing_scheduler_by_address(dask_processes, folder, tmp_path, capsys):
    assert dask_processes.startswith("tcp://127.0.0.1:")
    target = tmp_path / "labels.zarr"
    args = ["predict", "--model", "nuclei", "--input", str(folder / "big.ome.zarr")]
    args += ["--out", str(target), "--scheduler", dask_processes, "--block", "320"]
    assert main(args) == 0
    assert "(6 blocks" in capsys.readouterr().out  # 520 x 696 in blocks of 320
    labels = _labels(target)
    assert labels.shape == (520, 696) and labels.max() > 20
    ids = np.unique(labels)[1:]
    assert ids.tolist() == list(range(1, len(ids) + 1))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scheduler", "http://nowhere"], "give a dask scheduler address"),
        (["--workers", "1", "--block", "100"], "block side must be a multiple of 64"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--out", "ONE.zarr"], "names one OME-Zarr label store"),
    ],
)
def test_bad_cluster_options_fail_before_any_work(folder, tmp_path, capsys, extra, message):
    args = ["predict", "--model", "nuclei", "--input", str(folder)]
    if "--out" not in extra:
        args += ["--out", str(tmp_path / "out")]
    else:
        extra = ["--out", str(tmp_path / extra[1])]
    assert main([*args, *extra]) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_zarr_input_errors(folder, tmp_path, capsys):
    with pytest.raises(SystemExit):  # argparse: one or the other
        main(["predict", "--input", "x", "--out", "y", "--workers", "2", "--scheduler", "a:1"])
    capsys.readouterr()
    corrupt = tmp_path / "corrupt.zarr"
    corrupt.mkdir()
    (corrupt / "zarr.json").write_text("{")
    args = ["predict", "--model", "nuclei", "--input", str(corrupt), "--out", str(tmp_path / "o")]
    assert main(args) == 1
    assert "cannot be read as zarr" in capsys.readouterr().err
    store = folder / "big.ome.zarr"
    args = ["predict", "--model", "nuclei", "--input", str(store), "--out", str(store)]
    assert main(args) == 1
    assert "is the input" in capsys.readouterr().err


def test_zarr_stack_is_segmented_slice_by_slice_into_a_tiff(sample_pair, tmp_path, capsys):
    stack = np.stack([sample_pair[0], sample_pair[0][::-1]])
    zarr.open_array(str(tmp_path / "stack.zarr"), mode="w", shape=stack.shape, dtype=stack.dtype)[
        :
    ] = stack
    out = tmp_path / "out"
    args = ["predict", "--model", "nuclei", "--input", str(tmp_path / "stack.zarr")]
    assert main([*args, "--out", str(out)]) == 0
    labels = tifffile.imread(out / "stack.tif")  # label stores are 2-D: a stack gets a TIFF
    assert labels.shape == stack.shape and labels[1].max() > labels[0].max() > 20
