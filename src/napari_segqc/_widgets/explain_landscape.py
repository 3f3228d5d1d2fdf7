"""The Explain dock's Landscape tab: the loss around the trained weights along two
filter-normalised random directions (Li et al. 2018), on a QC batch cut from an image layer
and its ground truth, for BCE, Dice and focal loss.

The surfaces are drawn as contour plots in the dock (with the 1-D path from the run's initial
weights when it kept them; "Save PNG..." writes the figure) and added as 2-D Image layers
beside the image. The work is :mod:`napari_segqc.core.explain.landscape`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, PushButton, SpinBox
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Image, Labels

from ..core.errors import SegQCError
from ..core.explain.landscape import LANDSCAPE_LOSSES
from .curves import theme_axes
from .explain_filters import beside
from .layers import layer_data


def _landscape_job(source, device_name, image, labels, rgb, losses, steps, span, seed, patch):
    """Worker body: the model's torch weights, the QC batch, the surfaces."""
    from ..core.device import pick_device
    from ..core.explain.landscape import initial_weights, iter_landscape, qc_batch
    from ..core.predict.loading import load_model
    from ..core.train.data import samples_from_arrays

    loaded = load_model(source, pick_device(device_name), backend="torch")
    samples = samples_from_arrays(image, labels, rgb=rgb, name="QC batch")
    x, y = qc_batch(samples, loaded.config, patch=patch)
    result = yield from iter_landscape(
        loaded.model,
        x,
        y,
        losses=losses,
        steps=steps,
        span=span,
        seed=seed,
        init_state=initial_weights(source),
    )
    return result


class LandscapePlot(FigureCanvasQTAgg):
    """The contour plots of the last landscape (a line of text before the first)."""

    def __init__(self, theme: str = "dark") -> None:
        self.figure = Figure(figsize=(4.2, 3.4), layout="constrained")
        super().__init__(self.figure)
        self.theme = theme
        self.setMinimumHeight(300)
        self.landscape = None

    def show_landscape(self, landscape, loss: str | None = None) -> None:
        """Draw one loss's surface (a narrow dock has room for one; None: the first)."""
        from ..core.explain.plots import draw_landscape

        self.landscape = landscape
        self.figure.clear()
        draw_landscape(self.figure, landscape, loss or next(iter(landscape.values)))
        theme_axes(self.figure, self.figure.axes, self.theme)
        self.draw_idle()


