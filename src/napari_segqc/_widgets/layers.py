"""Adding the QC maps to the viewer: names, colormaps, colour bars, replacing or removing old
ones, marking them out of date, and dimming the inputs under the error map."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Layer
from napari.utils.colormaps import Colormap, DirectLabelColormap

from ..core.qc.pixel import ERROR_CLASSES, ERROR_COLORS
from ..core.qc.run import QCMaps

#: Marker in ``layer.metadata`` of the layers this plugin made (value: the map kind).
METADATA_KEY = "segqc"
SEGMENT_METADATA_KEY = "segqc_segment"  # marks the layers the Segment widget made
EXPLAIN_METADATA_KEY = "segqc_explain"  # marks the layers the Explain widget made
#: Suffix of a map layer's name when a layer of the user's already has the plain name.
RENAMED = " (SegQC)"
#: Suffix of a map layer's name while its inputs changed after it was computed.
STALE = " (out of date)"
#: Opacity of the input Labels layers while the error map is shown over them.
DIM_OPACITY = 0.2
#: The maps that compare grey values (SSIM, RSE): for Labels vs Labels only on request.
GREY_MAPS = ("ssim", "rse")


def layer_data(layer):
    """The data the docks compute on: a multiscale layer's full-resolution level (lazy, read
    tile by tile or slice by slice), else the layer's data."""
    return layer.data[0] if layer.multiscale else layer.data


MAP_TITLES = {
    "error": "Error map",
    "object_iou": "Object IoU",
    "ssim": "SSIM map",
    "rse": "RSE map",
}


def map_name(kind: str, pred_name: str, gt_name: str) -> str:
    """Layer name of a map, e.g. ``SSIM map [pred vs gt]``."""
    return f"{MAP_TITLES[kind]} [{pred_name} vs {gt_name}]"


def iou_colormap() -> Colormap:
    """Bad to good, all bright on napari's dark canvas: crimson (IoU 0, missed) - yellow - teal."""
    return Colormap(
        colors=["#e8175d", "#ffd166", "#06d6a0"], controls=[0.0, 0.5, 1.0], name="SegQC IoU"
    )


def ssim_colormap() -> Colormap:
    """SSIM's real range -1..1, diverging: pink (anti-correlated) - white (0) - green (1, same)."""
    return Colormap(
        colors=["#c51b7d", "#f1b6da", "#f7f7f7", "#b8e186", "#4dac26"],
        controls=[0.0, 0.25, 0.5, 0.75, 1.0],
        name="SegQC SSIM",
    )


def error_colormap() -> DirectLabelColormap:
    """Fixed colours for the error classes (background transparent)."""
    colors: dict[Any, Any] = {None: "transparent"}
    colors.update({value: ERROR_COLORS[value] for value in ERROR_CLASSES})
    return DirectLabelColormap(color_dict=colors)


def _display(kind: str, data: np.ndarray) -> dict[str, Any]:
    """Colormap and contrast per map; only the error map is visible at first."""
    if kind == "error":
        return {"colormap": error_colormap(), "opacity": 0.8, "visible": True}
    if kind == "object_iou":  # NaN background: napari/vispy draw NaN transparent (bad colour)
        return {"colormap": iou_colormap(), "contrast_limits": (0.0, 1.0), "visible": False}
    if kind == "ssim":
        return {"colormap": ssim_colormap(), "contrast_limits": (-1.0, 1.0), "visible": False}
    top = float(np.nanmax(data)) if data.size else 1.0
    return {"colormap": "inferno", "contrast_limits": (0.0, top or 1.0), "visible": False}


def _own_layer(viewer, kind: str, name: str) -> Layer | None:
    """The layer this plugin made for ``kind`` under ``name`` (or its renamed twin), if any."""
    for candidate in (name, f"{name}{RENAMED}", f"{name}{STALE}", f"{name}{RENAMED}{STALE}"):
        if candidate in viewer.layers:
            layer = viewer.layers[candidate]
            if layer.metadata.get(METADATA_KEY) == kind:
                return layer
    return None


def own_maps(viewer, pred_name: str, gt_name: str) -> dict[str, Layer]:
    """The map layers this plugin made for a pair (found by name), by kind."""
    found = {
        kind: _own_layer(viewer, kind, map_name(kind, pred_name, gt_name)) for kind in MAP_TITLES
    }
    return {kind: layer for kind, layer in found.items() if layer is not None}


