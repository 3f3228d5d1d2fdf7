"""The "Quality control" dock widget: compare a prediction layer with a ground-truth layer.

It only gathers inputs and shows outputs; :func:`napari_segqc.core.qc.run.iter_qc` does the
work in the dock's worker (:class:`.base.DockWidget`: progress bar, Stop, status line), the maps
become layers (:mod:`.layers`), the scores fill a table (:mod:`.score_table`) and the objects of
the slice in view another (:mod:`.object_table`).

When an input's data changes after a run (re-decoding, painting), small inputs (up to
:data:`AUTO_RUN_MAX_PIXELS`) are compared again by themselves after a pause; for bigger ones the
scores and maps are marked out of date until Run is pressed again.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, Container, FloatSpinBox, Label, PushButton
from napari.layers import Image, Labels, Layer
from qtpy.QtCore import QTimer

from ..core.errors import SegQCError
from ..core.qc.inputs import check_pair, to_grayscale
from ..core.qc.run import QCResult, iter_qc
from .base import DockWidget, wrapping
from .layers import (
    GREY_MAPS,
    METADATA_KEY,
    SEGMENT_METADATA_KEY,
    STALE,
    InputDimmer,
    layer_data,
    mark_stale,
    own_maps,
    remove_maps,
    show_maps,
)
from .map_legend import legend_html
from .object_table import ObjectPanel
from .qc_watch import DataWatch, image_like_warning
from .score_table import ScoreTable

#: Layer names that look like a ground truth: "ground truth", "gt", "nuclei_gt", "GT-masks"...
_GT_NAME = re.compile(r"ground[ _-]?truth|(?<![a-z])gt(?![a-z])", re.IGNORECASE)
#: Inputs up to this many pixels in all are compared again by themselves when they change.
AUTO_RUN_MAX_PIXELS = 4_000_000
#: The pause after the last change before that run (painting sends an event per stroke).
AUTO_RUN_DELAY_MS = 400


def _side(layer: Layer, job: dict[str, Any]) -> str:
    return "prediction" if layer is job.get("pred_layer") else "ground truth"


class QCWidget(DockWidget):
    """Pick a prediction and a ground truth, Run: scores in the table, maps as layers."""

    task = "quality control"
    busy_text = "comparing..."

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        self._job: dict[str, Any] = {}
        #: The run whose results are shown: its layers, threshold..., and its map layers.
        self._shown: dict[str, Any] = {}
        self.report: dict[str, Any] | None = None
        self.stale = False
        self._auto_next = False  # the next run is one this dock started by itself
        self._pending = False  # an input changed during a run: run once more after it
        self._warning = ""  # about the inputs (a Labels layer that looks like an image)

        self.pred_combo = self.layer_picker("Prediction", Image, Labels)
        self.gt_combo = self.layer_picker("Ground truth", Image, Labels)
        self.threshold = FloatSpinBox(
            label="IoU threshold τ",
            value=0.5,
            min=0.05,
            max=1.0,
            step=0.05,
            tooltip="Objects match when their IoU is at least τ (maps and table; the report "
            "also holds the sweep 0.50:0.05:0.95)",
        )
        self.auto_foreground = CheckBox(
            text="Otsu threshold for Image layers",
            value=True,
            tooltip="How an Image layer (e.g. a probability map) becomes foreground",
        )
        self.foreground = FloatSpinBox(
            label="Foreground threshold", value=0.5, min=-1e9, max=1e9, step=0.05, visible=False
        )
        self.show_maps = CheckBox(text="Add error and object IoU maps as layers", value=True)
        self.grey_maps = CheckBox(
            text="SSIM and RSE maps (for grey-value images)",
            value=False,
            tooltip="They compare grey values: ticked by itself when an input is an Image "
            "layer; for Labels vs Labels they compare the binary foregrounds",
        )
        self.legend = wrapping(Label(value=legend_html(grey_maps=False)))
        self.table = ScoreTable()
        self.columns_button = PushButton(text="Columns...", tooltip="Choose the score columns")
        self.export_button = PushButton(text="Export CSV...", enabled=False)
        self.objects = ObjectPanel(
            napari_viewer,
            notify=self.show_info,
            ask_path=partial(self._ask_path, "Export objects", "qc_objects.csv"),
            error=self.show_error,
        )
        form = Container(
            widgets=[
                self.pred_combo,
                self.gt_combo,
                self.threshold,
                self.auto_foreground,
                self.foreground,
                self.show_maps,
                self.grey_maps,
                self.run_panel,
            ],
            labels=True,
        )
        table_buttons = Container(
            widgets=[self.columns_button, self.export_button], layout="horizontal", labels=False
        )
        table_buttons.margins = (0, 0, 0, 0)
        self.add(form, self.legend, self.table, table_buttons, self.objects)
        self.export_button.changed.connect(lambda: self.export_csv())
        self.columns_button.changed.connect(self._show_column_menu)
        self.auto_foreground.changed.connect(self._on_auto_foreground)
        self.show_maps.changed.connect(self._on_show_maps)
        self.grey_maps.changed.connect(self._on_grey_maps)
        self.table.slice_clicked.connect(self.go_to_slice)
        self._dimmer = InputDimmer()
        self._watch = DataWatch(self._on_input_changed)
        self._timer = QTimer(self.native)
        self._timer.setSingleShot(True)
        self._timer.setInterval(AUTO_RUN_DELAY_MS)
        self._timer.timeout.connect(self._auto_run)
        self.reset_choices()
        self._select_defaults()
        for combo in (self.pred_combo, self.gt_combo):
            combo.changed.connect(self._on_picks_changed)
        self._on_picks_changed()

    def on_layers_changed(self, event) -> None:
        new = event.value if event.type == "inserted" else None
        if isinstance(new, Labels) and new.metadata.get(SEGMENT_METADATA_KEY):
            self.pred_combo.value = new  # just segmented: the labels to check next
        elif self.pred_combo.value is None or self.pred_combo.value is self.gt_combo.value:
            self._select_defaults()
        self._watch.watch([self.pred_combo.value, self.gt_combo.value])

    def _select_defaults(self) -> None:
        """Ground truth: a Labels layer named like 'ground truth'/'gt'; prediction: another.

        The maps this widget made are never picked (their names hold the ground truth's).
        """
        labels = [
            ly
            for ly in self.pred_combo.choices
            if isinstance(ly, Labels) and METADATA_KEY not in ly.metadata
        ]
        gts = [ly for ly in labels if _GT_NAME.search(ly.name)]
        if gts:
            self.gt_combo.value = gts[0]
            others = [ly for ly in labels if ly is not gts[0]]
            if others:
                self.pred_combo.value = others[-1]

    def _on_auto_foreground(self, auto: bool) -> None:
        self.foreground.visible = not auto

    def _on_show_maps(self, on: bool) -> None:
        self.grey_maps.enabled = bool(on)

    def _on_grey_maps(self, on: bool) -> None:
        self.legend.value = legend_html(grey_maps=bool(on))

    def _show_column_menu(self) -> None:
        native = self.columns_button.native
        self.table.column_menu(native).exec(native.mapToGlobal(native.rect().bottomLeft()))

    def _on_picks_changed(self, *_: Any) -> None:
        """New picks: follow their data, SSIM/RSE maps on for grey values, warn about
        Labels layers that look like images."""
        picks = [self.pred_combo.value, self.gt_combo.value]
        self._watch.watch(picks)
        self.grey_maps.value = any(isinstance(layer, Image) for layer in picks)
        self._warning = image_like_warning(picks)
        if self._warning:
            self.set_status(self._warning)
        elif not self.running and not self.status.is_error and not self.stale:
            self.set_status("")

    # --- inputs that change after a run -----------------------------------------------------
    def _on_input_changed(self, layer: Layer) -> None:
        """The data of a picked layer changed: rerun (small) or mark out of date (big)."""
        job = self._job if self.running else self._shown
        if layer is not job.get("gt_layer") and layer is not job.get("pred_layer"):
            return  # not what the table shows (nor what is being computed)
        if self.running:
            self._pending = True
            return
        if self._auto_allowed():
            self._timer.start()
        else:
            self.mark_stale(f"out of date: the {_side(layer, job)} changed — Run again")

    def _auto_allowed(self) -> bool:
        shown = self._shown
        gt, pred = shown.get("gt_layer"), shown.get("pred_layer")
        if gt is None or gt is not self.gt_combo.value or pred is not self.pred_combo.value:
            return False  # the picks moved on: a run would compare something else
        size = int(np.prod(gt.data.shape, dtype=np.int64))
        return size + int(np.prod(pred.data.shape, dtype=np.int64)) <= AUTO_RUN_MAX_PIXELS

    def _auto_run(self) -> None:
        if self.running:
            self._pending = True
        elif self._auto_allowed():
            self._auto_next = True
            self.run()
        elif self._shown:
            self.mark_stale("out of date: an input changed — Run again")

    def mark_stale(self, message: str) -> None:
        """The shown scores and maps no longer match the inputs: say so, grey them out."""
        self.stale = True
        self.set_status(message)
        self.table.set_stale(True)
        self.objects.set_stale(True)
        mark_stale(self._live_maps(), True)
        self.run_button.text = "Run again"

    def _live_maps(self) -> list[Layer]:
        """The shown run's map layers still in the viewer under their names (a map the user
        renamed is theirs: never touched)."""
        return [
            layer
            for layer, name in self._shown.get("maps", [])
            if layer in self.viewer.layers and layer.name in (name, name + STALE)
        ]

    def on_finished(self) -> None:
        if self._pending:  # an input changed while it ran: once more, after the pause
            self._pending = False
            self._timer.start()

    # --- the run ----------------------------------------------------------------------------
    def prepare(self):
        """Check the inputs at once; the comparison itself runs in the worker."""
        auto, self._auto_next = self._auto_next, False
        self._timer.stop()
        self._pending = False
        pred, gt = self.pred_combo.value, self.gt_combo.value
        if pred is None or gt is None:
            raise SegQCError("pick a prediction layer and a ground-truth layer (Labels or Image)")
        if pred is gt:
            raise SegQCError(f"{pred.name!r} is picked as both prediction and ground truth")
        arrays = []
        for layer in (gt, pred):
            # lazy data (dask, a multiscale layer's level 0) stays lazy: read slice by slice
            data = layer_data(layer)
            if isinstance(layer, Image) and layer.rgb:
                data = to_grayscale(np.asarray(data))
            arrays.append(data)
        check_pair(arrays[0], arrays[1], gt_name=gt.name, pred_name=pred.name)
        warning = image_like_warning([pred, gt])
        if warning and not auto:
            self.show_warning(f"SegQC: {warning}")
        foreground = None if self.auto_foreground.value else float(self.foreground.value)
        self._job = {
            "gt_layer": gt,
            "pred_layer": pred,
            "threshold": self.threshold_value(),
            "foreground_threshold": foreground,
            "auto": auto,
            "warning": warning,
            "maps": bool(self.show_maps.value),
            "grey_maps": bool(self.grey_maps.value),
        }
        return partial(
            iter_qc,
            arrays[0],
            arrays[1],
            name=f"{pred.name} vs {gt.name}",
            gt_is_labels=isinstance(gt, Labels),
            pred_is_labels=isinstance(pred, Labels),
            threshold=self._job["threshold"],
            foreground_threshold=foreground,
            maps=self._job["maps"],
        )

    def threshold_value(self) -> float:
        return round(float(self.threshold.value), 2)

    def on_yielded(self, progress) -> None:
        self.set_progress(progress.done, progress.total)

    def on_returned(self, result: QCResult) -> None:
        job = self._job
        pred, gt = job["pred_layer"], job["gt_layer"]
        self.report = result.report
        old = list(own_maps(self.viewer, pred.name, gt.name).values())  # this pair's, by name
        if self._shown.get("pred_layer") is pred and self._shown.get("gt_layer") is gt:
            old += [ly for ly in self._live_maps() if ly not in old]  # (inputs renamed since)
        maps: list[Layer] = []
        if result.maps is not None:
            kinds = ["error", "object_iou"] + (list(GREY_MAPS) if job["grey_maps"] else [])
            maps = show_maps(
                self.viewer, result.maps, pred, gt, kinds=kinds, select=not job["auto"]
            )
            error = next(ly for ly in maps if ly.metadata.get(METADATA_KEY) == "error")
            self._dimmer.link(error, [pred, gt], dim_now=not job["auto"])
        for layer in old:
            if layer not in maps:
                if layer.metadata.get(METADATA_KEY) == "error":
                    self._dimmer.forget(layer)
                remove_maps(self.viewer, [layer])  # unticked maps must not look current
        self._shown = {**job, "maps": [(layer, layer.name) for layer in maps]}
        self.stale = False
        self.run_button.text = "Run"
        labels_only = isinstance(pred, Labels) and isinstance(gt, Labels)
        self.table.set_report(result.report, job["threshold"])
        self.table.mark_grey_scores(labels_only)
        self.export_button.enabled = True
        self.objects.set_source(
            gt, pred, threshold=job["threshold"], foreground_threshold=job["foreground_threshold"]
        )
        obj = result.report["objects"][result.report["threshold"]]
        message = (
            f"{result.report['name']}: F1 {obj['f1']:.3f}, accuracy {obj['accuracy']:.3f} "
            f"at IoU {result.report['threshold']}"
        )
        status = f"{message}. Warning: {job['warning']}" if job["warning"] else message
        if job["auto"]:
            self.set_status(f"updated after the change: {status}")
        else:
            self.show_info(f"SegQC: {message}", status=status)

    def on_aborted(self) -> None:
        self.show_info("SegQC: quality control stopped; no layers or scores were changed")
        if self.stale:
            self.run_button.text = "Run again"

    def go_to_slice(self, index: tuple[int, ...]) -> None:
        """Move the viewer to a slice of the compared stack (leading axes of the layers).

        The slice is placed in world coordinates through the ground-truth layer, so a stack
        with a scale or translate (e.g. z-spacing) still lands on the right slice.
        """
        dims, gt = self.viewer.dims, self._job.get("gt_layer")
        offset = dims.ndim - (len(index) + 2)
        if gt is None or gt not in self.viewer.layers or gt.ndim != len(index) + 2:
            for axis, value in enumerate(index):
                dims.set_current_step(offset + axis, value)
            return
        world = gt.data_to_world([*index, 0, 0])
        for axis in range(len(index)):
            dims.set_point(offset + axis, float(world[axis]))

    def export_csv(self, path: str | None = None) -> None:
        """Save the table as CSV (asks for a file name when ``path`` is None)."""
        if self.report is None:
            self.show_error("run quality control first: there are no scores to export")
            return
        path = path or self._ask_path("Export scores", "qc_scores.csv")
        if path:
            written = self.table.export_csv(path)
            self.show_info(f"SegQC: scores written to {written}")

    def _ask_path(self, title: str, default: str) -> str:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self.native, title, default, "CSV files (*.csv)")
        return path
