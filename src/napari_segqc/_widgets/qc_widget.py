"""The "Quality control" dock widget: compare a prediction layer with a ground-truth layer.

It only gathers inputs and shows outputs; :func:`napari_segqc.core.qc.iter_qc` does the work
in a worker thread (progress bar, Stop), the maps become layers (:mod:`.layers`) and the
scores fill a table (:mod:`.score_table`).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
)
from napari.layers import Image, Labels, Layer
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info

from ..core.errors import SegQCError
from ..core.qc.pixel import ERROR_CLASSES, ERROR_COLORS
from ..core.qc.run import QCResult, check_pair, iter_qc, to_grayscale
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


class QCWidget(Container):
    """Pick a prediction and a ground truth, Run: scores in the table, maps as layers."""

    def __init__(self, napari_viewer) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self._worker = None
        self._job: dict[str, Any] = {}
        self.report: dict[str, Any] | None = None

        self.pred_combo = ComboBox(label="Prediction", choices=self._layer_choices)
        self.gt_combo = ComboBox(label="Ground truth", choices=self._layer_choices)
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
        self.run_button = PushButton(text="Run")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.progress = ProgressBar(label="Progress", value=0, max=1, visible=False)
        self.legend = Label(value=_legend_html())
        self.table = ScoreTable()
        self.export_button = PushButton(text="Export CSV...", enabled=False)
        buttons = Container(
            widgets=[self.run_button, self.stop_button], layout="horizontal", labels=False
        )
        self.extend(
            [
                self.pred_combo,
                self.gt_combo,
                self.threshold,
                self.auto_foreground,
                self.foreground,
                self.show_maps,
                buttons,
                self.progress,
            ]
        )
        layout = self.native.layout()
        for native in (self.legend.native, self.table, self.export_button.native):
            layout.addWidget(native)
        layout.addStretch(1)  # spare height below the table, not inside it
        self.legend.native.setWordWrap(True)
        self.native.setMinimumWidth(420)
        self._connect()
        self.reset_choices()
        self._select_defaults()

    # --- wiring -----------------------------------------------------------------------------
    def _connect(self) -> None:
        """Connect every signal to its handler (tests call the handlers directly)."""
        self.run_button.changed.connect(self.run)
        self.stop_button.changed.connect(self.stop)
        self.export_button.changed.connect(lambda: self.export_csv())
        self.auto_foreground.changed.connect(self._on_auto_foreground)
        self.table.slice_clicked.connect(self.go_to_slice)
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self._on_layers_changed)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._on_layer_renamed)

    def _layer_choices(self, _widget=None) -> list[tuple[str, Layer]]:
        return [(ly.name, ly) for ly in self.viewer.layers if isinstance(ly, Image | Labels)]

    def _on_layers_changed(self, event=None) -> None:
        if event is not None and event.type == "inserted":
            event.value.events.name.connect(self._on_layer_renamed)
        elif event is not None and event.type == "removed":
            event.value.events.name.disconnect(self._on_layer_renamed)
        self.reset_choices()
        new = event.value if event is not None and event.type == "inserted" else None
        if isinstance(new, Labels) and new.metadata.get(SEGMENT_METADATA_KEY):
            self.pred_combo.value = new  # just segmented: the labels to check next
        elif self.pred_combo.value is None or self.pred_combo.value is self.gt_combo.value:
            self._select_defaults()

    def _on_layer_renamed(self, _event=None) -> None:
        self.reset_choices()

    def _select_defaults(self) -> None:
        """Ground truth: a Labels layer named like 'ground truth'/'gt'; prediction: another.

        The maps this widget made are never picked (their names hold the ground truth's).
        """
        labels = [
            ly
            for _, ly in self._layer_choices()
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

    # --- actions ----------------------------------------------------------------------------
    def run(self) -> None:
        """Validate the inputs at once (errors as notifications), then compute in a worker."""
        try:
            job = self._prepare()
        except SegQCError as exc:
            show_error(str(exc))
            return
        self._job = job
        self.progress.value, self.progress.max, self.progress.visible = 0, 1, True
        self._set_running(True)
        worker = create_worker(
            iter_qc,
            job["gt"],
            job["pred"],
            name=f"{job['pred_layer'].name} vs {job['gt_layer'].name}",
            gt_is_labels=job["gt_is_labels"],
            pred_is_labels=job["pred_is_labels"],
            threshold=job["threshold"],
            foreground_threshold=job["foreground_threshold"],
            maps=job["maps"],
            _progress={"desc": "SegQC quality control"},
            _connect={
                "yielded": self._on_progress,
                "returned": self._on_result,
                "errored": self._on_error,  # handled here: not re-raised in the GUI thread
                "aborted": self._on_stopped,
                "finished": lambda: self._set_running(False),
            },
            _start_thread=False,
        )
        self._worker = worker
        worker.start()

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.quit()

    def _prepare(self) -> dict[str, Any]:
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
        return {
            "gt": arrays[0],
            "pred": arrays[1],
            "gt_layer": gt,
            "pred_layer": pred,
            "gt_is_labels": isinstance(gt, Labels),
            "pred_is_labels": isinstance(pred, Labels),
            "threshold": round(float(self.threshold.value), 2),
            "foreground_threshold": None if self.auto_foreground.value else self.foreground.value,
            "maps": bool(self.show_maps.value),
        }

    def _on_progress(self, progress) -> None:
        self.progress.max = progress.total
        self.progress.value = progress.done

    def _on_result(self, result: QCResult) -> None:
        job = self._job
        self.report = result.report
        if result.maps is not None:
            show_maps(self.viewer, result.maps, job["pred_layer"], job["gt_layer"])
        self.table.set_report(result.report, job["threshold"])
        self.export_button.enabled = True
        obj = result.report["objects"][result.report["threshold"]]
        show_info(
            f"SegQC: {result.report['name']}: F1 {obj['f1']:.3f}, accuracy {obj['accuracy']:.3f} "
            f"at IoU {result.report['threshold']}"
        )

    def _on_error(self, exc: Exception) -> None:
        show_error(f"SegQC quality control failed: {exc}")

    def _on_stopped(self) -> None:
        show_info("SegQC: quality control stopped; no layers or scores were changed")

    def _set_running(self, running: bool) -> None:
        self.run_button.enabled = not running
        self.stop_button.enabled = running
        if not running:
            self.progress.visible = False

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
            show_error("run quality control first: there are no scores to export")
            return
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(
                self.native, "Export scores", "qc_scores.csv", "CSV files (*.csv)"
            )
            if not path:
                return
        written = self.table.export_csv(path)
        show_info(f"SegQC: scores written to {written}")
