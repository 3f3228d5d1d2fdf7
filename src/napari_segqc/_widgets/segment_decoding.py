"""The Segment dock's decoding controls (threshold, minimum size, split height, minimum object
probability, "Model defaults") and live re-decoding of the kept maps when they change: the
network never runs again, see :func:`napari_segqc.core.instances.decoding.decode_labels`."""

from __future__ import annotations

from functools import partial

import numpy as np
from magicgui.widgets import FloatSlider, PushButton, SpinBox
from napari.qt.threading import create_worker

#: Maps up to this many pixels (all slices) are re-decoded on the GUI thread (~0.1 s per
#: 520 x 696 slice); bigger ones in a worker thread.
LIVE_DECODE_PIXELS = 4_000_000


class DecodingMixin:
    """For the Segment dock: its decoding controls and re-decoding. The dock provides
    ``probs``, ``model_config`` and ``map_scale`` (the kept maps, their model, and the resize
    factor of their image for that model), ``picked_config``,
    ``_image_layer``, ``_show_labels`` and the :class:`.base.DockWidget` status methods."""

    def _make_decoding_controls(self) -> None:
        self.threshold = FloatSlider(label="Threshold", value=0.5, min=0.05, max=0.95, step=0.01)
        self.min_size = SpinBox(
            label="Min size (px)",
            value=15,
            min=0,
            max=100_000,
            tooltip="Smallest object kept, in pixels at the model's scale: the image's own "
            "pixels unless the object size rescaled it (the status line says how)",
        )
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

    def redecode(self, _value=None) -> None:
        """Decode the kept maps with the current settings of the decoding controls (no
        network): at once for maps up to :data:`LIVE_DECODE_PIXELS`, else in a worker thread
        (a change made meanwhile is decoded when it ends) so that napari stays responsive."""
        if self.probs is None or self._image_layer is None:
            return
        from ..core.instances.decoding import decode_labels

        settings = self.decoding_settings()
        if self.probs[..., 0, :, :].size <= LIVE_DECODE_PIXELS:
            self._show_labels(
                decode_labels(self.probs, self.model_config, scale=self.map_scale, **settings)
            )
            return
        if self._decode_worker is not None:
            self._decode_pending = True
            return
        self.set_status("decoding...")
        self._decode_worker = create_worker(
            decode_labels,
            self.probs,
            self.model_config,
            scale=self.map_scale,
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
