"""`segqc evaluate --workers N`: every (model, image) predicted and scored on a local dask
cluster (127.0.0.1), with the single-process files (but for the seconds it took)."""

from __future__ import annotations

import csv
import re

import pytest

from napari_segqc.cli import main


def _evaluate(sample_dir, out, *extra) -> int:
    data = ["--images", str(sample_dir / "images"), "--gt", str(sample_dir / "masks")]
    return main(["evaluate", "--model", "nuclei", *data, "--out", str(out), *extra])


def _without_seconds(path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        assert float(row.pop("seconds")) > 0
    return rows


def test_workers_give_the_single_process_evaluation(sample_dir, tmp_path, capsys):
    here, there = tmp_path / "here", tmp_path / "there"
    assert _evaluate(sample_dir, here, "--threshold", "0.6") == 0
    text_here = capsys.readouterr().out
    assert _evaluate(sample_dir, there, "--threshold", "0.6", "--workers", "2") == 0
    text_there = capsys.readouterr().out
    assert text_there.replace("there", "here") == text_here
    for name in ("evaluation.csv", "evaluation.json"):
        assert (here / name).read_bytes() == (there / name).read_bytes(), name
    assert _without_seconds(here / "summary.csv") == _without_seconds(there / "summary.csv")
    # the HTML report differs only in the seconds cell of the summary table and, when the two
    # runs straddle a minute, in its time stamp
    html = [(d / "report.html").read_text() for d in (here, there)]
    html = [re.sub(r"<td>[0-9.]+</td><td>1</td></tr>", "", text) for text in html]
    html = [re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "STAMP", text) for text in html]
    assert all("STAMP" in text for text in html)
    assert html[0] == html[1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "0"], "--workers must be at least 1, got 0"),
        (["--scheduler", "tcp://"], "--scheduler 'tcp://': give a dask scheduler address"),
    ],
)
def test_bad_cluster_options_are_one_line_errors(sample_dir, tmp_path, capsys, extra, message):
    assert _evaluate(sample_dir, tmp_path, *extra) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
