"""Live training curves: a matplotlib canvas themed like the napari viewer.

Before the first epoch there is nothing to plot: the canvas is a short line of text instead of
empty axes. Epochs are whole numbers: the epoch axis only has integer ticks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

PLACEHOLDER = "curves appear after the first epoch"
#: Canvas heights: the placeholder line; the plots.
EMPTY_HEIGHT, PLOT_HEIGHT = 40, 300

SERIES = (  # axis, history column, legend label
    (0, "train_loss", "train loss"),
    (0, "val_loss", "val loss"),
    (1, "val_iou", "val IoU"),
    (1, "val_f1", "val F1@0.5"),
    (2, "lr", "learning rate"),
)


class TrainingCurves(FigureCanvasQTAgg):
    """Loss, validation scores and learning rate per epoch; ``show_history`` redraws."""

    def __init__(self, theme: str = "dark") -> None:
        self.figure = Figure(figsize=(4.2, 4.6), layout="constrained")
        super().__init__(self.figure)
        self.axes = self.figure.subplots(3, 1, sharex=True)
        self.lines = {}
        for axis, key, label in SERIES:
            (self.lines[key],) = self.axes[axis].plot([], [], marker=".", label=label)
        self.axes[0].set_ylabel("loss")
        self.axes[1].set_ylabel("score")
        self.axes[1].set_ylim(0, 1)
        self.axes[2].set_ylabel("lr")
        self.axes[2].set_yscale("log")
        self.axes[2].set_ylim(1e-5, 1e-2)
        self.axes[2].set_xlabel("epoch")
        self.axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))  # shared by all three
        self.placeholder = self.figure.text(
            0.5, 0.5, PLACEHOLDER, ha="center", va="center", fontsize="small", wrap=True
        )
        for ax in self.axes[:2]:
            ax.legend(loc="best", fontsize="small", frameon=False)
        self.apply_theme(theme)
        self.show_history([])

    def apply_theme(self, theme: str) -> None:
        """Colours of the napari theme (background, text, grid)."""
        fg = theme_axes(self.figure, self.axes, theme)
        self.placeholder.set_color(fg)
        self.draw_idle()

    def show_history(self, rows: Sequence[dict]) -> None:
        """Plot every epoch so far (NaN values, e.g. without validation, are skipped)."""
        epochs = [r["epoch"] + 1 for r in rows]
        for _, key, _ in SERIES:
            pairs = [(e, r[key]) for e, r in zip(epochs, rows, strict=True) if _finite(r[key])]
            self.lines[key].set_data([p[0] for p in pairs], [p[1] for p in pairs])
        for ax in self.axes:
            if any(len(line.get_xdata()) for line in ax.get_lines()):  # log axis: never empty
                ax.relim()
                ax.autoscale_view()
        self.axes[1].set_ylim(0, 1)
        if epochs:
            self.axes[2].set_xlim(0.5, max(epochs) + 0.5)
        self._show_axes(bool(epochs))
        self.draw_idle()

    def _show_axes(self, shown: bool) -> None:
        """The plots once there is an epoch to show; until then the placeholder text only."""
        for ax in self.axes:
            ax.set_visible(shown)
        self.placeholder.set_visible(not shown)
        if shown:
            self.setMinimumHeight(PLOT_HEIGHT)
            self.setMaximumHeight(16_777_215)
        else:
            self.setFixedHeight(EMPTY_HEIGHT)

    def clear(self) -> None:
        self.show_history([])


def _finite(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def theme_axes(figure: Figure, axes, theme: str) -> str:
    """Colours of the napari theme (background, text, grid) on a figure's axes; returns the
    text colour."""
    from napari.utils.theme import get_theme

    t = get_theme(theme)
    bg, fg, grid = t.background.as_hex(), t.text.as_hex(), t.highlight.as_hex()
    figure.set_facecolor(bg)
    for ax in axes:
        ax.set_facecolor(bg)
        ax.tick_params(colors=fg, labelsize="small")
        ax.yaxis.label.set_color(fg)
        ax.xaxis.label.set_color(fg)
        ax.title.set_color(fg)
        for spine in ax.spines.values():
            spine.set_color(grid)
        ax.grid(True, color=grid, alpha=0.4, linewidth=0.5)
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                text.set_color(fg)
    return fg
