"""The Explain dock's Attribution tab: which pixels made the network call a region (a Shapes
rectangle) or an object (clicked in a Labels layer) foreground, boundary or distance.

The map comes back as an Image layer on a diverging colormap centred on 0 (green: pixels that
raise the output, pink: pixels that lower it), aligned with the image; integrated gradients
also report their completeness gap. The work is
:func:`napari_segqc.core.explain.attribution.iter_attribution`.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, RadioButtons, SpinBox
from napari.layers import Image, Labels, Shapes
from napari.utils.colormaps import Colormap

from ..core.errors import SegQCError
from ..core.explain.attribution import label_target, region_target
from ..core.instances.targets import TARGET_CHANNELS
from .base import wrapping
from .layers import layer_data

REGION, OBJECT = "Region (rectangle)", "Object (click)"
#: The colormap of attribution layers: diverging (pink negative, green positive) and
#: transparent at 0, so the image shows through where the pixels do not matter.
DIVERGING = Colormap(
    [[0.77, 0.11, 0.49, 1.0], [1.0, 1.0, 1.0, 0.0], [0.30, 0.60, 0.13, 1.0]],
    name="segqc diverging",
    display_name="diverging (0 transparent)",
)
METHOD_TITLES = {
    "integrated_gradients": "integrated gradients",
    "gradient_x_input": "gradient x input",
    "saliency": "saliency (|gradient|)",
    "occlusion": "occlusion",
}


def _attribution_job(source, device_name, image, target, method, steps, tile):
    """Worker body: load the model's torch weights, attribute tile by tile."""
    from ..core.device import pick_device
    from ..core.explain.attribution import iter_attribution
    from ..core.predict.loading import load_model

    loaded = load_model(source, pick_device(device_name), backend="torch")
    result = yield from iter_attribution(
        loaded, image, target, method=method, steps=steps, tile=tile
    )
    return result


def current_plane(viewer, layer) -> tuple[np.ndarray, tuple[int, ...]]:
    """The 2-D plane of ``layer`` the viewer shows (the layer itself when it is 2-D), and
    the indices of that plane along the layer's leading axes."""
    data = layer_data(layer)  # a multiscale layer: its full-resolution level
    lead_ndim = layer.ndim - 2
    if lead_ndim <= 0:
        return np.asarray(data), ()
    point = layer.world_to_data(viewer.dims.point)
    lead = tuple(
        int(np.clip(round(p), 0, n - 1))
        for p, n in zip(point[:lead_ndim], data.shape, strict=False)
    )
    return np.asarray(data[lead]), lead


