"""A read-only table of QC scores: one row per image or slice; clicking a row picks its slice.

The main columns (:data:`MAIN_COLUMNS`) fit a narrow dock; the others are behind a column
chooser (:meth:`ScoreTable.column_menu`, also on a right click on the header). The CSV holds
every column whatever is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qtpy.QtCore import QPoint, QSize, Qt, Signal
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QMenu,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
)

from ..core.io import write_text
from ..core.qc.report import CSV_COLUMNS, rows_csv, score_rows

#: Column header and tooltip for each score key (the CSV uses the keys themselves).
HEADERS: dict[str, tuple[str, str]] = {
    "name": ("Slice", "Image or slice; 'all' sums the counts over every slice"),
    "f1": ("F1", "Object F1 at the IoU threshold τ"),
    "accuracy": ("Acc", "Object accuracy TP / (TP + FP + FN) at τ (StarDist/DSB 'AP')"),
    "precision": ("Prec", "Object precision TP / (TP + FP) at τ"),
    "recall": ("Rec", "Object recall TP / (TP + FN) at τ"),
    "mean_matched_iou": ("mIoU", "Mean IoU of the matched object pairs at τ"),
    "pq": ("PQ", "Panoptic quality: Σ matched IoU / (TP + FP/2 + FN/2)"),
    "tp": ("TP", "Matched objects at τ"),
    "fp": ("FP", "Predicted objects without a match (false positives)"),
    "fn": ("FN", "Ground-truth objects without a match (missed)"),
    "merges": ("Mrg", "Predicted objects covering a good part of two or more true objects"),
    "splits": ("Spl", "True objects covered for a good part by two or more predicted objects"),
    "pixel_iou": ("Px IoU", "Pixel IoU (Jaccard) of the foregrounds"),
    "pixel_dice": ("Px Dice", "Pixel Dice of the foregrounds"),
    "dsb_score": ("DSB", "Mean object accuracy over τ = 0.50:0.05:0.95 (DSB 2018 score)"),
    "ssim": ("SSIM", "Mean structural similarity (Gaussian window σ = 1.5)"),
    "nrmse": ("NRMSE", "Root mean squared error of the normalised images"),
    "psnr": ("PSNR", "Peak signal-to-noise ratio in dB (∞ for identical images)"),
}
#: Shown at first: they fit a 420-pixel dock without horizontal scrolling.
MAIN_COLUMNS = (
    *("name", "f1", "accuracy", "precision", "recall"),
    *("tp", "fp", "fn", "merges", "splits"),
)
#: Scores of grey values: for Labels vs Labels they compare the binary foregrounds.
GREY_COLUMNS = ("ssim", "nrmse", "psnr")
GREY_MARK = "*"
GREY_NOTE = "Labels vs Labels: compares the binary foregrounds (meant for grey-value images)"
STALE_COLOR = "#8a8a8a"


def compact_table(table: QTableWidget, headers: list[tuple[str, str]]) -> None:
    """A read-only table of whole rows, one selected at a time, no row numbers; ``headers``:
    (label, tooltip) per column."""
    for col, (label, tip) in enumerate(headers):
        item = QTableWidgetItem(label)
        item.setToolTip(tip)
        table.setHorizontalHeaderItem(col, item)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().setVisible(False)


class TightDelegate(QStyledItemDelegate):
    """Cells as wide as their text (and icon) plus :attr:`MARGIN` pixels a side: the style's
    own margins are wide, and a narrow dock needs every pixel."""

    MARGIN = 3

    def _icon_width(self, opt: QStyleOptionViewItem) -> int:
        if opt.features & QStyleOptionViewItem.ViewItemFeature.HasDecoration:
            return opt.decorationSize.width() + 2 * self.MARGIN
        return 0

    def sizeHint(self, option, index) -> QSize:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        width = opt.fontMetrics.horizontalAdvance(opt.text) + 2 * self.MARGIN
        return QSize(width + self._icon_width(opt), super().sizeHint(option, index).height())

    def paint(self, painter, option, index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        text, opt.text = opt.text, ""
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        painter.save()
        selected = opt.state & QStyle.StateFlag.State_Selected
        palette = opt.palette
        painter.setPen((palette.highlightedText() if selected else palette.text()).color())
        foreground = index.data(Qt.ItemDataRole.ForegroundRole)
        if isinstance(foreground, QBrush) and foreground.style() != Qt.BrushStyle.NoBrush:
            painter.setPen(foreground.color())
        painter.setFont(opt.font)
        rect = opt.rect.adjusted(self.MARGIN + self._icon_width(opt), 0, -self.MARGIN, 0)
        painter.drawText(rect, opt.displayAlignment, text)
        painter.restore()


class ScoreTable(QTableWidget):
    """Scores of a QC report entry; ``slice_clicked`` emits the index of a clicked slice row."""

    slice_clicked = Signal(tuple)
    #: Rows shown without scrolling; a longer stack scrolls (the table keeps a compact height).
    VISIBLE_ROWS = 12
    #: A stack shows at least this many slice rows (plus its "all" row) without scrolling.
    MIN_SLICE_ROWS = 6

    def __init__(self, parent=None) -> None:
        super().__init__(0, len(CSV_COLUMNS), parent)
        self._rows: list[dict[str, Any]] = []
        self._indices: list[tuple[int, ...] | None] = []
        compact_table(self, [HEADERS[key] for key in CSV_COLUMNS])
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setMinimumSectionSize(8)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._on_header_menu)
        font = self.font()
        font.setPointSizeF(font.pointSizeF() * 0.88)
        self.setFont(font)
        header.setFont(font)
        self.setStyleSheet("QTableWidget::item { padding: 0px; }")
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.setWordWrap(False)
        self.setItemDelegate(TightDelegate(self))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMinimumHeight(80)
        self.stale = False
        for key in CSV_COLUMNS:
            self.set_column_visible(key, key in MAIN_COLUMNS)
        self.cellClicked.connect(self._on_cell_clicked)

    def sizeHint(self) -> QSize:
        """Tall enough for the rows (up to :attr:`VISIBLE_ROWS`), so no empty block below."""
        rows = max(1, min(self.rowCount(), self.VISIBLE_ROWS))
        row_height = self.verticalHeader().defaultSectionSize()
        height = (
            self.horizontalHeader().sizeHint().height()
            + rows * row_height
            + self._bar_height()
            + 2 * self.frameWidth()
        )
        return QSize(super().sizeHint().width(), height)

    def _update_height(self) -> None:
        """A stack keeps its "all" row and :attr:`MIN_SLICE_ROWS` slice rows in view."""
        rows = min(self.rowCount(), 1 + self.MIN_SLICE_ROWS)
        row_height = self.verticalHeader().defaultSectionSize()
        # as wide as the main columns: the dock widens rather than hide F1 ... splits
        self.resizeColumnsToContents()
        main = sum(self.columnWidth(CSV_COLUMNS.index(k)) for k in MAIN_COLUMNS)
        bar = self.verticalScrollBar().sizeHint().width() if self.rowCount() > rows else 0
        self.setMinimumWidth(main + bar + 2 * self.frameWidth() if self.rowCount() else 0)
        height = (
            self.horizontalHeader().sizeHint().height()
            + max(rows, 1) * row_height
            + self._bar_height()
            + 2 * self.frameWidth()
        )
        self.setMinimumHeight(height if self.rowCount() else 80)

    def _bar_height(self) -> int:
        """The horizontal scroll bar's height while the columns shown are wider than the view."""
        if self.horizontalHeader().length() > self.viewport().width():
            return self.horizontalScrollBar().sizeHint().height()
        return 0

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.rowCount():
            self._update_height()

    # --- columns ----------------------------------------------------------------------------
    def set_column_visible(self, key: str, visible: bool) -> None:
        if key != "name":  # the row names always show
            self.setColumnHidden(CSV_COLUMNS.index(key), not visible)
            if self.rowCount():
                self._update_height()

    def visible_columns(self) -> list[str]:
        return [k for c, k in enumerate(CSV_COLUMNS) if not self.isColumnHidden(c)]

    def column_menu(self, parent=None) -> QMenu:
        """A menu with a checkable entry per score column (the row name always shows)."""
        menu = QMenu(parent or self)
        for col, key in enumerate(CSV_COLUMNS[1:], start=1):
            action = menu.addAction(self.horizontalHeaderItem(col).text())
            action.setToolTip(self.horizontalHeaderItem(col).toolTip())
            action.setCheckable(True)
            action.setChecked(not self.isColumnHidden(col))
            action.toggled.connect(lambda on, k=key: self.set_column_visible(k, on))
        menu.setToolTipsVisible(True)
        return menu

    def _on_header_menu(self, pos: QPoint) -> None:
        self.column_menu().exec(self.horizontalHeader().mapToGlobal(pos))

    def mark_grey_scores(self, labels_only: bool) -> None:
        """Mark SSIM, NRMSE and PSNR when both inputs were Labels (binary foregrounds compared)."""
        for key in GREY_COLUMNS:
            label, tip = HEADERS[key]
            item = self.horizontalHeaderItem(CSV_COLUMNS.index(key))
            item.setText(label + GREY_MARK if labels_only else label)
            item.setToolTip(f"{tip}. {GREY_NOTE}" if labels_only else tip)

    def set_stale(self, stale: bool) -> None:
        """Grey the scores out (the inputs changed after they were computed), or not."""
        self.stale = stale
        brush = QBrush(QColor(STALE_COLOR)) if stale else QBrush()
        tip = "Out of date: an input changed after these scores were computed" if stale else ""
        for r in range(self.rowCount()):
            for c in range(self.columnCount()):
                item = self.item(r, c)
                if item is not None:
                    item.setForeground(brush)
                    item.setToolTip(tip)

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
        self.stale = False
        self._update_height()
        self.updateGeometry()

    def clear_scores(self) -> None:
        self._rows, self._indices = [], []
        self.setRowCount(0)
        self._update_height()
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
