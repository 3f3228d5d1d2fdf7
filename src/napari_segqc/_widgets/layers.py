"""Adding the QC maps to the viewer: names, colormaps, contrast limits, and replacing old ones."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Labels, Layer
from napari.utils.colormaps import Colormap, DirectLabelColormap

from ..core.qc.pixel import ERROR_CLASSES, ERROR_COLORS
from ..core.qc.run import QCMaps

#: Marker in ``layer.metadata`` of the layers this plugin made (value: the map kind).
METADATA_KEY = "segqc"
SEGMENT_METADATA_KEY = "segqc_segment"  # marks the layers the Segment widget made
#: Suffix of a map layer's name when a layer of the user's already has the plain name.
RENAMED = " (SegQC)"

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
        return {"colormap": "magma", "contrast_limits": (0.0, 1.0), "visible": False}
    top = float(np.nanmax(data)) if data.size else 1.0
    return {"colormap": "inferno", "contrast_limits": (0.0, top or 1.0), "visible": False}


def _own_layer(viewer, kind: str, name: str) -> Layer | None:
    """The layer this plugin made for ``kind`` under ``name`` (or its renamed twin), if any."""
    for candidate in (name, f"{name}{RENAMED}"):
        if candidate in viewer.layers:
            layer = viewer.layers[candidate]
            if layer.metadata.get(METADATA_KEY) == kind:
                return layer
    return None


def show_maps(viewer, maps: QCMaps, pred: Layer, gt: Layer) -> list[Layer]:
    """Add (or update in place) the four map layers, aligned with the ground-truth layer.

    A layer is reused only if this plugin made it (``metadata[METADATA_KEY]``) for the same
    kind under the same name, so a user's own layer is never changed or deleted; if a user's
    layer already has the name, ours gets the suffix " (SegQC)".
    """
    shown = []
    for kind, data in reversed(maps.items()):  # the error map ends on top
        name = map_name(kind, pred.name, gt.name)
        layer_type = Labels if kind == "error" else Image
        options = {**_display(kind, data), "scale": gt.scale, "translate": gt.translate}
        old = _own_layer(viewer, kind, name)
        if old is not None and type(old) is layer_type and old.data.shape == data.shape:
            old.data = data
            for key, value in options.items():
                if key != "visible":  # keep what the user toggled
                    setattr(old, key, value)
            shown.append(old)
            continue
        if old is not None:  # ours, but for inputs of another shape: add it afresh
            viewer.layers.remove(old)
        if name in viewer.layers:
            name += RENAMED
        add = viewer.add_labels if kind == "error" else viewer.add_image
        shown.append(add(data, name=name, metadata={METADATA_KEY: kind}, **options))
    viewer.layers.selection.active = shown[-1]
    return shown