def remove_maps(viewer, layers: Iterable[Layer]) -> None:
    """Remove the given map layers that are still in the viewer (and ours)."""
    for layer in layers:
        if layer in viewer.layers and METADATA_KEY in layer.metadata:
            viewer.layers.remove(layer)


def mark_stale(layers: Iterable[Layer], stale: bool) -> None:
    """Add (or take off) the " (out of date)" suffix of map layers' names."""
    for layer in layers:
        if METADATA_KEY not in layer.metadata:
            continue
        if stale and not layer.name.endswith(STALE):
            layer.name += STALE
        elif not stale and layer.name.endswith(STALE):
            layer.name = layer.name.removesuffix(STALE)


def show_maps(
    viewer,
    maps: QCMaps,
    pred: Layer,
    gt: Layer,
    *,
    kinds: Iterable[str] | None = None,
    select: bool = True,
) -> list[Layer]:
    """Add (or update in place) the map layers (all, or ``kinds``), aligned with the ground truth.

    A layer is reused only if this plugin made it (``metadata[METADATA_KEY]``) for the same
    kind under the same name, so a user's own layer is never changed or deleted; if a user's
    layer already has the name, ours gets the suffix " (SegQC)". The image maps show a colour
    bar (napari's colorbar overlay) while they are visible. ``select``: make the error map (the
    top one) the active layer.
    """
    kinds = set(MAP_TITLES if kinds is None else kinds)
    shown = []
    for kind, data in reversed(maps.items()):  # the error map ends on top
        if kind not in kinds:
            continue
        name = map_name(kind, pred.name, gt.name)
        layer_type = Labels if kind == "error" else Image
        options = {**_display(kind, data), "scale": gt.scale, "translate": gt.translate}
        old = _own_layer(viewer, kind, name)
        if old is not None and type(old) is layer_type and old.data.shape == data.shape:
            old.data = data
            for key, value in options.items():
                if key != "visible":  # keep what the user toggled
                    setattr(old, key, value)
            mark_stale([old], False)
            shown.append(old)
            continue
        if old is not None:  # ours, but for inputs of another shape: add it afresh
            viewer.layers.remove(old)
        if name in viewer.layers:
            name += RENAMED
        add = viewer.add_labels if kind == "error" else viewer.add_image
        layer = add(data, name=name, metadata={METADATA_KEY: kind}, **options)
        if kind != "error" and hasattr(layer, "colorbar"):  # napari >= 0.5
            layer.colorbar.visible = True  # drawn only while the layer is visible
        shown.append(layer)
    if select and shown:
        viewer.layers.selection.active = shown[-1]
    return shown


class InputDimmer:
    """Dim the input Labels layers while an error map is visible over them; restore them when
    it is hidden or removed (their opacity as it was before)."""

    def __init__(self) -> None:
        self._links: dict[int, tuple[Layer, list[Layer], dict[int, float]]] = {}

    def link(self, error: Layer, inputs: Iterable[Layer], *, dim_now: bool = True) -> None:
        """Dim ``inputs`` (their Labels layers) under ``error``, now (if visible) and whenever
        it is shown again."""
        labels = [layer for layer in inputs if isinstance(layer, Labels)]
        key = id(error)
        if key not in self._links:
            error.events.visible.connect(self._on_visible)
        saved = self._links.get(key, (error, [], {}))[2]
        self._links[key] = (error, labels, saved)
        if dim_now and error.visible:
            self._dim(key)

    def _on_visible(self, event) -> None:
        key = id(event.source)
        if key in self._links:
            self._dim(key) if event.source.visible else self._restore(key)

    def _dim(self, key: int) -> None:
        _, labels, saved = self._links[key]
        for layer in labels:
            if layer.opacity > DIM_OPACITY:
                saved.setdefault(id(layer), layer.opacity)
                layer.opacity = DIM_OPACITY

    def _restore(self, key: int) -> None:
        _, labels, saved = self._links[key]
        for layer in labels:
            if id(layer) in saved:
                layer.opacity = saved.pop(id(layer))

    def forget(self, error: Layer) -> None:
        """``error`` is gone: restore its inputs and stop following it."""
        key = id(error)
        if key in self._links:
            self._restore(key)
            error.events.visible.disconnect(self._on_visible)
            del self._links[key]
