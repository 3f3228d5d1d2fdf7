"""The "Quality control" dock widget: compare a prediction layer with a ground-truth layer.

It only gathers inputs and shows outputs; :func:`napari_segqc.core.qc.run.iter_qc` does the
work in the dock's worker (:class:`.base.DockWidget`: progress bar, Stop, status line), the maps
become layers (:mod:`.layers`) and the scores fill a table (:mod:`.score_table`).
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, Container, FloatSpinBox, Label, PushButton
from napari.layers import Image, Labels

from ..core.errors import SegQCError
from ..core.qc.inputs import check_pair, to_grayscale
from ..core.qc.pixel import ERROR_CLASSES, ERROR_COLORS
from ..core.qc.run import QCResult, iter_qc
from .base import DockWidget, wrapping
from .layers import METADATA_KEY, SEGMENT_METADATA_KEY, show_maps
from .score_table import ScoreTable

#: Layer names that look like a ground truth: "ground truth", "gt", "nuclei_gt", "GT-masks"...
_GT_NAME = re.compile(r"ground[ _-]?truth|(?<![a-z])gt(?![a-z])", re.IGNORECASE)


def _nobreak(text: str) -> str:
    return text.replace(" ", "&nbsp;").replace("-", "&#8209;")


def _legend_html() -> str:
    """The error map's colours as a small two-column HTML table."""
    cells = [
        f'<td><span style="color:{ERROR_COLORS[v][:7]}">&#9632;</span>&nbsp;{_nobreak(name)}</td>'
        for v, name in ERROR_CLASSES.items()
        if v
    ]
    rows = ["<tr>" + "".join(cells[i : i + 2]) + "</tr>" for i in range(0, len(cells), 2)]
    return "<b>Error map</b><table cellspacing=4>" + "".join(rows) + "</table>"


class QCWidget(DockWidget):
    """Pick a prediction and a ground truth, Run: scores in the table, maps as layers."""

    task = "quality control"
    busy_text = "comparing..."

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        self._job: dict[str, Any] = {}
        self.report: dict[str, Any] | None = None

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
        self.show_maps = CheckBox(text="Add error, IoU, SSIM and RSE maps as layers", value=True)
        self.legend = wrapping(Label(value=_legend_html()))
        self.table = ScoreTable()
        self.export_button = PushButton(text="Export CSV...", enabled=False)
        form = Container(
            widgets=[
                self.pred_combo,
                self.gt_combo,
                self.threshold,
                self.auto_foreground,
                self.foreground,
                self.show_maps,
                self.run_panel,
            ],
            labels=True,
        )
        self.add(form, self.legend, self.table, self.export_button)
        self.export_button.changed.connect(lambda: self.export_csv())
        self.auto_foreground.changed.connect(self._on_auto_foreground)
        self.table.slice_clicked.connect(self.go_to_slice)
        self.reset_choices()
        self._select_defaults()

    def on_layers_changed(self, event) -> None:
        new = event.value if event.type == "inserted" else None
        if isinstance(new, Labels) and new.metadata.get(SEGMENT_METADATA_KEY):
            self.pred_combo.value = new  # just segmented: the labels to check next
        elif self.pred_combo.value is None or self.pred_combo.value is self.gt_combo.value:
            self._select_defaults()

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

    # --- the run ----------------------------------------------------------------------------
    def prepare(self):
        """Check the inputs at once; the comparison itself runs in the worker."""
        pred, gt = self.pred_combo.value, self.gt_combo.value
        if pred is None or gt is None:
            raise SegQCError("pick a prediction layer and a ground-truth layer (Labels or Image)")
        if pred is gt:
            raise SegQCError(f"{pred.name!r} is picked as both prediction and ground truth")
        arrays = []
        for layer in (gt, pred):
            if layer.multiscale:
                raise SegQCError(f"{layer.name!r} is multiscale: not supported yet")
            data = layer.data  # lazy data (dask) stays lazy: the core reads it slice by slice
            if isinstance(layer, Image) and layer.rgb:
                data = to_grayscale(np.asarray(data))
            arrays.append(data)
        check_pair(arrays[0], arrays[1], gt_name=gt.name, pred_name=pred.name)
        self._job = {"gt_layer": gt, "pred_layer": pred, "threshold": self.threshold_value()}
        return partial(
            iter_qc,
            arrays[0],
            arrays[1],
            name=f"{pred.name} vs {gt.name}",
            gt_is_labels=isinstance(gt, Labels),
            pred_is_labels=isinstance(pred, Labels),
            threshold=self._job["threshold"],
            foreground_threshold=None if self.auto_foreground.value else self.foreground.value,
            maps=bool(self.show_maps.value),
        )

    def threshold_value(self) -> float:
        return round(float(self.threshold.value), 2)

    def on_yielded(self, progress) -> None:
        self.set_progress(progress.done, progress.total)

    def on_returned(self, result: QCResult) -> None:
        job = self._job
        self.report = result.report
        if result.maps is not None:
            show_maps(self.viewer, result.maps, job["pred_layer"], job["gt_layer"])
        self.table.set_report(result.report, job["threshold"])
        self.export_button.enabled = True
        obj = result.report["objects"][result.report["threshold"]]
        self.show_info(
            f"SegQC: {result.report['name']}: F1 {obj['f1']:.3f}, accuracy {obj['accuracy']:.3f} "
            f"at IoU {result.report['threshold']}"
        )

    def on_aborted(self) -> None:
        self.show_info("SegQC: quality control stopped; no layers or scores were changed")

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
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(
                self.native, "Export scores", "qc_scores.csv", "CSV files (*.csv)"
            )
            if not path:
                return
        written = self.table.export_csv(path)
        self.show_info(f"SegQC: scores written to {written}")
