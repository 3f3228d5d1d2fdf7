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
    FloatSlider,
    PushButton,
    SpinBox,
)
from napari.layers import Image
from napari.qt.threading import create_worker

from ..core.errors import SegQCError
from ..core.models.builtin import BUILTIN_MODELS, BUILTIN_TITLES
from .base import DockWidget
from .layers import SEGMENT_METADATA_KEY
from .segment_inputs import ImageInputs
from .session import TRAINED_MODELS

FILE_CHOICE = "run folder or file..."
TRAINED_PREFIX = "trained: "
BUILTIN_NAMES = {title: name for name, title in BUILTIN_TITLES.items()}
#: Maps up to this many pixels (all slices) are re-decoded on the GUI thread (~0.1 s per
#: 520 x 696 slice); bigger ones in a worker thread.
LIVE_DECODE_PIXELS = 4_000_000


def _segment_job(
    source: str, image, device_name: str, tile: int, overlap: int, tta: bool, settings: dict
):
    """Worker body: load the model, predict tile by tile (yielding (done, total)), decode with
    the decoding ``settings`` the dock shows."""
    from ..core.device import pick_device
    from ..core.instances.decoding import decode_labels
    from ..core.predict.inference import iter_predict_probs
    from ..core.predict.loading import load_model

    device = pick_device(device_name)
    loaded = load_model(source, device)
    probs = yield from iter_predict_probs(
        loaded,
        image,
        tile=tile,
        overlap=overlap,
        tta=tta,
    )
    return loaded.config, probs, decode_labels(probs, loaded.config, **settings), settings


