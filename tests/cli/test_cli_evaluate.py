"""`segqc evaluate` and `segqc tune` on the sample data: the contract's files and columns, the
same numbers as `segqc qc`, checkpoint QC, comparison, tuning, and the error messages."""

import csv
import json
import re

import pytest

from conftest import TINY_TRAIN_ARGS as TINY
from napari_segqc.cli import main
from napari_segqc.core.qc.evaluate import EVALUATION_COLUMNS, SUMMARY_COLUMNS

COUNTS = ("n_gt", "n_pred", "tp", "fp", "fn", "merges", "splits")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run_dir(sample_dir, tmp_path_factory):
    """A tiny run with a checkpoint every epoch: epoch_001, epoch_002, best, last."""
    run = tmp_path_factory.mktemp("evaluate") / "run"
    args = ["train", "--images", str(sample_dir), "--out", str(run), *TINY]
    assert main([*args, "--epochs", "2", "--checkpoint-every", "1"]) == 0
    return run


@pytest.fixture(scope="module")
def builtin_eval(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate") / "builtin"
    data = ["--images", str(sample_dir / "images"), "--gt", str(sample_dir / "masks")]
    assert main(["evaluate", "--model", "nuclei", *data, "--out", str(out)]) == 0
    return out


def test_evaluate_writes_the_contract_files(builtin_eval):
    assert {p.name for p in builtin_eval.iterdir()} == {
        "evaluation.csv",
        "summary.csv",
        "evaluation.json",
        "report.html",
    }
    rows = _rows(builtin_eval / "evaluation.csv")
    assert tuple(rows[0]) == EVALUATION_COLUMNS and len(rows) == 4
    assert all(r["checkpoint"] == "" and r["epoch"] == "" for r in rows)
    (summary,) = _rows(builtin_eval / "summary.csv")
    assert tuple(summary) == SUMMARY_COLUMNS and summary["best"] == "1"
    assert summary["images"] == "4" and float(summary["seconds"]) > 0
    for key in COUNTS:  # summed counts are the sums of the per-image counts
        assert int(summary[key]) == sum(int(r[key]) for r in rows), key
    tp, fp, fn = (int(summary[k]) for k in ("tp", "fp", "fn"))
    assert float(summary["accuracy"]) == pytest.approx(tp / (tp + fp + fn))
    document = json.loads((builtin_eval / "evaluation.json").read_text())
    (model,) = document["models"]
    assert model["model"] == "nuclei" and len(model["images"]) == 4
    assert model["summary"]["objects"]["0.50"]["tp"] == tp


def test_evaluate_matches_predict_then_qc(builtin_eval, sample_dir, tmp_path, capsys):
    labels = tmp_path / "labels"
    predict = ["predict", "--model", "nuclei", "--input", str(sample_dir / "images")]
    assert main([*predict, "--out", str(labels)]) == 0
    capsys.readouterr()
    assert main(["qc", "--gt", str(sample_dir / "masks"), "--pred", str(labels), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    by_name = {r["image"]: r for r in _rows(builtin_eval / "evaluation.csv")}
    for entry in report["images"]:
        row, qc = by_name[entry["name"]], entry["objects"]["0.50"]
        for key in ("tp", "fp", "fn", "merges", "splits", "n_gt", "n_pred"):
            assert int(row[key]) == qc[key], (entry["name"], key)
        assert float(row["accuracy"]) == pytest.approx(qc["accuracy"], abs=1e-12)
        assert float(row["dsb_score"]) == pytest.approx(entry["dsb_score"], abs=1e-12)


def test_report_is_self_contained(builtin_eval):
    text = (builtin_eval / "report.html").read_text()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", text)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert not re.search(r"https?://|<link|<script|url\(", text)
    assert "nuclei" in text and "Best and worst images" in text


def test_checkpoint_qc_finds_the_epoch_files_and_promotes(run_dir, sample_dir, tmp_path):
    out = tmp_path / "ck"
    data = ["--images", str(sample_dir / "images"), "--gt", str(sample_dir / "masks")]
    args = ["evaluate", "--model", str(run_dir), "--checkpoints", *data, "--out", str(out)]
    assert main([*args, "--promote", "--metric", "f1"]) == 0
    summary = _rows(out / "summary.csv")
    assert [r["checkpoint"] for r in summary] == ["epoch_001", "epoch_002", "best", "last"]
    assert [r["epoch"] for r in summary][:2] == ["1", "2"]
    assert sum(r["best"] == "1" for r in summary) == 1
    best = next(r for r in summary if r["best"] == "1")
    assert float(best["f1"]) == max(float(r["f1"]) for r in summary)
    promoted = run_dir / "best_qc.safetensors"
    source = run_dir / f"{best['checkpoint']}.safetensors"
    assert promoted.read_bytes() == source.read_bytes()
    assert len(_rows(out / "evaluation.csv")) == 4 * 4
    assert "Checkpoints" in (out / "report.html").read_text()


def test_two_models_compared(run_dir, builtin_eval, sample_dir, tmp_path):
    out = tmp_path / "cmp"
    data = ["--images", str(sample_dir / "images"), "--gt", str(sample_dir / "masks")]
    assert main(["evaluate", "--model", "nuclei", "--model", str(run_dir), *data, "--out",
                 str(out)]) == 0  # fmt: skip
    rows = _rows(out / "evaluation.csv")
    assert [r["model"] for r in rows] == ["nuclei"] * 4 + ["run"] * 4
    alone = _rows(builtin_eval / "evaluation.csv")
    assert rows[:4] == alone  # the same numbers as evaluating the model alone
    text = (out / "report.html").read_text()
    assert "Comparison" in text and "wilcoxon_p" in text and "bootstrap_95" in text


def test_auto_scores_each_image_with_the_model_it_picks(builtin_eval, sample_dir, tmp_path):
    """`--model auto` writes every file (its report lists both built-in models' settings and
    cards); the grey fluorescence samples go to `nuclei`, so its numbers are nuclei's."""
    out = tmp_path / "auto"
    data = ["--images", str(sample_dir / "images"), "--gt", str(sample_dir / "masks")]
    assert main(["evaluate", "--model", "auto", *data, "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {p.name for p in builtin_eval.iterdir()}
    rows, alone = _rows(out / "evaluation.csv"), _rows(builtin_eval / "evaluation.csv")
    assert [r["model"] for r in rows] == ["auto"] * 4
    skip = ("model", "seconds")
    assert [{k: v for k, v in r.items() if k not in skip} for r in rows] == [
        {k: v for k, v in r.items() if k not in skip} for r in alone
    ]
    text = (out / "report.html").read_text()
    assert "nuclei-stained" in text and "nuclei_stained.safetensors" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/nonexistent/run"], "no such file or run folder"),
        (["--model", "SAMPLE", "--checkpoints"], "no checkpoints"),
        (["--model", "nuclei", "--gt", "UNPAIRED"], "no ground truth"),
        (["--model", "nuclei", "--promote"], "--promote needs --checkpoints"),
    ],
)
def test_evaluate_errors_are_one_line(args, message, sample_dir, tmp_path, capsys):
    gt = sample_dir / "masks"
    if "UNPAIRED" in args:
        gt = tmp_path / "gt"
        gt.mkdir()
        for f in list((sample_dir / "masks").glob("*.tif"))[:2]:
            (gt / f.name).write_bytes(f.read_bytes())
        args = [a for a in args if a not in ("--gt", "UNPAIRED")]
    args = [str(sample_dir) if a == "SAMPLE" else a for a in args]
    data = ["--images", str(sample_dir / "images"), "--gt", str(gt)]
    assert main(["evaluate", *args, *data, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_tune_never_lowers_the_score_on_its_set(run_dir, sample_dir, tmp_path, capsys):
    from napari_segqc.core.models.weights import load_weights
    from napari_segqc.core.predict.loading import read_config

    out = tmp_path / "tuned.safetensors"
    data = ["--images", str(sample_dir / "images"), "--gt", str(sample_dir / "masks")]
    assert main(["tune", "--model", str(run_dir), *data, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    before = float(re.search(r"model's settings (\S+)", text).group(1))
    after = float(re.search(r"tuned settings +(\S+)", text).group(1))
    assert after >= before
    tuned = read_config(out)
    note = load_weights(out, tensors=False)[1]["card"]["tuned_decoding"]
    assert note["set"]["n_images"] == 4 and note["after"] == pytest.approx(after, abs=1e-4)
    assert tuned.threshold == note["settings"]["threshold"]
    # the weights are untouched; the tuned file scores as printed when evaluated
    original, _ = load_weights(run_dir / "best.safetensors")
    copied, _ = load_weights(out)
    assert all((original[k] == copied[k]).all() for k in original)
    ev = tmp_path / "ev"
    assert main(["evaluate", "--model", str(out), *data, "--out", str(ev)]) == 0
    (row,) = _rows(ev / "summary.csv")
    assert float(row["accuracy"]) == pytest.approx(after, abs=1e-4)
