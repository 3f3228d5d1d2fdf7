"""`segqc lr-find` on the sample data with a tiny network: its two files, the suggestion, the
training options it shares with `segqc train`, and one-line errors."""

from __future__ import annotations

import csv
import re

import pytest

from napari_segqc.cli import main

TINY = [
    *("--encoder", "resnet18", "--encoder-depth", "3", "--decoder-channels", "16,8,4"),
    *("--patch", "64", "--batch", "2", "--device", "cpu"),
]


def test_lr_find_writes_its_two_files_and_suggests_a_rate(sample_dir, tmp_path, capsys):
    out = tmp_path / "out"
    (out).mkdir()
    (out / "config.json").write_text("{}")  # e.g. the folder of a run to come: left alone
    args = ["lr-find", "--images", str(sample_dir), "--out", str(out), *TINY]
    assert main([*args, "--steps", "8", "--start-lr", "1e-5", "--end-lr", "1e-2"]) == 0
    text = capsys.readouterr().out
    assert "LR range test on 4 images: 8 steps" in text
    assert re.search(r"^suggested learning rate: \d\.\de-\d\d", text, re.MULTILINE)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "lr_find.csv", "lr_find.png"]
    assert (out / "config.json").read_text() == "{}"
    with open(out / "lr_find.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["lr", "loss"] and len(rows) == 8
    assert float(rows[0]["lr"]) == pytest.approx(1e-5) and float(rows[-1]["lr"]) == 0.01
    assert (out / "lr_find.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("extra", [["--epochs", "3"], ["--resume"], ["--patience", "2"]])
def test_run_options_are_not_lr_finds(sample_dir, tmp_path, capsys, extra):
    args = ["lr-find", "--images", str(sample_dir), "--out", str(tmp_path / "out"), *extra]
    with pytest.raises(SystemExit):
        main(args)
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start-lr", "1", "--end-lr", "0.1"], "learning rates must rise"),
        (["--steps", "2"], "at least 5 steps"),
        (["--patch", "100"], "multiple of 32"),
        (["--encoder", "resnet35"], "unknown encoder"),
        (["--images", "/nonexistent"], "no such folder"),
    ],
)
def test_bad_settings_are_one_line(sample_dir, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    args = ["lr-find", "--images", str(sample_dir), "--out", str(out), *TINY, *extra]
    assert main(args) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("segqc lr-find: error: ") and message in err
    assert len(err.splitlines()) == 1 and "LR range test" not in captured.out
    assert not out.exists()
