"""Object by object: a sortable table of the ground-truth and predicted objects of the image or
slice in view, a "Next error" walk through them, and the camera moved onto an object.

The rows come from :func:`napari_segqc.core.qc.objects.object_rows` on the slice the viewer
shows (read from the compared layers as the QC run read them); they follow the dims slider.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from napari.layers import Image, Layer
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QBrush, QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from ..core.io import write_text
from ..core.qc.inputs import as_labels, read_slice, to_grayscale
from ..core.qc.objects import error_rows, object_rows, objects_csv
from ..core.qc.pixel import ERROR_COLORS
from .layers import layer_data
from .score_table import TightDelegate, compact_table

#: Columns shown: (row key, header, tooltip).
COLUMNS = (
    ("side", "Side", "gt: a ground-truth object; pred: a predicted object"),
    ("id", "Id", "The object's label value"),
    ("class", "Class", "TP; FN (missed) or split for gt; FP or merge for pred"),
    ("area", "Area", "Pixels"),
    ("matched_id", "Match", "Id of its partner at IoU >= τ (0: none)"),
    ("iou", "IoU", "IoU with its partner (0: none)"),
)
#: Error-map colour of each class (the same value as in the error map's legend).
CLASS_COLORS = {"TP": 1, "FP": 4, "FN": 5, "merge": 6, "split": 7}
#: The camera shows an object this many times its size (at least MIN_EXTENT data pixels).
ZOOM_MARGIN = 3.0
MIN_EXTENT = 12
#: The key that jumps to the next error (bound on the viewer).
NEXT_ERROR_KEY = "n"
STALE_COLOR = "#8a8a8a"


class _Item(QTableWidgetItem):
    """A cell that sorts by its value (numbers as numbers), whatever its text."""

    def __init__(self, value: Any) -> None:
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        super().__init__(text)
        self.setData(Qt.ItemDataRole.UserRole, value)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(10, 10)
    pixmap.fill(QColor(color[:7]))
    return QIcon(pixmap)


class ObjectTable(QTableWidget):
    """One row per object (sortable); the object of a row: :meth:`object_at`."""

    VISIBLE_ROWS = 8

    def __init__(self, parent=None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self._rows: list[Mapping[str, Any]] = []
        compact_table(self, [(label, tip) for _, label, tip in COLUMNS])
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self.horizontalHeader().setMinimumSectionSize(8)
        font = self.font()
        font.setPointSizeF(font.pointSizeF() * 0.92)
        self.setFont(font)
        self.setItemDelegate(TightDelegate(self))
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.setSortingEnabled(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        row_height = self.verticalHeader().defaultSectionSize()
        self.setFixedHeight(
            self.horizontalHeader().sizeHint().height()
            + self.VISIBLE_ROWS * row_height
            + 2 * self.frameWidth()
        )

    @property
    def rows(self) -> list[Mapping[str, Any]]:
        """The objects, in the order they were given (not the sorted order)."""
        return list(self._rows)

    def set_rows(self, rows: list[Mapping[str, Any]]) -> None:
        self.setSortingEnabled(False)  # filling a sorted table moves rows under the loop
        self._rows = list(rows)
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, (key, _, _) in enumerate(COLUMNS):
                item = _Item(row[key])
                item.setData(Qt.ItemDataRole.UserRole + 1, r)  # the row's place in `rows`
                if key not in ("side", "class"):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if key == "class":
                    item.setIcon(_swatch(ERROR_COLORS[CLASS_COLORS[row[key]]]))
                self.setItem(r, c, item)
        self.setSortingEnabled(True)
        self.resizeColumnsToContents()  # every column in view: the dock widens if need be
        width = sum(self.columnWidth(c) for c in range(self.columnCount()))
        bar = self.verticalScrollBar().sizeHint().width()
        self.setMinimumWidth(width + bar + 2 * self.frameWidth() if rows else 0)

    def object_at(self, table_row: int) -> Mapping[str, Any] | None:
        item = self.item(table_row, 0)
        if item is None:
            return None
        return self._rows[item.data(Qt.ItemDataRole.UserRole + 1)]

    def select_object(self, obj: Mapping[str, Any]) -> None:
        """Select (and scroll to) the row of ``obj``, wherever sorting put it."""
        index = next(i for i, row in enumerate(self._rows) if row is obj)
        for r in range(self.rowCount()):
            if self.item(r, 0).data(Qt.ItemDataRole.UserRole + 1) == index:
                self.selectRow(r)
                self.scrollToItem(self.item(r, 0))
                return

    def set_stale(self, stale: bool) -> None:
        brush = QBrush(QColor(STALE_COLOR)) if stale else QBrush()
        for r in range(self.rowCount()):
            for c in range(self.columnCount()):
                self.item(r, c).setForeground(brush)


class ObjectPanel(QCollapsible):
    """The per-object table of the slice in view with "Next error" and CSV export.

    ``source(...)`` sets what to compare (after a QC run); the table then follows the viewer's
    slice. ``ask_path`` returns a file name for the CSV (or ""); ``notify`` shows a message.
    """

    def __init__(
        self,
        viewer,
        *,
        notify: Callable[[str], None],
        ask_path: Callable[[], str],
        error: Callable[[str], None],
    ) -> None:
        super().__init__("Objects (image or slice in view)")
        self.viewer = viewer
        self._notify, self._ask_path, self._error = notify, ask_path, error
        self._source: dict[str, Any] | None = None
        self._index: tuple[int, ...] | None = None
        self._error_pos = -1
        self.table = ObjectTable()
        self.info = QLabel("Run quality control to list the objects.")
        self.info.setWordWrap(True)
        self.next_button = QPushButton("Next error (N)")
        self.next_button.setToolTip(
            "Select the next merge, split, missed or false-positive object and move the "
            f"camera onto it (key {NEXT_ERROR_KEY.upper()} in the viewer)"
        )
        self.export_button = QPushButton("Export objects...")
        for button in (self.next_button, self.export_button):
            button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.next_button)
        buttons.addWidget(self.export_button)
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(0, 0, 0, 0)
        self.layout().setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.info)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self.addWidget(content)
        self.setDuration(0)
        self.expand(animate=False)

        self.next_button.clicked.connect(self.next_error)
        self.export_button.clicked.connect(lambda: self.export_csv())
        self.table.cellClicked.connect(self._on_cell_clicked)
        self._timer = QTimer(self)  # the dims slider sends many events: update once it rests
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self.refresh)
        viewer.dims.events.current_step.connect(self._on_dims)
        viewer.bind_key(NEXT_ERROR_KEY, self._on_key, overwrite=True)

    # --- what is shown ----------------------------------------------------------------------
    def set_source(
        self,
        gt: Layer,
        pred: Layer,
        *,
        threshold: float,
        foreground_threshold: float | None,
    ) -> None:
        """Compare ``pred`` with ``gt`` object by object (as the QC run did), slice in view."""
        self._source = {
            "gt": gt,
            "pred": pred,
            "threshold": threshold,
            "foreground_threshold": foreground_threshold,
        }
        self._index = None
        self.refresh()

    def clear(self) -> None:
        self._source, self._index = None, None
        self.table.set_rows([])
        self.info.setText("Run quality control to list the objects.")
        self.next_button.setEnabled(False)
        self.export_button.setEnabled(False)

    def set_stale(self, stale: bool) -> None:
        self.table.set_stale(stale)
        if stale:
            self.info.setText(f"{self._summary()} Out of date: run again.")

    def current_index(self) -> tuple[int, ...]:
        """The leading-axes index of the slice in view (``()`` for a 2-D image)."""
        gt = self._source["gt"]
        lead = gt.ndim - 2
        if lead <= 0:
            return ()
        point = gt.world_to_data(self.viewer.dims.point[-gt.ndim :])[:lead]
        shape = _plane_shape(gt)[:lead]
        return tuple(
            int(np.clip(round(float(v)), 0, n - 1)) for v, n in zip(point, shape, strict=True)
        )

    def refresh(self) -> None:
        """Read the slice in view and list its objects (when the slice changed)."""
        source = self._source
        if source is None:
            return
        if source["gt"] not in self.viewer.layers or source["pred"] not in self.viewer.layers:
            self.clear()
            return
        index = self.current_index()
        if index == self._index:
            return
        planes = [
            _slice_labels(source[side], index, source["foreground_threshold"])
            for side in ("gt", "pred")
        ]
        rows = object_rows(*planes, threshold=source["threshold"])
        self._index, self._error_pos = index, -1
        self.table.set_rows(rows)
        self.info.setText(self._summary())
        self.next_button.setEnabled(bool(error_rows(rows)))
        self.export_button.setEnabled(True)

    def _summary(self) -> str:
        rows = self.table.rows
        n_gt = sum(r["side"] == "gt" for r in rows)
        where = f"Slice {', '.join(map(str, self._index))}: " if self._index else ""
        return (
            f"{where}{n_gt} ground-truth and {len(rows) - n_gt} predicted objects, "
            f"{len(error_rows(rows))} errors."
        )

    def _on_dims(self, _event=None) -> None:
        try:
            if self._source is not None and self._source["gt"].ndim > 2:
                self._timer.start()
        except RuntimeError:  # the dock was closed (its Qt objects are gone)
            self.viewer.dims.events.current_step.disconnect(self._on_dims)

    # --- going to objects -------------------------------------------------------------------
    def next_error(self) -> Mapping[str, Any] | None:
        """Select the next error (merges, splits, missed, false positives; wraps around) and
        move the camera onto it."""
        self.refresh()
        errors = error_rows(self.table.rows)
        if not errors:
            self._notify("SegQC: no errors in the objects in view")
            return None
        self._error_pos = (self._error_pos + 1) % len(errors)
        obj = errors[self._error_pos]
        self.table.select_object(obj)
        self.go_to(obj)
        self.info.setText(
            f"{self._summary()} Error {self._error_pos + 1} of {len(errors)}: "
            f"{obj['class']} ({obj['side']} {obj['id']})."
        )
        return obj

    def _on_key(self, _viewer=None) -> None:
        try:
            enabled = self.next_button.isEnabled()
        except RuntimeError:  # the dock was closed
            return
        if enabled:
            self.next_error()

    def _on_cell_clicked(self, row: int, _column: int) -> None:
        obj = self.table.object_at(row)
        if obj is not None:
            self.go_to(obj)

    def go_to(self, obj: Mapping[str, Any]) -> None:
        """Centre the camera on the object (its slice for stacks) and zoom to fit it."""
        gt, index = self._source["gt"], self._index or ()
        lo = gt.data_to_world([*index, obj["min_y"], obj["min_x"]])
        hi = gt.data_to_world([*index, obj["max_y"], obj["max_x"]])
        centre = (np.asarray(lo) + np.asarray(hi)) / 2
        dims = self.viewer.dims
        offset = dims.ndim - len(centre)
        for axis in range(len(index)):
            dims.set_point(offset + axis, float(centre[axis]))
        scale = np.abs(np.asarray(gt.scale[-2:], float))
        extent = np.maximum(np.abs(np.asarray(hi[-2:]) - np.asarray(lo[-2:])), MIN_EXTENT * scale)
        camera = getattr(self.viewer, "scene", self.viewer).camera  # napari >= 0.9: scene
        canvas = np.asarray(_canvas_size(self.viewer), float)
        camera.center = (float(centre[-2]), float(centre[-1]))
        camera.zoom = float(np.min(canvas / (extent * ZOOM_MARGIN)))

    def export_csv(self, path: str | None = None) -> None:
        """Save the objects listed (all columns of ``objects_csv``)."""
        if self._source is None or self._index is None:
            self._error("run quality control first: there are no objects to export")
            return
        path = path or self._ask_path()
        if path:
            written = write_text(path, objects_csv(self.table.rows))
            self._notify(f"SegQC: objects written to {written}")


def _plane_shape(layer: Layer) -> tuple[int, ...]:
    shape = tuple(layer_data(layer).shape)
    return shape[:-1] if isinstance(layer, Image) and layer.rgb else shape


def _slice_labels(layer: Layer, index: tuple[int, ...], threshold: float | None) -> np.ndarray:
    """A 2-D slice of a compared layer as labels, as the QC run reads it."""
    data = layer_data(layer)
    if isinstance(layer, Image) and layer.rgb:
        plane = to_grayscale(np.asarray(data[index]))
    else:
        plane = read_slice(data, index, layer.name)
    return as_labels(
        plane,
        is_labels=not isinstance(layer, Image),
        foreground_threshold=threshold,
        name=layer.name,
    )


def _canvas_size(viewer) -> tuple[int, int]:
    """(height, width) of the canvas in screen pixels."""
    canvas = getattr(viewer, "canvas", None)  # napari >= 0.9
    size = getattr(canvas, "size", None) or getattr(viewer, "_canvas_size", None)
    return tuple(size) if size else (600, 800)
