"""`segqc train` end to end on the sample data (tiny settings), resume, and errors."""

import csv

import pytest
import torch

from conftest import TINY_TRAIN_ARGS as TINY
from napari_segqc.cli import main


def test_train_then_resume(sample_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--images", str(sample_dir / "images"), "--masks", str(sample_dir / "masks")]
    assert main([*args, "--out", str(out), *TINY]) == 0
    text = capsys.readouterr().out
    assert "training on 4 images" in text and "epoch 1/1" in text
    assert (out / "best.safetensors").is_file() and (out / "last.safetensors").is_file()
    resumed = [a if a != "1" else "2" for a in TINY]  # --epochs 2
    assert (
        main(["train", "--images", str(sample_dir), "--out", str(out), *resumed, "--resume"]) == 0
    )
    assert "epoch 2/2" in capsys.readouterr().out
    with open(out / "history.csv", newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1"]
    no_epochs = [a for a in TINY if a not in ("--epochs", "1")]  # the run's own: 2, all done
    assert (
        main(["train", "--images", str(sample_dir), "--out", str(out), *no_epochs, "--resume"]) == 1
    )
    assert "2 epochs are done already" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--images", "/nonexistent"], "no such folder"),
        (["--encoder", "resnet35"], "unknown encoder"),
        (["--patch", "100"], "multiple of 32"),
        (["--decoder-channels", "64,32"], "one width per encoder stage"),
        (["--init", "/nonexistent/run"], "no such file or run folder"),
        (["--batch", "0"], "batch size"),
        (["--lr", "-1"], "learning rate"),
        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--lr", "0"], ""),
    ],
)
def test_train_errors_are_one_line(sample_dir, tmp_path, capsys, extra, message):
    """Every setting is checked before the run folder is made or "training on" is printed."""
    args = ["train", "--images", str(sample_dir), "--out", str(tmp_path / "run"), *TINY, *extra]
    assert main(args) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "training on" not in captured.out
    assert not (tmp_path / "run").exists()


def test_train_refuses_an_out_that_cannot_be_a_run_folder(sample_dir, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("x")
    for out, message in ((taken, "is a file"), (taken / "run", "cannot be created")):
        args = ["train", "--images", str(sample_dir), "--out", str(out), *TINY]
        assert main(args) == 1
        captured = capsys.readouterr()
        assert message in captured.err and "training on" not in captured.out


def test_smaller_model_fine_tuned_from_a_run(sample_dir, tmp_path, capsys):
    import json

    args = ["train", "--images", str(sample_dir), *TINY]
    assert main([*args, "--out", str(tmp_path / "first")]) == 0
    small = ["--encoder-depth", "4", "--decoder-channels", "128,64,32,16"]
    first = ["--init", str(tmp_path / "first")]
    assert main([*args, "--out", str(tmp_path / "small"), *small]) == 0
    assert main([*args, "--out", str(tmp_path / "tuned"), *first]) == 0
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    assert config["model"]["encoder_depth"] == 4
    assert config["model"]["decoder_channels"] == [128, 64, 32, 16]
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["init"].endswith("first")
    small_size = (tmp_path / "small" / "best.safetensors").stat().st_size
    assert small_size < 0.5 * (tmp_path / "first" / "best.safetensors").stat().st_size
    capsys.readouterr()
    with pytest.raises(SystemExit):  # argparse: usage error
        main([*args, "--out", str(tmp_path / "bad"), "--decoder-channels", "64,x"])
    assert "comma-separated integers" in capsys.readouterr().err
