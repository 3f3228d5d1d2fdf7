"""The Model QC dock in a real napari viewer: evaluate, click a row or a point, layers appear,
export the report, tune the decoding and offer the tuned model to Segment."""

from __future__ import annotations

import re

import numpy as np
import pytest

from napari_segqc._widgets.session import TRAINED_MODELS


def _wait(qtbot, w, timeout=120_000):
    qtbot.waitUntil(lambda: w.run_button.enabled, timeout=timeout)


@pytest.fixture
def dock(make_napari_viewer):
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-segqc", "Model QC")
    return w


def test_folders_evaluated_row_click_opens_layers_and_report(qtbot, dock, sample_dir, tmp_path):
    from napari_segqc.core.qc.evaluate import evaluate as run_evaluation
    from napari_segqc.core.qc.evaluate import load_qc_set, model_specs

    dock.images_dir.value = sample_dir / "images"
    dock.gt_dir.value = sample_dir / "masks"
    dock.add_model("nuclei")
    dock.run()
    _wait(qtbot, dock)
    assert not dock.status.is_error, dock.status.value
    assert dock.table.rowCount() == 4 and "best nuclei" in dock.status.value
    # the dock's numbers are the core's
    qc_set = load_qc_set(sample_dir / "images", sample_dir / "masks")
    core = run_evaluation(model_specs(["nuclei"]), qc_set)
    assert [r["tp"] for r in dock.evaluation.rows] == [r["tp"] for r in core.rows]
    dock.table.sortItems(1)  # sorted by image; the click follows the row's own cells
    dock.table.cellClicked.emit(2, 0)
    image = dock.table.item(2, 1).text()
    names = {layer.name for layer in dock.viewer.layers}
    assert {
        image,
        f"{image} ground truth",
        f"{image} nuclei",
        f"Error map [{image} nuclei]",
    } <= names
    error = dock.viewer.layers[f"Error map [{image} nuclei]"].data
    assert error.shape == dock.viewer.layers[image].data.shape and {1, 3} <= set(np.unique(error))
    for kind in ("per image", "A vs B", "checkpoints"):
        dock.plot_choice.value = kind  # redraws; A vs B and checkpoints say what they need
    dock.plot.on_pick("nuclei", "nuclei_01")  # a clicked bar opens that image
    assert "nuclei_01 ground truth" in dock.viewer.layers
    report = tmp_path / "report.html"
    dock.export_report(str(report))
    text = report.read_text()
    assert "nuclei_01" in text and not re.search(r"https?://|<link|<script", text)


def test_layer_pairs_compare_two_models_and_tune(qtbot, dock, sample_pair, tmp_path):
    image, labels = sample_pair
    viewer = dock.viewer
    viewer.add_image(image[:128, :128], name="crop")
    viewer.add_labels(labels[:128, :128], name="crop gt")
    dock.source.value = "Layers"
    dock.image_combo.value = viewer.layers["crop"]
    dock.labels_combo.value = viewer.layers["crop gt"]
    dock.add_pair()
    dock.add_model("nuclei")
    dock.add_model("nuclei")  # the same model twice: labels made unique, numbers equal
    dock.run()
    _wait(qtbot, dock)
    keys = [s.key for s in dock.evaluation.specs]
    assert keys == ["nuclei", "nuclei_2"]
    a, b = dock.evaluation.rows
    assert a["tp"] == b["tp"] and a["accuracy"] == b["accuracy"]
    dock.plot_choice.value = "A vs B"
    dest = tmp_path / "tuned.safetensors"
    dock.tune(str(dest))
    _wait(qtbot, dock)
    assert dest.is_file() and TRAINED_MODELS[-1] == dest
    assert "is offered in Segment" in dock.status.value
    before, after = (float(v) for v in re.findall(r"(\d\.\d{3})", dock.status.value)[:2])
    assert after >= before


def test_run_without_models_or_data_says_what_is_missing(dock, errors):
    dock.run()
    assert "add a model" in dock.status.value and dock.status.is_error
    dock.add_model("nuclei")
    dock.run()
    assert "folder of the QC set" in dock.status.value
    assert len(errors) == 2


def test_auto_is_offered_and_evaluates_per_image(qtbot, dock, sample_dir, tmp_path):
    from napari_segqc._widgets.model_qc_widget import AUTO_CHOICE

    assert AUTO_CHOICE in dock.model_combo.choices
    dock.images_dir.value = sample_dir / "images"
    dock.gt_dir.value = sample_dir / "masks"
    dock.model_combo.value = AUTO_CHOICE
    dock.add_model()
    assert dock.models.item(0).text() == "auto"
    dock.run()
    _wait(qtbot, dock)
    assert not dock.status.is_error, dock.status.value
    assert dock.table.rowCount() == 4 and "best auto" in dock.status.value
    report = tmp_path / "auto.html"  # the report lists both built-in models auto chose from
    dock.export_report(str(report))
    assert not dock.status.is_error, dock.status.value
    assert "nuclei-stained" in report.read_text()


def test_layers_report_and_tuning_follow_the_last_run_tta(qtbot, dock, sample_pair):
    """A run with flip TTA, then one without: the cache holds both, and what the dock opens,
    reports and tunes is the last run's (not whichever the cache happens to hold)."""
    from napari_segqc.core.qc.evaluate import PredictionCache
    from napari_segqc.core.qc.html_report import report_labels

    image, labels = sample_pair
    dock.viewer.add_image(image[:96, :96], name="crop")
    dock.viewer.add_labels(labels[:96, :96], name="crop gt")
    dock.source.value = "Layers"
    dock.image_combo.value = dock.viewer.layers["crop"]
    dock.labels_combo.value = dock.viewer.layers["crop gt"]
    dock.add_pair()
    dock.add_model("nuclei")
    for tta in (True, False):
        dock.tta.value = tta
        dock.run()
        _wait(qtbot, dock)
        assert dock.evaluation_tta is tta
    spec = dock.evaluation.specs[0]
    plain, flipped = (PredictionCache.key(spec.source, "crop gt", t) for t in (False, True))
    assert plain in dock.cache.labels and flipped in dock.cache.labels
    shown = report_labels(dock.evaluation, dock.cache)
    assert shown["nuclei", "crop gt"] is dock.cache.labels[plain]
    dock.open_image("nuclei", "crop gt")
    assert np.array_equal(dock.viewer.layers["crop gt nuclei"].data, dock.cache.labels[plain])
