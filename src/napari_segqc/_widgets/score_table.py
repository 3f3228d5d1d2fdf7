"""A read-only table of QC scores: one row per image or slice; clicking a row picks its slice."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qtpy.QtCore import QSize, Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
)

from ..core.io import write_text
from ..core.qc.report import CSV_COLUMNS, rows_csv, score_rows

#: Column header and tooltip for each score key (the CSV uses the keys themselves).
HEADERS: dict[str, tuple[str, str]] = {
    "name": ("Slice", "Image or slice; 'all' sums the counts over every slice"),
    "f1": ("F1", "Object F1 at the IoU threshold τ"),
    "accuracy": ("Acc.", "Object accuracy TP / (TP + FP + FN) at τ (StarDist/DSB 'AP')"),
    "precision": ("Prec.", "Object precision TP / (TP + FP) at τ"),
    "recall": ("Recall", "Object recall TP / (TP + FN) at τ"),
    "mean_matched_iou": ("mIoU", "Mean IoU of the matched object pairs at τ"),
    "pq": ("PQ", "Panoptic quality: Σ matched IoU / (TP + FP/2 + FN/2)"),
    "tp": ("TP", "Matched objects at τ"),
    "fp": ("FP", "Predicted objects without a match (false positives)"),
    "fn": ("FN", "Ground-truth objects without a match (missed)"),
    "merges": ("Merges", "Predicted objects covering a good part of two or more true objects"),
    "splits": ("Splits", "True objects covered for a good part by two or more predicted objects"),
    "pixel_iou": ("Px IoU", "Pixel IoU (Jaccard) of the foregrounds"),
    "pixel_dice": ("Px Dice", "Pixel Dice of the foregrounds"),
    "dsb_score": ("DSB", "Mean object accuracy over τ = 0.50:0.05:0.95 (DSB 2018 score)"),
    "ssim": ("SSIM", "Mean structural similarity (Gaussian window σ = 1.5)"),
    "nrmse": ("NRMSE", "Root mean squared error of the normalised images"),
    "psnr": ("PSNR", "Peak signal-to-noise ratio in dB (∞ for identical images)"),
}


class ScoreTable(QTableWidget):
    """Scores of a QC report entry; ``slice_clicked`` emits the index of a clicked slice row."""

    slice_clicked = Signal(tuple)
    #: Rows shown without scrolling; a longer stack scrolls (the table keeps a compact height).
    VISIBLE_ROWS = 12

    def __init__(self, parent=None) -> None:
        super().__init__(0, len(CSV_COLUMNS), parent)
        self._rows: list[dict[str, Any]] = []
        self._indices: list[tuple[int, ...] | None] = []
        for col, key in enumerate(CSV_COLUMNS):
            label, tip = HEADERS[key]
            item = QTableWidgetItem(label)
            item.setToolTip(tip)
            self.setHorizontalHeaderItem(col, item)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMinimumHeight(80)
        self.cellClicked.connect(self._on_cell_clicked)

    def sizeHint(self) -> QSize:
        """Tall enough for the rows (up to :attr:`VISIBLE_ROWS`), so no empty block below."""
        rows = max(1, min(self.rowCount(), self.VISIBLE_ROWS))
        row_height = self.verticalHeader().defaultSectionSize()
        height = (
            self.horizontalHeader().sizeHint().height()
            + rows * row_height
            + self.horizontalScrollBar().sizeHint().height()
            + 2 * self.frameWidth()
        )
        return QSize(super().sizeHint().width(), height)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows shown, as dictionaries keyed like the CSV columns."""
        return list(self._rows)

    def set_report(self, entry: Mapping[str, Any], threshold: float) -> None:
        """Show an entry of :func:`napari_segqc.core.qc.iter_qc`'s report (slices for stacks)."""
        rows = score_rows(entry, threshold)
        indices: list[tuple[int, ...] | None] = [None]
        rows[0]["name"] = "all" if entry.get("slices") else "image"
        if entry.get("slices"):
            for row, s in zip(rows[1:], entry["slices"], strict=True):
                indices.append(tuple(s["index"]))
                row["name"] = ", ".join(map(str, s["index"]))
        self._rows, self._indices = rows, indices
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(CSV_COLUMNS):
                item = QTableWidgetItem(_format(row[key]))
                align = Qt.AlignmentFlag.AlignLeft if key == "name" else Qt.AlignmentFlag.AlignRight
                item.setTextAlignment(align | Qt.AlignmentFlag.AlignVCenter)
                if r == 0 and len(rows) > 1:  # the "all" row of a stack
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.setItem(r, c, item)
        self.updateGeometry()

    def clear_scores(self) -> None:
        self._rows, self._indices = [], []
        self.setRowCount(0)
        self.updateGeometry()

    def export_csv(self, path: str | Path) -> Path:
        """Write the rows shown (full precision) to ``path``, atomically."""
        return write_text(path, rows_csv(self._rows))

    def _on_cell_clicked(self, row: int, _column: int) -> None:
        if 0 <= row < len(self._indices) and self._indices[row] is not None:
            self.slice_clicked.emit(self._indices[row])


def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "∞" if value == float("inf") else f"{value:.3f}"
    return str(value)