class LandscapePanel(Container):
    """QC batch (image + ground truth layers), losses, grid; ``job`` and ``show``."""

    title = "Landscape"
    run_text = "Compute landscape"
    busy_text = "evaluating the loss landscape..."

    def __init__(self, dock) -> None:
        self.dock = dock
        self.image_combo = dock.layer_picker("Image", Image)
        self.gt_combo = dock.layer_picker("Ground truth", Labels)
        self.loss_boxes = {name: CheckBox(text=name, value=True) for name in LANDSCAPE_LOSSES}
        losses = Container(
            label="Losses", widgets=list(self.loss_boxes.values()), layout="horizontal"
        )
        losses.margins = (0, 0, 0, 0)
        self.steps = SpinBox(
            label="Grid steps", value=11, min=3, max=51, step=2, tooltip="Points per axis (odd)"
        )
        self.span = FloatSpinBox(
            label="Span",
            value=1.0,
            min=0.01,
            max=10.0,
            step=0.1,
            tooltip="The grid covers -span..span along each filter-normalised direction",
        )
        self.seed = SpinBox(label="Seed", value=0, min=0, max=2**31 - 1)
        self.patch = SpinBox(
            label="Crop size",
            value=256,
            min=64,
            max=1024,
            step=32,
            tooltip="The QC batch: a centre crop of this size per image (up to 8 slices)",
        )
        super().__init__(
            widgets=[
                self.image_combo,
                self.gt_combo,
                losses,
                self.steps,
                self.span,
                self.seed,
                self.patch,
            ],
            labels=True,
        )
        self.plot = LandscapePlot(getattr(dock.viewer, "theme", "dark"))
        self.shown_loss = ComboBox(
            choices=[], tooltip="The loss whose surface is plotted (Save PNG: all of them)"
        )
        self.save_button = PushButton(text="Save PNG...", enabled=False)
        self.save_button.changed.connect(lambda: self.save_png())
        self.shown_loss.changed.connect(self._on_shown_loss)
        row = Container(
            widgets=[self.shown_loss, self.save_button], layout="horizontal", labels=False
        )
        row.margins = (0, 0, 0, 0)
        #: The plot, its loss choice and Save button (shown under Run while this tab is on).
        self.plot_box = Container(widgets=[row], labels=False)
        self.plot_box.margins = (0, 0, 0, 0)
        self.plot_box.native.layout().insertWidget(0, self.plot)

    def job(self, source: str, device: str):
        from ..core.predict.auto import input_for_model

        image, gt = self.image_combo.value, self.gt_combo.value
        if image is None or gt is None:
            raise SegQCError("pick an image and its ground-truth Labels layer (the QC batch)")
        losses = tuple(name for name, box in self.loss_boxes.items() if box.value)
        if not losses:
            raise SegQCError("tick at least one loss")
        config = self.dock.model_config()
        channels = config.model.in_channels
        data = np.asarray(
            input_for_model(np.asarray(layer_data(image)), channels, rgb=bool(image.rgb))
        )
        self._image = image
        return partial(
            _landscape_job,
            source,
            device,
            data,
            np.asarray(layer_data(gt)),
            channels == 3,
            losses,
            int(self.steps.value),
            float(self.span.value),
            int(self.seed.value),
            int(self.patch.value),
        )

    def _on_shown_loss(self, loss) -> None:
        if self.plot.landscape is not None and loss:
            self.plot.show_landscape(self.plot.landscape, loss)

    def show(self, landscape) -> None:
        with self.shown_loss.changed.blocked():
            self.shown_loss.choices = list(landscape.values)
        self.plot.show_landscape(landscape, self.shown_loss.value)
        self.save_button.enabled = True
        grid = next(iter(landscape.values.values()))
        scale, origin = beside(self._image, grid.shape[0])
        for i, (name, values) in enumerate(landscape.values.items()):
            finite = values[np.isfinite(values)]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (0, 1)
            shift = i * (grid.shape[1] + 2) * scale[1]
            self.dock.add_or_update(
                f"landscape {name}",
                values.astype(np.float32),
                colormap="viridis",
                contrast_limits=(low, high if high > low else low + 1e-6),
                scale=scale,
                translate=tuple(origin + np.array((0.0, shift))),
            )
        self.dock.set_status(describe_landscape(landscape))

    def save_png(self, path: str | None = None) -> Path | None:
        """Write the plot as a PNG (asks for a file name when ``path`` is None)."""
        from ..core.explain.plots import draw_landscape, save_figure

        if self.plot.landscape is None:
            return None
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(
                self.native, "Save the landscape", "landscape.png", "PNG images (*.png)"
            )
            if not path:
                return None
        landscape = self.plot.landscape
        panels = len(landscape.values) + (landscape.path_t is not None)
        figure = Figure(figsize=(4.5 * panels, 4.2), layout="constrained")
        draw_landscape(figure, landscape)  # every loss, as `segqc landscape` draws
        save_figure(figure, path)
        self.dock.set_status(f"landscape saved to {path}")
        return Path(path)


def describe_landscape(landscape) -> str:
    """One line: per loss, the centre's value and where the grid's lowest point is."""
    parts = []
    n = len(landscape.alphas)
    for name, values in landscape.values.items():
        i, j = np.unravel_index(np.nanargmin(values), values.shape)
        at = (
            "the centre"
            if (i, j) == (n // 2, n // 2)
            else f"({landscape.alphas[i]:.2f}, {landscape.betas[j]:.2f})"
        )
        parts.append(f"{name} {values[n // 2, n // 2]:.3f} (lowest at {at})")
    return f"{landscape.images} images, {landscape.seconds:.0f} s: " + "; ".join(parts)