class AttributionPanel(Container):
    """Image, target (rectangle or object), output, method; ``job`` and ``show`` for the dock."""

    title = "Attribution"
    run_text = "Explain"
    busy_text = "computing the attribution map..."

    def __init__(self, dock) -> None:
        self.dock = dock
        self.image_combo = dock.layer_picker("Image", Image)
        self.target_kind = RadioButtons(
            label="Target", choices=[REGION, OBJECT], value=REGION, orientation="horizontal"
        )
        self.shapes_combo = dock.layer_picker(
            "Rectangle in",
            Shapes,
            tooltip="A Shapes layer: the selected shape (else the last one) gives the region",
        )
        self.labels_combo = dock.layer_picker(
            "Object in", Labels, visible=False, tooltip="Click an object in this layer to pick it"
        )
        self.label_id = SpinBox(
            label="Object id",
            value=0,
            min=0,
            max=2**31 - 1,
            visible=False,
            tooltip="The object's label; a click on it in the Labels layer fills this in",
        )
        self.output = ComboBox(
            label="Output",
            choices=list(TARGET_CHANNELS["instance"]),
            tooltip="The network output summed over the target pixels",
        )
        self.method = ComboBox(
            label="Method",
            choices=[(title, name) for name, title in METHOD_TITLES.items()],
            value="integrated_gradients",
        )
        self.steps = SpinBox(
            label="IG steps", value=64, min=4, max=512, tooltip="Integrated gradients: path steps"
        )
        self.tile = SpinBox(
            label="Tile size",
            value=512,
            min=64,
            max=2048,
            step=32,
            tooltip="Large images are explained tile by tile: only the tiles that hold the "
            "target are computed",
        )
        self.hint = wrapping(Label(value=""))
        super().__init__(
            widgets=[
                self.image_combo,
                self.target_kind,
                self.shapes_combo,
                self.labels_combo,
                self.label_id,
                self.output,
                self.method,
                self.steps,
                self.tile,
                self.hint,
            ],
            labels=True,
        )
        self._clicked_layer = None
        self.target_kind.changed.connect(self._on_target_kind)
        self.labels_combo.changed.connect(self._watch_clicks)
        self.method.changed.connect(lambda m: setattr(self.steps, "enabled", m in IG_LIKE))
        self._on_target_kind(self.target_kind.value)

    # --- target ------------------------------------------------------------------------------
    def _on_target_kind(self, kind: str) -> None:
        region = kind == REGION
        self.shapes_combo.visible = region
        self.labels_combo.visible = self.label_id.visible = not region
        self.hint.value = (
            "Draw a rectangle in a Shapes layer (select it to pick one of several)."
            if region
            else "Click an object in the Labels layer (pan/zoom mode) to pick it."
        )
        self._watch_clicks()

    def _watch_clicks(self, _value=None) -> None:
        """A click in the picked Labels layer picks the object under the cursor."""
        if self._clicked_layer is not None:
            callbacks = self._clicked_layer.mouse_drag_callbacks
            if self._pick_object in callbacks:
                callbacks.remove(self._pick_object)
            self._clicked_layer = None
        layer = self.labels_combo.value
        if layer is not None and self.target_kind.value == OBJECT:
            layer.mouse_drag_callbacks.append(self._pick_object)
            self._clicked_layer = layer

    def _pick_object(self, layer, event) -> None:
        if layer.mode != "pan_zoom":
            return
        value = layer.get_value(
            event.position,
            view_direction=event.view_direction,
            dims_displayed=event.dims_displayed,
            world=True,
        )
        if value:
            self.label_id.value = int(value)
            self.dock.set_status(f"object {int(value)} picked in {layer.name!r}")

    def target(self, image_layer, image_shape: tuple[int, int]):
        """The :class:`~napari_segqc.core.explain.attribution.Target` the controls describe,
        in the image's pixels."""
        output = self.output.value
        if self.target_kind.value == REGION:
            return region_target(self._region(image_layer, image_shape), output)
        labels_layer = self.labels_combo.value
        if labels_layer is None:
            raise SegQCError("pick the Labels layer that holds the object")
        labels, _ = current_plane(self.dock.viewer, labels_layer)
        if labels.shape != tuple(image_shape):
            raise SegQCError(
                f"{labels_layer.name!r} has shape {labels.shape} but the image plane has "
                f"{tuple(image_shape)}: pick labels of this image"
            )
        if self.label_id.value == 0:
            raise SegQCError(f"click an object in {labels_layer.name!r} (or type its id)")
        return label_target(labels, int(self.label_id.value), output)

    def _region(self, image_layer, image_shape) -> tuple[int, int, int, int]:
        shapes = self.shapes_combo.value
        if shapes is None or len(shapes.data) == 0:
            raise SegQCError("draw a rectangle in a Shapes layer around the region to explain")
        selected = sorted(shapes.selected_data)
        vertices = np.asarray(shapes.data[selected[-1] if selected else -1], float)
        corners = np.array([image_layer.world_to_data(shapes.data_to_world(v)) for v in vertices])[
            :, -2:
        ]
        (y0, x0), (y1, x1) = np.floor(corners.min(0)), np.ceil(corners.max(0))
        h, w = image_shape
        y0, x0, y1, x1 = max(0, int(y0)), max(0, int(x0)), min(h, int(y1)), min(w, int(x1))
        if y1 <= y0 or x1 <= x0:
            raise SegQCError(
                f"the rectangle in {shapes.name!r} lies outside the image ({h} x {w} pixels)"
            )
        return y0, x0, y1, x1

    # --- the job -----------------------------------------------------------------------------
    def job(self, source: str, device: str):
        from ..core.predict.auto import input_for_model

        layer = self.image_combo.value
        if layer is None:
            raise SegQCError("open or pick the image to explain")
        config = self.dock.model_config()
        if self.output.value not in TARGET_CHANNELS[config.target_mode]:
            names = ", ".join(TARGET_CHANNELS[config.target_mode])
            raise SegQCError(f"this model outputs only {names}: pick one of those")
        plane, lead = current_plane(self.dock.viewer, layer)
        image = input_for_model(plane, config.model.in_channels, rgb=bool(layer.rgb))
        target = self.target(layer, plane.shape[:2])
        self._source = (layer, lead)
        return partial(
            _attribution_job,
            source,
            device,
            image,
            target,
            self.method.value,
            int(self.steps.value),
            int(self.tile.value),
        )

    def show(self, result) -> None:
        layer, lead = self._source
        limit = float(np.percentile(np.abs(result.map), 99.9)) or 1.0
        where = f" [{', '.join(map(str, lead))}]" if lead else ""
        self.dock.add_or_update(
            f"{layer.name}{where} attribution",
            result.map,
            colormap=DIVERGING,
            contrast_limits=(-limit, limit),
            scale=tuple(layer.scale[-2:]),
            translate=tuple(layer.translate[-2:]),
            blending="translucent",
        )
        self.dock.set_status(describe_attribution(result))


#: Methods with a path of steps.
IG_LIKE = ("integrated_gradients",)


def describe_attribution(result) -> str:
    """One line: method, target, the output's value, IG's completeness gap, tiles, time."""
    target = result.target
    what = f"object {target['label']}" if target.get("label") else "the region"
    text = (
        f"{METHOD_TITLES.get(result.method, result.method)} of {target['output']} over {what}"
        f" (output sum {result.output_value:.1f}): "
    )
    gap = result.completeness_gap
    if gap is not None and np.isfinite(gap):
        text += f"completeness gap {gap:.1%}; "
    return text + f"{result.tiles} of {result.tiles_total} tiles, {result.seconds:.1f} s"
