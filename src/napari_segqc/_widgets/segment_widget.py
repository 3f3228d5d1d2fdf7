"""The "Segment" dock widget: run a trained model on an image layer, tune the decoding live.

The network runs once, in the dock's worker (:class:`.base.DockWidget`: progress, Cancel, status
line); the decoding controls (threshold, minimum size, split height, minimum object probability)
then only re-run :func:`napari_segqc.core.instances.decoding.decode_labels` on the kept maps.
They start from the picked model's own settings (read from the file's header when the model is
picked) and keep the user's values across runs; "Model defaults" restores the model's.
What the model gets from the image (a colour image's channel, inverted intensities) and the
warning when the image looks unlike the training data are :class:`.segment_inputs.ImageInputs`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    PushButton,
    SpinBox,
)
from napari.layers import Image

from ..core.errors import SegQCError
from ..core.models.builtin import BUILTIN_MODELS, BUILTIN_TITLES
from ..core.models.formats import MODEL_FILE_FILTER
from .base import DockWidget
from .layers import SEGMENT_METADATA_KEY, layer_data
from .model_export import ModelExportRow
from .segment_decoding import DecodingMixin
from .segment_inputs import ImageInputs
from .session import TRAINED_MODELS

FILE_CHOICE = "run folder or file..."
AUTO_CHOICE = "auto (the built-in model that fits the image)"
TRAINED_PREFIX = "trained: "
BUILTIN_NAMES = {title: name for name, title in BUILTIN_TITLES.items()}


def _segment_job(
    source: str,
    image,
    device_name: str,
    tile: int,
    overlap: int,
    tta: bool,
    settings: dict,
    diameter,
):
    """Worker body: load the model, predict tile by tile at the model's scale (yielding
    (done, total)), decode with the decoding ``settings`` the dock shows."""
    from ..core.device import pick_device
    from ..core.instances.decoding import decode_labels
    from ..core.predict.loading import load_model
    from ..core.predict.segmentation import iter_scaled_maps

    loaded = load_model(source, pick_device(device_name))
    probs, scale = yield from iter_scaled_maps(
        loaded, image, diameter=diameter, tile=tile, overlap=overlap, tta=tta
    )
    labels = decode_labels(probs, loaded.config, scale=scale.factor, **settings)
    return loaded.config, probs, labels, settings, scale


def _estimate_job(source: str, image, device_name: str, tile: int, overlap: int):
    """Worker body: one network pass at the image's scale, and the objects' diameter."""
    from ..core.device import pick_device
    from ..core.predict.inference import iter_predict_probs
    from ..core.predict.loading import load_model
    from ..core.predict.scale import estimate_diameter

    loaded = load_model(source, pick_device(device_name))
    probs = yield from iter_predict_probs(loaded, image, tile=tile, overlap=overlap)
    return estimate_diameter(probs)


class SegmentWidget(DecodingMixin, DockWidget):
    """Segment an Image layer into a Labels layer with a trained or built-in model."""

    task = "segmentation"
    busy_text = "segmenting..."

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer, stop_text="Cancel")
        self.cancel_button = self.stop_button
        self._decode_worker = None
        self._decode_pending = False
        self.probs: np.ndarray | None = None
        #: the config of the model that made :attr:`probs`
        self.model_config = None
        self.map_scale = 1.0  # the resize factor of the kept maps' image (for min size)
        #: the config of the picked model (its header), None if it cannot be read
        self.picked_config = None
        self._image_layer: Image | None = None
        #: what ``auto`` picked for the picked image (:class:`~..core.predict.auto.ModelChoice`)
        self.auto_choice = None
        self._mode = "segment"
        self._run_note = ""  # which model and scale the last run used, for the status line
        self.image_combo = self.layer_picker("Image", Image)
        self.model_combo = ComboBox(label="Model", choices=self._model_choices)
        self.model_path = FileEdit(
            label="Model file", mode="r", visible=False, filter=MODEL_FILE_FILTER
        )
        self.inputs = ImageInputs(self)
        self.diameter = FloatSpinBox(
            label="Diameter (px)",
            value=0.0,
            min=0.0,
            max=2000.0,
            step=1.0,
            tooltip="Typical object diameter in pixels; 'auto' (0) estimates it from a first "
            "pass. Objects far from the model's size are segmented at the model's scale",
        )
        self.diameter.native.setSpecialValueText("auto")
        self.estimate_button = PushButton(
            text="Estimate", tooltip="Run the network once and fill in the objects' diameter"
        )
        self.device = ComboBox(label="Device", choices=["auto", "cpu", "cuda", "mps"])
        self.tile = SpinBox(label="Tile size", value=1024, min=64, max=4096, step=32)
        self.overlap = SpinBox(label="Overlap", value=64, min=0, max=1024, step=8)
        self._make_decoding_controls()
        self.tta = CheckBox(text="Flip test-time augmentation (4x slower)", value=False)
        self.show_probs = CheckBox(text="Add the probability map as a layer", value=False)
        self.exporter = ModelExportRow(self)
        form = Container(
            widgets=[
                self.image_combo,
                self.model_combo,
                self.model_path,
                self.inputs.channel,
                self.inputs.invert,
                self.inputs.note,
                Container(
                    label="Diameter (px)",
                    widgets=[self.diameter, self.estimate_button],
                    layout="horizontal",
                    labels=False,
                ),
                self.device,
                self.tile,
                self.overlap,
                self.tta,
                self.run_panel,
                self.threshold,
                self.min_size,
                self.split_height,
                self.min_object_prob,
                self.defaults_button,
                self.show_probs,
            ],
            labels=True,
        )
        self.add(form, self.exporter)
        self.model_combo.changed.connect(self._on_model_choice)
        self.model_path.changed.connect(lambda _v: self._read_picked_model())
        self.defaults_button.changed.connect(self.model_defaults)
        self.estimate_button.changed.connect(self.estimate)
        self.image_combo.changed.connect(self._on_image)
        for control in self.decoding_controls.values():
            control.changed.connect(self.redecode)
        self._on_model_choice(self.model_combo.value)

    def _model_choices(self, _w=None):
        names = [BUILTIN_TITLES.get(n, n) for n, p in BUILTIN_MODELS.items() if p.is_file()]
        names += [f"{TRAINED_PREFIX}{p}" for p in reversed(TRAINED_MODELS)]
        return [AUTO_CHOICE, *names, FILE_CHOICE]

    @property
    def is_auto(self) -> bool:
        return self.model_combo.value == AUTO_CHOICE

    def _on_image(self, _value=None) -> None:
        if self.is_auto:  # another image may need the other model
            self._read_picked_model()

    def _on_model_choice(self, value) -> None:
        self.model_path.visible = value == FILE_CHOICE
        self.inputs.channel.enabled = self.inputs.invert.enabled = value != AUTO_CHOICE
        self._read_picked_model()

    def _read_picked_model(self) -> None:
        """Read the picked model's config (header only: fast); its decoding settings go to the
        controls (no question asked: a new model, its own settings)."""
        from ..core.predict.loading import read_config

        self.picked_config = None
        try:
            self.picked_config = read_config(self._resolved_source())
        except SegQCError as exc:
            if self.model_combo.value != FILE_CHOICE or Path(self.model_path.value).is_file():
                self.show_error(f"cannot read the model: {exc}")
        else:
            self.set_controls(self.picked_config)
        self.inputs.refresh()

    def model_source(self) -> str:
        value = self.model_combo.value
        if value == FILE_CHOICE:
            path = Path(self.model_path.value)
            if str(path) in ("", ".") or not path.exists():
                raise SegQCError(f"choose a run folder or a model file ({path})")
            return str(path)
        if value.startswith(TRAINED_PREFIX):
            return value[len(TRAINED_PREFIX) :]
        if value == AUTO_CHOICE:
            return "auto"
        return BUILTIN_NAMES.get(value, value)

    def _resolved_source(self) -> str:
        """The model source; with ``auto``, the built-in model picked for the picked image
        (its Invert follows the choice; "nuclei" while no image is picked)."""
        from ..core.predict.auto import FLUORESCENCE, choose_model

        source = self.model_source()
        if source != "auto":
            return source
        layer = self.image_combo.value
        if layer is None:
            self.auto_choice = None
            return FLUORESCENCE
        self.auto_choice = choose_model(layer_data(layer), rgb=bool(layer.rgb))
        with self.inputs.invert.changed.blocked():
            self.inputs.invert.value = self.auto_choice.invert
        return self.auto_choice.model

    def export_source(self) -> str:
        """The model the export row writes: the picked one (with auto, the one it picks for
        the picked image)."""
        return self._resolved_source()

    def export_calibration(self) -> list:
        """int8 calibration images of a model without shipped samples: the picked image."""
        image = self.image_combo.value
        if image is None:
            raise SegQCError(
                "int8 export of a trained model calibrates on the picked image: pick an image "
                "like the model's training images (or use segqc export --calibration DIR)"
            )
        from ..core.predict.inference import check_image
        from ..core.predict.loading import read_config

        data = self.inputs.model_input(image)
        lead, _ = check_image(data, read_config(self.export_source()))
        return [np.asarray(data[tuple(n // 2 for n in lead)])]  # the middle slice of a stack

    def prepare(self):
        """Check the inputs against the model's header (channels, shapes) before the model is
        loaded, so that a mismatch is said at once."""

        image = self.image_combo.value
        if image is None:
            raise SegQCError("open or pick an image layer to segment")
        source, data = self._model_and_input(image)
        self._mode = "segment"
        self._run_note = f"{self.auto_choice.describe()}: " if self.is_auto else ""
        return partial(
            _segment_job,
            source,
            data,
            self.device.value,
            int(self.tile.value),
            int(self.overlap.value),
            bool(self.tta.value),
            self.decoding_settings(),
            self.diameter.value or "auto",
        )

    def _model_and_input(self, image):
        """The model source and the image as it gets it, checked against the model's header."""
        from ..core.predict.inference import check_image
        from ..core.predict.loading import read_config

        source = self._resolved_source()
        self.inputs.refresh()
        data = self.inputs.model_input(image)
        check_image(data, read_config(source))
        self._image_layer = image
        return source, data

    def estimate(self, _value=None) -> None:
        """Estimate the objects' diameter (one network pass in the worker) into the control."""
        image = self.image_combo.value
        if image is None:
            self.show_error("open or pick an image layer first")
            return
        try:
            source, data = self._model_and_input(image)
        except SegQCError as exc:
            self.show_error(str(exc))
            return
        job = partial(
            _estimate_job,
            source,
            data,
            self.device.value,
            int(self.tile.value),
            int(self.overlap.value),
        )
        self._mode = "estimate"
        self.start_job(job, busy_text="estimating the object size...")

    def cancel(self) -> None:
        self.stop()

    def on_aborted(self) -> None:
        self.set_status("cancelled")

    def on_yielded(self, done_total) -> None:
        self.set_progress(*done_total)

    def on_returned(self, result) -> None:
        if self._mode == "estimate":
            self._mode = "segment"
            if result is None:
                self.set_status("no objects found: diameter not estimated")
            else:
                self.diameter.value = round(result, 1)
                self.set_status(f"estimated diameter: {result:.0f} px")
            return
        self.model_config, self.probs, labels, settings, scale = result
        self.map_scale = scale.factor
        self._run_note += f"{scale.describe()}; "
        self.split_height.enabled = self.model_config.target_mode == "instance"
        self._show_labels(labels)  # ids unique across slices: the max is the total count
        if self.show_probs.value:
            foreground = self.probs[..., 0, :, :]
            self._put_layer(f"{self._image_layer.name} probability", foreground, "image")
        self.show_info(f"SegQC: {self._image_layer.name}: {self._run_note}{_objects(labels)}")
        if settings != self.decoding_settings():  # changed while the network ran
            self.redecode()

    def _show_labels(self, labels: np.ndarray) -> None:
        self.labels_layer = self._put_layer(f"{self._image_layer.name} labels", labels, "labels")
        self.set_status(self._run_note + _objects(labels))

    def _put_layer(self, name: str, data: np.ndarray, kind: str):
        src = self._image_layer
        if name in self.viewer.layers and self.viewer.layers[name].metadata.get(
            SEGMENT_METADATA_KEY
        ):
            layer = self.viewer.layers[name]
            layer.data = data
            return layer
        add = self.viewer.add_labels if kind == "labels" else self.viewer.add_image
        options = (
            {"colormap": "magma", "contrast_limits": (0, 1), "opacity": 0.6}
            if kind == "image"
            else {"opacity": 0.6}
        )
        return add(
            data,
            name=name,
            scale=src.scale,
            translate=src.translate,
            metadata={SEGMENT_METADATA_KEY: True},
            **options,
        )


def _objects(labels: np.ndarray) -> str:
    """The object count of labels whose ids are unique across slices (1, 2, ... n)."""
    n = int(labels.max()) if labels.size else 0
    slices = labels.shape[:-2]
    where = f" in {int(np.prod(slices))} slices" if slices and int(np.prod(slices)) > 1 else ""
    return f"{n} object{'s' if n != 1 else ''}{where}"
