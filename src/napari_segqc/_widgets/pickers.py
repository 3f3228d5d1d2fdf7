"""Layer pickers that follow the viewer's layer list and keep their choice.

magicgui refreshes a ComboBox of layers by name: when the picked layer is renamed its old name
is gone, and the picker jumps to the first layer. :class:`LayerPickers` refreshes the choices
whenever layers are inserted, removed, reordered or renamed, and puts every picker back on the
layer it held, as long as that layer is still in the viewer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from magicgui.widgets import ComboBox
from napari.layers import Layer
from qtpy.QtWidgets import QComboBox

#: A picker is at least this many characters wide; a long layer name never widens the dock.
MIN_CHARS = 12


def narrow(combo: ComboBox) -> ComboBox:
    """Let a combo box be narrower than its longest item (the dock's width never follows it)."""
    native = combo.native
    native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    native.setMinimumContentsLength(MIN_CHARS)
    return combo


class LayerPickers:
    """The layer pickers of one dock and their wiring to the viewer's layer events.

    ``refresh`` rebuilds the choices of the whole dock (the dock's own ``reset_choices``), and
    ``on_change(event)`` is called after every refresh caused by a layer event.
    """

    def __init__(self, viewer, refresh: Callable[[], None], on_change: Callable) -> None:
        self.viewer = viewer
        self.combos: list[ComboBox] = []
        self._refresh = refresh
        self._on_change = on_change
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self._on_layers_event)
        for layer in viewer.layers:
            layer.events.name.connect(self._on_renamed)

    def picker(
        self, label: str, kinds: tuple[type[Layer], ...], *, exact: bool = False, **kwargs
    ) -> ComboBox:
        """A ComboBox of the viewer's layers of ``kinds`` (exactly those types if ``exact``)."""

        def accepts(layer: Layer) -> bool:
            return type(layer) in kinds if exact else isinstance(layer, kinds)

        def choices(_widget=None) -> list[tuple[str, Layer]]:
            return [(layer.name, layer) for layer in self.viewer.layers if accepts(layer)]

        combo = narrow(ComboBox(label=label, choices=choices, **kwargs))
        self.combos.append(combo)
        return combo

    @contextmanager
    def keeping_picks(self) -> Iterator[None]:
        """Within: choices may be rebuilt; after: each picker holds its layer again if it still
        can, and emits ``changed`` once if (and only if) its layer changed."""
        before = {id(combo): combo.value for combo in self.combos}
        with ExitStack() as stack:
            for combo in self.combos:
                stack.enter_context(combo.changed.blocked())
            yield
            for combo in self.combos:
                layer = before[id(combo)]
                if layer is not None and any(layer is c for c in combo.choices):
                    combo.value = layer
        for combo in self.combos:
            if combo.value is not before[id(combo)]:
                combo.changed.emit(combo.value)

    def _on_layers_event(self, event) -> None:
        if event.type == "inserted":
            event.value.events.name.connect(self._on_renamed)
        elif event.type == "removed":
            event.value.events.name.disconnect(self._on_renamed)
        self._refresh()
        self._on_change(event)

    def _on_renamed(self, event) -> None:
        self._refresh()
        self._on_change(event)
