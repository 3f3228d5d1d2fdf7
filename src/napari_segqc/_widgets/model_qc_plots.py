"""The Model QC dock's figure: accuracy per image, model A against model B, or scores against the
epoch of a run's checkpoints; themed like the napari viewer, points clickable."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

from .curves import theme_axes

PLOTS = ("per image", "A vs B", "checkpoints")


class ModelQCPlot(FigureCanvasQTAgg):
    """One plot at a time (:data:`PLOTS`); ``on_pick(model_key, image)`` when a point or bar
    of an image is clicked."""

    def __init__(self, theme: str = "dark", on_pick: Callable[[str, str], None] | None = None):
        self.figure = Figure(figsize=(4.2, 3.0), layout="constrained")
        super().__init__(self.figure)
        self.theme = theme
        self.on_pick = on_pick
        self.ax = self.figure.add_subplot(1, 1, 1)
        self._targets: dict[object, list[tuple[str, str]]] = {}  # artist -> (model, image)
        self.mpl_connect("pick_event", self._picked)
        self.setMinimumHeight(240)
        self.show_message("run an evaluation: its plots appear here")

    def show_message(self, text: str) -> None:
        self.ax.clear()
        self.ax.set_axis_off()
        self.ax.text(
            0.5,
            0.5,
            text,
            ha="center",
            va="center",
            fontsize="small",
            transform=self.ax.transAxes,
            wrap=True,
        )
        theme_axes(self.figure, [self.ax], self.theme)
        self.ax.texts[0].set_color(self.ax.xaxis.label.get_color())
        self.draw_idle()

    def plot(self, kind: str, evaluation, metric: str = "accuracy") -> None:
        """Draw plot ``kind`` of an evaluation (says so when the evaluation has none)."""
        from ..core.qc.evaluate import row_key

        self.ax.clear()
        self.ax.set_axis_on()
        self._targets = {}
        keys = [s.key for s in evaluation.specs]
        rows = evaluation.rows
        if kind == "A vs B":
            if len(keys) < 2:
                return self.show_message("A vs B needs two models")
            a, b = keys[0], keys[1]
            acc = {(row_key(r), r["image"]): r["accuracy"] for r in rows}
            names = evaluation.names
            x = [acc[b, n] for n in names]
            y = [acc[a, n] for n in names]
            points = self.ax.scatter(x, y, s=14, picker=5)
            self._targets[points] = [(a, n) for n in names]
            self.ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
            self.ax.set_xlabel(f"accuracy {b}")
            self.ax.set_ylabel(f"accuracy {a}")
            self.ax.set_xlim(0, 1)
            self.ax.set_ylim(0, 1)
        elif kind == "checkpoints":
            summary = [
                r
                for r in evaluation.summary_rows(metric)
                if r["checkpoint"].startswith("epoch_") and r["epoch"] is not None
            ]
            if not summary:
                return self.show_message("checkpoints: tick 'every checkpoint' and pick a run")
            summary.sort(key=lambda r: r["epoch"])
            epochs = [r["epoch"] for r in summary]
            for key in dict.fromkeys(("accuracy", "f1", "dsb_score", metric)):
                self.ax.plot(epochs, [r[key] for r in summary], marker="o", label=key)
            self.ax.set_xlabel("epoch")
            self.ax.set_ylabel("score")
            self.ax.xaxis.get_major_locator().set_params(integer=True)
            self.ax.legend(fontsize="small", frameon=False)
        else:
            width = 0.8 / len(keys)
            x = np.arange(len(evaluation.names))
            for i, key in enumerate(keys):
                values = [r["accuracy"] for r in rows if row_key(r) == key]
                bars = self.ax.bar(x + i * width, values, width, label=key, picker=True)
                for bar, name in zip(bars, evaluation.names, strict=True):
                    self._targets[bar] = [(key, name)]
            self.ax.set_xticks(x + width * (len(keys) - 1) / 2)
            self.ax.set_xticklabels(evaluation.names, rotation=90, fontsize=6)
            self.ax.set_ylabel(f"accuracy at IoU {evaluation.threshold:.2f}")
            self.ax.set_ylim(0, 1)
            self.ax.legend(fontsize="small", frameon=False)
        theme_axes(self.figure, [self.ax], self.theme)
        self.draw_idle()
        return None

    def _picked(self, event) -> None:
        targets = self._targets.get(event.artist)
        if not targets or self.on_pick is None:
            return
        index = int(event.ind[0]) if getattr(event, "ind", None) is not None else 0
        self.on_pick(*targets[min(index, len(targets) - 1)])