class SegmentWidget(DockWidget):
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
        #: the config of the picked model (its header), None if it cannot be read
        self.picked_config = None
        self._image_layer: Image | None = None
        self.image_combo = self.layer_picker("Image", Image)
        self.model_combo = ComboBox(label="Model", choices=self._model_choices)
        self.model_path = FileEdit(
            label="Model file", mode="r", visible=False, filter="*.safetensors"
        )
        self.inputs = ImageInputs(self)
        self.device = ComboBox(label="Device", choices=["auto", "cpu", "cuda", "mps"])
        self.tile = SpinBox(label="Tile size", value=1024, min=64, max=4096, step=32)
        self.overlap = SpinBox(label="Overlap", value=64, min=0, max=1024, step=8)
        self.threshold = FloatSlider(label="Threshold", value=0.5, min=0.05, max=0.95, step=0.01)
        self.min_size = SpinBox(label="Min size (px)", value=15, min=0, max=100_000)
        self.split_height = FloatSlider(
            label="Split height",
            value=0.2,
            min=0.0,
            max=0.6,
            step=0.01,
            tooltip="How far a nucleus core must rise above the dip to its neighbour to become "
            "its own object: lower splits touching nuclei more, higher merges more "
            "(0: split at gaps in the core map only). Models with instance targets only.",
        )
        self.min_object_prob = FloatSlider(
            label="Min object prob",
            value=0.0,
            min=0.0,
            max=0.99,
            step=0.01,
            tooltip="Drop objects whose mean foreground probability is lower: objects the "
            "network is unsure of (at or below the threshold: none dropped).",
        )
        #: config field -> control, for every decoding setting the widget offers
        self.decoding_controls = {
            "threshold": self.threshold,
            "min_size": self.min_size,
            "split_height": self.split_height,
            "min_object_prob": self.min_object_prob,
        }
        self.defaults_button = PushButton(
            text="Model defaults",
            tooltip="Set threshold, min size, split height and min object prob to the picked "
            "model's own settings",
        )
        self.tta = CheckBox(text="Flip test-time augmentation (4x slower)", value=False)
        self.show_probs = CheckBox(text="Add the probability map as a layer", value=False)
        form = Container(
            widgets=[
                self.image_combo,
                self.model_combo,
                self.model_path,
                self.inputs.channel,
                self.inputs.invert,
                self.inputs.note,
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
        self.add(form)
        self.model_combo.changed.connect(self._on_model_choice)
        self.model_path.changed.connect(lambda _v: self._read_picked_model())
        self.defaults_button.changed.connect(self.model_defaults)
        for control in self.decoding_controls.values():
            control.changed.connect(self.redecode)
        self._on_model_choice(self.model_combo.value)

    def _model_choices(self, _w=None):
        names = [BUILTIN_TITLES.get(n, n) for n, p in BUILTIN_MODELS.items() if p.is_file()]
        names += [f"{TRAINED_PREFIX}{p}" for p in reversed(TRAINED_MODELS)]
        return [*names, FILE_CHOICE]

    def _on_model_choice(self, value) -> None:
        self.model_path.visible = value == FILE_CHOICE
        self._read_picked_model()

    def _read_picked_model(self) -> None:
        """Read the picked model's config (header only: fast); its decoding settings go to the
        controls (no question asked: a new model, its own settings)."""
        from ..core.predict.loading import read_config

        self.picked_config = None
        try:
            self.picked_config = read_config(self.model_source())
        except SegQCError as exc:
            if self.model_combo.value != FILE_CHOICE or Path(self.model_path.value).is_file():
                self.show_error(f"cannot read the model: {exc}")
        else:
            self.set_controls(self.picked_config)
        self.inputs.refresh()

    def set_controls(self, config) -> None:
        """Show ``config``'s decoding settings in the controls (nothing re-decoded)."""
        for name, control in self.decoding_controls.items():
            with control.changed.blocked():
                control.value = getattr(config, name)
        self.split_height.enabled = config.target_mode == "instance"

    def model_defaults(self, _value=None) -> None:
        """Restore the picked model's decoding settings, and decode the kept maps with them."""
        if self.picked_config is None:
            self.show_error("pick a model whose settings can be read first")
            return
        self.set_controls(self.picked_config)
        self.redecode()

    def decoding_settings(self) -> dict:
        return {name: control.value for name, control in self.decoding_controls.items()}

    def model_source(self) -> str:
        value = self.model_combo.value
        if value == FILE_CHOICE:
            path = Path(self.model_path.value)
            if str(path) in ("", ".") or not path.exists():
                raise SegQCError(f"choose a run folder or a .safetensors model file ({path})")
            return str(path)
        if value.startswith(TRAINED_PREFIX):
            return value[len(TRAINED_PREFIX) :]
        return BUILTIN_NAMES.get(value, value)

    def prepare(self):
        """Check the inputs against the model's header (channels, shapes) before the model is
        loaded, so that a mismatch is said at once."""
        from ..core.predict.inference import check_image
        from ..core.predict.loading import read_config

        image = self.image_combo.value
        if image is None:
            raise SegQCError("open or pick an image layer to segment")
        if image.multiscale:
            raise SegQCError(f"{image.name!r}: multiscale images are not supported yet")
        source = self.model_source()
        data = self.inputs.model_input(image)
        check_image(data, read_config(source))
        self._image_layer = image
        return partial(
            _segment_job,
            source,
            data,
            self.device.value,
            int(self.tile.value),
            int(self.overlap.value),
            bool(self.tta.value),
            self.decoding_settings(),
        )

    def cancel(self) -> None:
        self.stop()

    def on_aborted(self) -> None:
        self.set_status("cancelled")

    def on_yielded(self, done_total) -> None:
        self.set_progress(*done_total)

    def on_returned(self, result) -> None:
        self.model_config, self.probs, labels, settings = result
        self.split_height.enabled = self.model_config.target_mode == "instance"
        self._show_labels(labels)  # ids unique across slices: the max is the total count
        if self.show_probs.value:
            foreground = self.probs[..., 0, :, :]
            self._put_layer(f"{self._image_layer.name} probability", foreground, "image")
        self.show_info(f"SegQC: {self._image_layer.name}: {_objects(labels)}")
        if settings != self.decoding_settings():  # changed while the network ran
            self.redecode()

    def redecode(self, _value=None) -> None:
        """Decode the kept maps with the current settings of the decoding controls (no
        network): at once for maps up to :data:`LIVE_DECODE_PIXELS`, else in a worker thread
        (a change made meanwhile is decoded when it ends) so that napari stays responsive."""
        if self.probs is None or self._image_layer is None:
            return
        from ..core.instances.decoding import decode_labels

        settings = self.decoding_settings()
        if self.probs[..., 0, :, :].size <= LIVE_DECODE_PIXELS:
            self._show_labels(decode_labels(self.probs, self.model_config, **settings))
            return
        if self._decode_worker is not None:
            self._decode_pending = True
            return
        self.set_status("decoding...")
        self._decode_worker = create_worker(
            decode_labels,
            self.probs,
            self.model_config,
            **settings,
            _connect={
                "returned": partial(self._on_decoded, self.probs),
                "errored": self.on_errored,
                "finished": self._on_decode_finished,
            },
            _start_thread=False,
        )
        self._decode_worker.start()

    def _on_decoded(self, probs: np.ndarray, labels: np.ndarray) -> None:
        if probs is self.probs:  # not from the maps of an earlier run
            self._show_labels(labels)

    def _on_decode_finished(self) -> None:
        self._decode_worker = None
        if self._decode_pending:
            self._decode_pending = False
            self.redecode()

    def _show_labels(self, labels: np.ndarray) -> None:
        self.labels_layer = self._put_layer(f"{self._image_layer.name} labels", labels, "labels")
        self.set_status(_objects(labels))

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
