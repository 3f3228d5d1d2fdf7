"""Follow the data of the compared layers: re-decoding (``layer.data = ...``) and painting or
erasing with the Labels tools (``labels_update`` while painting, ``paint`` after a stroke).

:class:`DataWatch` calls ``on_change(layer)`` for every such event of the layers it watches;
the Quality control dock decides what to do (rerun after a pause, or mark the scores out of
date). The map layers the dock writes are never watched.

:func:`image_like_warning` names the picked Labels layers whose data looks like a grey-value
image (the dock's ``--pred-kind image``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from napari.layers import Labels, Layer

from ..core.qc.inputs import looks_like_image
from .layers import METADATA_KEY, layer_data

#: Layer events that mean "the data changed" (the Labels ones exist on Labels layers only).
DATA_EVENTS = ("data", "labels_update", "paint")
IMAGE_FIX = "convert it to an Image layer or pick the raw image as an Image layer"


class DataWatch:
    """Connect ``on_change`` to the data events of some layers; :meth:`watch` replaces them."""

    def __init__(self, on_change: Callable[[Layer], None]) -> None:
        self._on_change = on_change
        self._connected: list[tuple[object, Callable]] = []
        self.layers: list[Layer] = []

    def watch(self, layers: Iterable[Layer | None]) -> None:
        """Watch ``layers`` (None and this plugin's map layers skipped) instead of the last."""
        wanted = []
        for layer in layers:
            if layer is not None and METADATA_KEY not in layer.metadata and layer not in wanted:
                wanted.append(layer)
        if len(wanted) == len(self.layers) and all(
            a is b for a, b in zip(wanted, self.layers, strict=True)
        ):
            return
        self.clear()
        for layer in wanted:
            callback = self._callback(layer)
            for name in DATA_EVENTS:
                emitter = getattr(layer.events, name, None)
                if emitter is not None:
                    emitter.connect(callback)
                    self._connected.append((emitter, callback))
        self.layers = wanted

    def clear(self) -> None:
        for emitter, callback in self._connected:
            emitter.disconnect(callback)
        self._connected, self.layers = [], []

    def _callback(self, layer: Layer) -> Callable:
        def changed(_event=None) -> None:
            try:
                self._on_change(layer)
            except RuntimeError:  # the dock was closed (its Qt objects are gone)
                self.clear()

        return changed


def image_like_warning(layers: Iterable[Layer | None]) -> str:
    """A warning naming the Labels layers whose data looks like a grey-value image ("")."""
    names = []
    for layer in layers:
        if isinstance(layer, Labels) and METADATA_KEY not in layer.metadata:
            try:
                if looks_like_image(layer_data(layer)):  # reads a crop of the first slice only
                    names.append(repr(layer.name))
            except Exception:  # a check only: data it cannot read gets no warning
                continue
    if not names:
        return ""
    which = " and ".join(dict.fromkeys(names))
    return (
        f"{which} is a Labels layer but looks like a grey-value image: {IMAGE_FIX} "
        "(Labels are compared object by object)"
    )
