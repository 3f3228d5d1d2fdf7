"""The "Model QC" dock: models (or a run's checkpoints) scored over a QC set, compared, opened
image by image in the viewer, the HTML report exported and the decoding tuned.

The work is :mod:`napari_segqc.core.qc.evaluate` (and :mod:`~napari_segqc.core.qc.tune`) in
the dock's worker; maps and labels stay in a :class:`PredictionCache`, so opening an image,
re-plotting or tuning never runs a network again.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    RadioButtons,
)
from napari.layers import Image, Labels
from qtpy.QtWidgets import QAbstractItemView, QListWidget, QTableWidget, QTableWidgetItem

from ..core.errors import SegQCError
from ..core.models.builtin import BUILTIN_MODELS, BUILTIN_TITLES
from ..core.models.formats import MODEL_FILE_FILTER
from ..core.qc.evaluate import METRICS, PredictionCache, QCPair, row_key
from ..core.qc.tune import TUNE_METRICS
from .base import DockWidget
from .model_qc_jobs import evaluate_job, tune_job
from .model_qc_plots import PLOTS, ModelQCPlot
from .session import TRAINED_MODELS

FILE_CHOICE = "run folder or file..."
AUTO_CHOICE = "auto (the built-in model that fits each image)"
TABLE_COLUMNS = ("model", "image", "accuracy", "f1", "tp", "fp", "fn", "merges", "splits")


class ModelQCWidget(DockWidget):
    """Evaluate, compare and tune models on a QC set, in the viewer."""

    task = "model QC"
    busy_text = "evaluating..."

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        self.cache = PredictionCache()
        self.evaluation = None
        self.qc_set: list[QCPair] = []
        self._pairs: list[tuple[Image, Labels]] = []
        self._mode = "evaluate"
        self.source = RadioButtons(
            label="QC data",
            choices=["Folders", "Layers"],
            value="Folders",
            orientation="horizontal",
        )
        self.images_dir = FileEdit(label="Images", mode="d")
        self.gt_dir = FileEdit(label="Ground truth", mode="d", tooltip="labels, paired by name")
        self.image_combo = self.layer_picker("Image", Image, visible=False)
        self.labels_combo = self.layer_picker("Labels", Labels, exact=True, visible=False)
        self.add_pair_button = PushButton(text="Add pair")
        self.pairs_label = Label(value="no pairs yet", visible=False)
        self.model_combo = ComboBox(label="Model", choices=self._model_choices)
        self.model_path = FileEdit(
            label="Model file", mode="r", visible=False, filter=MODEL_FILE_FILTER
        )
        self.add_model_button = PushButton(text="Add model")
        self.remove_model_button = PushButton(text="Remove")
        self.models = QListWidget()
        self.models.setMaximumHeight(70)
        self.checkpoints = CheckBox(text="Every checkpoint of a run folder", value=False)
        self.threshold = FloatSpinBox(
            label="IoU threshold τ", value=0.5, min=0.05, max=1.0, step=0.05
        )
        self.metric = ComboBox(label="Best by", choices=list(METRICS), value="accuracy")
        self.tta = CheckBox(text="Flip test-time augmentation", value=False)
        self.device = ComboBox(label="Device", choices=["auto", "cpu", "cuda", "mps"])
        self.plot_choice = ComboBox(label="Plot", choices=list(PLOTS))
        self.plot = ModelQCPlot(getattr(napari_viewer, "theme", "dark"), self.open_image)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setMinimumHeight(160)
        self.export_button = PushButton(text="Export report...", enabled=False)
        self.tune_button = PushButton(text="Tune decoding", enabled=False)
        row = partial(Container, layout="horizontal", labels=False)
        self.pair_row = row(widgets=[self.add_pair_button], visible=False)
        self.add(
            Container(
                widgets=[
                    self.source,
                    self.images_dir,
                    self.gt_dir,
                    self.image_combo,
                    self.labels_combo,
                ],
                labels=True,
            ),
            self.pair_row,
            self.pairs_label,
            Container(widgets=[self.model_combo, self.model_path], labels=True),
            row(widgets=[self.add_model_button, self.remove_model_button]),
            self.models,
            self.checkpoints,
            Container(widgets=[self.threshold, self.metric, self.device], labels=True),
            self.tta,
            self.run_panel,
            Container(widgets=[self.plot_choice], labels=True),
            self.plot,
            self.table,
            row(widgets=[self.export_button, self.tune_button]),
        )
        self.source.changed.connect(self._on_source)
        self.model_combo.changed.connect(self._on_model_choice)
        self.add_pair_button.changed.connect(self.add_pair)
        self.add_model_button.changed.connect(lambda: self.add_model())
        self.remove_model_button.changed.connect(self.remove_model)
        self.plot_choice.changed.connect(self._replot)
        self.metric.changed.connect(self._replot)
        self.export_button.changed.connect(lambda: self.export_report())
        self.tune_button.changed.connect(lambda: self.tune())
        self.table.cellClicked.connect(self._on_cell)

    # --- inputs ---------------------------------------------------------------------------
    def _model_choices(self, _w=None) -> list[str]:
        names = [BUILTIN_TITLES.get(n, n) for n, p in BUILTIN_MODELS.items() if p.is_file()]
        names += [f"trained: {p}" for p in reversed(TRAINED_MODELS)]
        return [*names, AUTO_CHOICE, FILE_CHOICE]

    def _on_model_choice(self, value) -> None:
        self.model_path.visible = value == FILE_CHOICE

    def _on_source(self, value: str) -> None:
        layers = value == "Layers"
        for w in (self.image_combo, self.labels_combo, self.pair_row, self.pairs_label):
            w.visible = layers
        self.images_dir.visible = self.gt_dir.visible = not layers

    def add_model(self, source: str | None = None) -> None:
        """Add a model to evaluate (the choice shown, or ``source``)."""
        if source is None:
            value = self.model_combo.value
            titles = {t: n for n, t in BUILTIN_TITLES.items()} | {AUTO_CHOICE: "auto"}
            if value == FILE_CHOICE:
                source = str(self.model_path.value)
                if not Path(source).exists() or source in ("", "."):
                    self.show_error(f"choose a run folder or a model file ({source})")
                    return
            else:
                source = titles.get(value, value.removeprefix("trained: "))
        self.models.addItem(str(source))

    def remove_model(self) -> None:
        for item in self.models.selectedItems() or [self.models.item(self.models.count() - 1)]:
            if item is not None:
                self.models.takeItem(self.models.row(item))

    def add_pair(self) -> None:
        image, labels = self.image_combo.value, self.labels_combo.value
        if image is None or labels is None:
            self.show_error("pick an Image layer and a Labels layer to add as a QC pair")
            return
        if (image, labels) not in self._pairs:
            self._pairs.append((image, labels))
        self.pairs_label.value = "; ".join(f"{i.name} + {m.name}" for i, m in self._pairs)

    def _qc_loader(self):
        from ..core.qc.evaluate import load_qc_set

        if self.source.value == "Folders":
            images, gt = Path(self.images_dir.value), Path(self.gt_dir.value)
            for what, folder in (("images", images), ("ground truth", gt)):
                if not folder.is_dir() or str(folder) in ("", "."):
                    raise SegQCError(f"choose the {what} folder of the QC set ({folder})")
            return lambda: load_qc_set(images, gt)
        if not self._pairs:
            raise SegQCError("add at least one (image, labels) pair, or use folders")
        pairs = [QCPair(m.name, np.asarray(i.data), np.asarray(m.data)) for i, m in self._pairs]
        for p in pairs:
            plane = p.image.shape[:-1] if p.image.ndim == p.gt.ndim + 1 else p.image.shape
            if plane != p.gt.shape or p.gt.ndim != 2:
                raise SegQCError(f"{p.name}: need a 2-D image and labels of the same size")
        return lambda: pairs

    @property
    def evaluation_tta(self) -> bool:
        """Whether the shown evaluation ran with flip TTA (what opening, the report and tuning
        use, whatever else the cache holds)."""
        return self.evaluation is not None and self.evaluation.tta

    # --- evaluation -----------------------------------------------------------------------
    def prepare(self):
        from ..core.qc.evaluate import model_specs

        self._mode = "evaluate"
        sources = [self.models.item(i).text() for i in range(self.models.count())]
        if not sources:
            raise SegQCError("add a model to evaluate (built-in, run folder or file)")
        specs = model_specs(sources, checkpoints=bool(self.checkpoints.value))
        load = self._qc_loader()
        threshold = round(float(self.threshold.value), 2)
        return partial(
            evaluate_job,
            specs,
            load,
            threshold,
            bool(self.tta.value),
            self.device.value,
            self.cache,
        )

    def on_yielded(self, value) -> None:
        if isinstance(value, tuple):  # tuning: (trials, best)
            self.set_status(f"tuning: {value[0]} settings tried, best {value[1]:.4f}")
            return
        self.set_progress(value.done, value.total)
        self.set_status(f"{value.model}: {value.image} ({value.done}/{value.total})")

    def on_returned(self, result) -> None:
        if self._mode == "tune":
            return self._on_tuned(result)
        self.qc_set, self.evaluation = result
        self._fill_table()
        self._replot()
        self.export_button.enabled = self.tune_button.enabled = True
        best = next(r for r in self.evaluation.summary_rows(self.metric.value) if r["best"])
        metric = self.metric.value
        self.show_info(
            f"SegQC: best {row_key(best)}: {metric} {best[metric]:.3f} on {len(self.qc_set)} images"
        )
        return None

    def _fill_table(self) -> None:
        rows = self.evaluation.rows
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            values = {**r, "model": row_key(r)}
            for j, col in enumerate(TABLE_COLUMNS):
                v = values[col]
                item = QTableWidgetItem(f"{v:.3f}" if isinstance(v, float) else str(v))
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self.table.setSortingEnabled(True)

    def _replot(self, _value=None) -> None:
        if self.evaluation is not None:
            self.plot.plot(self.plot_choice.value, self.evaluation, self.metric.value)

    def _on_cell(self, row: int, _column: int) -> None:
        model = self.table.item(row, TABLE_COLUMNS.index("model")).text()
        self.open_image(model, self.table.item(row, TABLE_COLUMNS.index("image")).text())

    def open_image(self, model: str, image: str) -> None:
        """Show an image of the QC set with its ground truth, and the labels and error map of
        every evaluated model (layers named after the model), from the cache."""
        from ..core.qc.pixel import error_map
        from .layers import error_colormap

        pair = next((p for p in self.qc_set if p.name == image), None)
        if pair is None or self.evaluation is None:
            return
        tta = self.evaluation.tta
        layers = [
            (pair.image, {"name": image}, "image"),
            (pair.gt, {"name": f"{image} ground truth", "opacity": 0.5}, "labels"),
        ]
        for spec in self.evaluation.specs:
            labels = self.cache.labels.get(PredictionCache.key(spec.source, image, tta))
            if labels is None:
                continue
            errors = error_map(pair.gt, labels, threshold=self.evaluation.threshold)
            layers.append((labels, {"name": f"{image} {spec.key}", "visible": False}, "labels"))
            layers.append(
                (
                    errors,
                    {
                        "name": f"Error map [{image} {spec.key}]",
                        "colormap": error_colormap(),
                        "visible": spec.key == model,
                    },
                    "labels",
                )
            )
        for data, options, kind in layers:
            name = options["name"]
            if name in self.viewer.layers:
                self.viewer.layers[name].data = data
                continue
            add = self.viewer.add_image if kind == "image" else self.viewer.add_labels
            add(data, **options)
        self.set_status(f"opened {image} ({len(layers) - 2} layers of models)")

    # --- report and tuning ----------------------------------------------------------------
    def export_report(self, path: str | None = None) -> None:
        """Write the self-contained HTML report (asks for a file name when ``path`` is None)."""
        from ..core.io import write_text
        from ..core.qc.html_report import render_report, report_labels

        if self.evaluation is None:
            self.show_error("run an evaluation first: there is nothing to report")
            return
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(
                self.native, "Export report", "report.html", "HTML files (*.html)"
            )
            if not path:
                return
        labels = report_labels(self.evaluation, self.cache)
        text = render_report(self.evaluation, self.qc_set, labels, metric=self.metric.value)
        self.show_info(f"SegQC: report written to {write_text(path, text)}")

    def tune(self, dest: str | None = None) -> None:
        """Tune the first model's decoding on the QC set (no network), write the tuned model
        (asks where when ``dest`` is None) and offer it to the Segment dock."""
        if self.evaluation is None or self.running:
            self.show_error("run an evaluation first: tuning reuses its predictions")
            return
        spec = self.evaluation.specs[0]
        tta = self.evaluation.tta
        keys = [PredictionCache.key(spec.source, p.name, tta) for p in self.qc_set]
        maps = [self.cache.maps.get(k) for k in keys]
        scales = [self.cache.factors.get(k, 1.0) for k in keys]
        if any(m is None for m in maps):
            self.show_error("the predictions of this model are not in the cache: run again")
            return
        if dest is None:
            from qtpy.QtWidgets import QFileDialog

            dest, _ = QFileDialog.getSaveFileName(
                self.native, "Save the tuned model", "tuned.safetensors", "*.safetensors"
            )
            if not dest:
                return
        metric = self.metric.value if self.metric.value in TUNE_METRICS else "accuracy"
        gts, names = [p.gt for p in self.qc_set], [p.name for p in self.qc_set]
        threshold = self.evaluation.threshold
        config = self.evaluation.configs[0]
        self._mode = "tune"
        job = partial(
            tune_job, config, maps, scales, gts, metric, threshold, spec.source, dest, names
        )
        self.start_job(job, busy_text="tuning the decoding...")

    def _on_tuned(self, result) -> None:
        tuned, path = result
        TRAINED_MODELS.append(path)
        self.show_info(
            f"SegQC: tuned decoding {tuned.metric} {tuned.before:.3f} -> {tuned.after:.3f} on "
            f"{len(self.qc_set)} images; {path.name} is offered in Segment"
        )
        self._mode = "evaluate"
