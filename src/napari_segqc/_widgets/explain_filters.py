"""The Explain dock's Filters tab: a convolution layer's kernels and their Fourier magnitude
spectra as image grids (beside the picked image), and the layer's feature maps for the picked
image as a stack layer (channel on the slider), aligned with the image. The work is
:mod:`napari_segqc.core.explain.filters`."""

from __future__ import annotations

from functools import partial

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container
from napari.layers import Image

from ..core.errors import SegQCError
from .explain_attribution import current_plane

FIRST = "first convolution"
#: Gap between the image and the kernel grids, in image pixels.
GAP = 16


def _filters_job(source, device_name, layer_name, image):
    """Worker body: the kernels, their spectra and (with an image) the feature maps."""
    from ..core.device import pick_device
    from ..core.explain.filters import feature_maps, kernel_spectra, kernels
    from ..core.predict.loading import load_model

    loaded = load_model(source, pick_device(device_name), backend="torch")
    yield 1, 3
    weights = kernels(loaded.model, layer_name)
    spectra = kernel_spectra(weights)
    yield 2, 3
    maps = None if image is None else feature_maps(loaded, image, layer_name)
    return weights, spectra, maps


def square_grid(stack: np.ndarray) -> np.ndarray:
    """Kernels ``(out, in, h, w)`` as a near-square mosaic: the output channels in rows of
    ``ceil(sqrt(out))``, each showing its input channels side by side (for the first layer:
    1 or 3), or one row per output channel when there are many input channels."""
    from ..core.explain.filters import kernel_grid

    n_out, n_in = stack.shape[:2]
    if n_in > 3:
        return kernel_grid(stack)
    cols = int(np.ceil(np.sqrt(n_out)))
    rows = -(-n_out // cols)
    padded = np.zeros((rows * cols, *stack.shape[1:]), stack.dtype)
    padded[:n_out] = stack
    return kernel_grid(padded.reshape(rows, cols * n_in, *stack.shape[2:]))


def beside(image, height: int) -> tuple[tuple[float, float], np.ndarray]:
    """Scale and origin that show a picture ``height`` pixels tall to the right of the
    ``image`` layer, as tall as the image (unscaled at the origin without an image)."""
    if image is None:
        return (1.0, 1.0), np.zeros(2)
    h, w = np.asarray(image.data.shape[-3:-1] if image.rgb else image.data.shape[-2:])
    factor = max(1.0, h / height)
    scale = tuple(float(s) for s in np.asarray(image.scale[-2:]) * factor)
    return scale, np.asarray(image.translate[-2:]) + np.array((0.0, (w + GAP) * image.scale[-1]))


class FiltersPanel(Container):
    """Conv layer choice and feature maps on/off; ``job`` and ``show`` for the dock."""

    title = "Filters"
    run_text = "Show filters"
    busy_text = "reading the filters..."

    def __init__(self, dock) -> None:
        self.dock = dock
        self._layer_names: list[str] = []
        self._names_for = None
        self.layer = ComboBox(
            label="Conv layer",
            choices=self._choices,
            tooltip="The convolution whose kernels (and feature maps) are shown",
        )
        self.with_maps = CheckBox(text="Feature maps of the image (channel slider)", value=True)
        self.image_combo = dock.layer_picker("Image", Image)
        super().__init__(widgets=[self.layer, self.with_maps, self.image_combo], labels=True)
        self.with_maps.changed.connect(lambda on: setattr(self.image_combo, "enabled", on))

    def _choices(self, _w=None) -> list[str]:
        return [FIRST, *self._layer_names[1:]]

    def refresh_layers(self) -> None:
        """List the picked model's conv layers (the network is built from its config, without
        weights; quiet when the model cannot be read, Run says why)."""
        from ..core.explain.filters import conv_layers
        from ..core.models.registry import build_model

        try:
            config = self.dock.model_config().model
        except SegQCError:
            return
        if config == self._names_for:
            return
        try:
            self._layer_names = conv_layers(build_model(config))
        except SegQCError:
            self._layer_names = []
        self._names_for = config
        self.layer.reset_choices()
        self.layer.value = FIRST

    def job(self, source: str, device: str):
        from ..core.predict.auto import input_for_model

        name = None if self.layer.value == FIRST else self.layer.value
        image, self._image = None, self.image_combo.value
        if self.with_maps.value:
            if self._image is None:
                raise SegQCError("pick an image for the feature maps (or untick them)")
            config = self.dock.model_config()
            plane, _ = current_plane(self.dock.viewer, self._image)
            image = input_for_model(plane, config.model.in_channels, rgb=bool(self._image.rgb))
        self._name = name or (self._layer_names[0] if self._layer_names else FIRST)
        return partial(_filters_job, source, device, name, image)

    def show(self, result) -> None:
        weights, spectra, maps = result
        kernel_mosaic, spectrum_mosaic = square_grid(weights), square_grid(spectra)
        image = self._image
        scale, origin = beside(image, kernel_mosaic.shape[0])
        limit = float(np.abs(weights).max()) or 1.0
        self.dock.add_or_update(
            f"kernels {self._name}",
            kernel_mosaic,
            colormap="PiYG",
            contrast_limits=(-limit, limit),
            scale=scale,
            translate=tuple(origin),
        )
        # the spectra's grid as tall as the kernels' (its kernels are zero-padded: larger)
        fft_scale = tuple(v * kernel_mosaic.shape[0] / spectrum_mosaic.shape[0] for v in scale)
        shift = (kernel_mosaic.shape[1] + GAP) * scale[1]
        self.dock.add_or_update(
            f"kernels FFT {self._name}",
            spectrum_mosaic,
            colormap="magma",
            contrast_limits=(0.0, float(spectra.max()) or 1.0),
            scale=fft_scale,
            translate=tuple(origin + np.array((0.0, shift))),
        )
        note = f"{weights.shape[0]} kernels of {weights.shape[1]} x {weights.shape[2]}x"
        note += f"{weights.shape[3]} in {self._name}"
        if maps is not None:
            stack, stride = maps
            step = np.asarray(image.scale[-2:]) * stride
            self.dock.add_or_update(
                f"{image.name} features {self._name}",
                stack,
                colormap="viridis",
                scale=(1.0, *step),
                translate=(0.0, *(np.asarray(image.translate[-2:]) + (stride - 1) / 2)),
            )
            note += f"; {stack.shape[0]} feature maps at 1/{stride:g} of the image"
        self.dock.set_status(note)
