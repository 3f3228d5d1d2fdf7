"""`segqc train` on two CPU processes under torchrun (DistributedDataParallel on gloo): the run
folder, the loss curve against one process with the same global batch, resume with
``--nproc``, and the refusals.

torchrun runs as ``python -m napari_segqc.core.train.distributed``: ``torch.distributed.run``
itself, its rendezvous store given a socket on 127.0.0.1 (plain torchrun's listens on every
interface), and the ranks' gloo sockets on the loopback interface: nothing listens elsewhere.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_segqc.cli import main
from napari_segqc.cli.main import build_parser
from napari_segqc.cli.train import _command_line

EPOCHS = 4
#: A tiny network, a learning rate at which 4 x 8 steps show a clear fall of the loss.
ARGS = [
    *("--encoder", "resnet18", "--encoder-depth", "3", "--decoder-channels", "16,8,4"),
    *("--patch", "64", "--steps-per-epoch", "8", "--lr", "5e-3", "--val-fraction", "0.25"),
    *("--device", "cpu", "--precision", "fp32"),
]
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def history(run):
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def ddp_run(sample_dir, tmp_path_factory):
    """A 2 x batch 1 run under torchrun: (run folder, finished process)."""
    run = tmp_path_factory.mktemp("ddp") / "run"
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "napari_segqc.core.train.distributed"]
    command += ["--nproc-per-node", "2", "-m", "napari_segqc.cli", "train"]
    command += ["--images", str(sample_dir), "--out", str(run), *ARGS]
    command += ["--epochs", str(EPOCHS), "--batch", "1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return run, done


def test_torchrun_writes_a_complete_run_folder_that_loads(ddp_run, sample_pair):
    from napari_segqc.core.models.weights import load_weights
    from napari_segqc.core.predict.loading import load_model
    from napari_segqc.core.predict.segmentation import segment

    run, done = ddp_run
    out = done.stdout
    assert "2 processes x batch 1 = global batch 2" in out
    for line in ("training on 4 images", *(f"epoch {e}/{EPOCHS}:" for e in (1, 4)), "best model"):
        assert out.count(line) == 1, out  # rank 0 prints, rank 1 does not
    assert "Traceback" not in done.stderr
    names = {p.name for p in run.iterdir()}
    files = {"config.json", "history.csv", "state.safetensors"}
    assert files | {f"{n}.safetensors" for n in ("init", "best", "last")} == names
    assert [r["epoch"] for r in history(run)] == [str(e) for e in range(EPOCHS)]
    weights, meta = load_weights(run / "last.safetensors")
    assert meta["epoch"] == EPOCHS - 1 and not any(k.startswith("module.") for k in weights)
    loaded = load_model(run)  # like any other run folder
    image, _ = sample_pair
    labels, maps = segment(loaded, image, diameter=None)
    assert labels.shape == image.shape and np.isfinite(maps).all()


def test_loss_curve_matches_one_process_with_the_same_global_batch(ddp_run, sample_dir, tmp_path):
    run, _ = ddp_run
    single = tmp_path / "single"
    args = ["train", "--images", str(sample_dir), "--out", str(single), *ARGS]
    assert main([*args, "--epochs", str(EPOCHS), "--batch", "2"]) == 0
    two = np.array([float(r["train_loss"]) for r in history(run)])
    one = np.array([float(r["train_loss"]) for r in history(single)])
    print("train loss, 2 processes x batch 1:", two.round(4), "1 process x batch 2:", one.round(4))
    # both learn (the loss falls by more than 15 %) ...
    assert two[-1] < 0.85 * two[0] and one[-1] < 0.85 * one[0]
    # ... alike: every epoch within 20 % (seeds alone move an epoch's loss by up to ~10 %)
    assert np.all(np.abs(two - one) < 0.2 * one)
    rates = [float(r["images_per_s"]) * float(r["seconds"]) for r in history(run)]
    assert rates == pytest.approx([2 * 8] * EPOCHS)  # 8 steps of the global batch of 2


def test_nproc_resumes_a_run_under_torchrun(ddp_run, sample_dir, tmp_path, capfd):
    run, _ = ddp_run
    resumed = tmp_path / "run"
    shutil.copytree(run, resumed)
    before = history(resumed)
    args = ["train", "--images", str(sample_dir), "--out", str(resumed), *ARGS, "--batch", "1"]
    assert main([*args, "--epochs", str(EPOCHS + 1), "--resume", "--nproc", "2"]) == 0
    out = capfd.readouterr().out
    assert "starting 2 training processes" in out and out.count(f"epoch {EPOCHS + 1}/") == 1
    assert f"epoch {EPOCHS}/" not in out  # it took up where the run stopped
    rows = history(resumed)
    assert rows[:EPOCHS] == before and rows[-1]["epoch"] == str(EPOCHS)
    assert (resumed / "init.safetensors").read_bytes() == (run / "init.safetensors").read_bytes()
    assert not [p for p in resumed.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        (["--nproc", "0"], {}, "--nproc must be at least 1, got 0"),
        (["--nproc", "2"], {"WORLD_SIZE": "2", "RANK": "1"}, "already rank 1 of 2"),
        (["--nproc", "2", "--images", "/nonexistent"], {}, "/nonexistent: no such folder"),
    ],
)
def test_nproc_errors_are_one_line(sample_dir, tmp_path, capfd, monkeypatch, extra, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "run"
    args = ["train", "--images", str(sample_dir), "--out", str(out), *ARGS, *extra]
    assert main(args) == 1
    captured = capfd.readouterr()
    err = captured.err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert "starting" not in captured.out and not out.exists()


def test_the_relaunched_command_line_reads_back_the_same(sample_dir):
    parser = build_parser()
    argv = ["train", "--images", str(sample_dir), "--out", "r", *ARGS, "--seed", "-3"]
    argv += ["--zoom", "0.8,1.25", "--resume", "--nproc", "3"]
    args = parser.parse_args(argv)
    again = parser.parse_args(["train", *_command_line(args.func.keywords["parser"], args)])
    assert again.nproc == 1 and again.resume and again.seed == -3
    skip = {"func", "nproc"}
    assert {k: v for k, v in vars(again).items() if k not in skip} == {
        k: v for k, v in vars(args).items() if k not in skip
    }
