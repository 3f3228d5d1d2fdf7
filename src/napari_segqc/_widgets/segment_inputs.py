"""What the Segment dock gives the model from an image layer, and the warning before a run.

A colour image goes to a grey model as one channel or the mean of the channels (a colour model
may also take it as it is); "Invert" flips the intensities of bright-background images. When
the image, so prepared, looks unlike the models' training data (a bright background, a colour
image reduced to the mean of differing channels, a uniform image; see
:func:`napari_segqc.core.predict.image_checks.look_checks`) or does not fit the model at all,
a note under these controls says so and what to do, as soon as the image or model is picked.
"""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Label
from qtpy.QtCore import Qt

from ..core.errors import SegQCError
from ..core.predict.image_checks import (
    GREY_MEAN,
    RGB,
    channel_choices,
    look_checks,
    prepare_image,
)
from .base import wrapping
from .layers import layer_data

INVERT_TEXT = "Invert (bright background)"
#: Readable on napari's dark and light themes; not the red of errors.
NOTE_STYLE = "color: #e0a030;"
NOTE_TITLE = "Unlike the model's training data:"


def _advice(kind: str, invert: bool) -> str:
    if kind in ("bright_background", "dark_background"):
        return f'{"untick" if invert else "tick"} "{INVERT_TEXT}"'
    if kind == "colour":
        return 'pick the channel that shows the objects under "Channel"'
    return "pick another image"


class ImageInputs:
    """The Segment dock's image controls: ``channel`` (colour images only), ``invert``, and
    ``note``, the warning shown before a run."""

    def __init__(self, dock) -> None:
        self.dock = dock
        self._offered_for = 1  # the model channels the choices were made for
        self.channel = ComboBox(
            label="Channel",
            choices=lambda _w: channel_choices(self.in_channels),  # kept on the dock's resets
            value=GREY_MEAN,
            visible=False,
            tooltip="What the model gets from a colour image: one channel (the one that shows "
            "the objects, e.g. the nuclear stain), the mean of the channels, or (models "
            "trained on colour images) the colour image itself",
        )
        self.invert = CheckBox(
            text=INVERT_TEXT,
            value=False,
            tooltip="Flip the intensities (max + min - value) so that dark objects on a bright "
            "background (brightfield, histology) look like fluorescence",
        )
        self.note = wrapping(Label(value="", visible=False))
        self.note.native.setTextFormat(Qt.TextFormat.PlainText)
        self.note.native.setStyleSheet(NOTE_STYLE)
        dock.image_combo.changed.connect(self.refresh)
        self.channel.changed.connect(self.refresh)
        self.invert.changed.connect(self.refresh)

    @property
    def in_channels(self) -> int:
        config = self.dock.picked_config
        return config.model.in_channels if config is not None else 1

    def model_input(self, layer):
        """The layer's data as the model gets it (cheap: a view or a lazy array): a colour
        image's channel choice, inverted if asked, and a grey image given to a colour model
        as three equal channels."""
        from ..core.predict.auto import input_for_model

        rgb, channel = bool(layer.rgb), self.channel.value
        data = prepare_image(
            layer_data(layer), rgb=rgb, channel=channel, invert=bool(self.invert.value)
        )
        return input_for_model(data, self.in_channels, rgb=rgb and channel == RGB)

    def refresh(self, _value=None) -> None:
        """Update the channel choice (shown for colour images only) and the note."""
        layer = self.dock.image_combo.value
        with self.channel.changed.blocked():
            self.channel.reset_choices()
            if self._offered_for != self.in_channels:  # another kind of model
                self._offered_for = self.in_channels
                self.channel.value = channel_choices(self.in_channels)[0]  # colour: as is
        self.channel.visible = bool(layer is not None and layer.rgb)
        self.show_note(self.problems(layer))

    def problems(self, layer) -> list[str]:
        """What is wrong with the picked image for the picked model, with what to do."""
        from ..core.predict.inference import check_image

        if layer is None:
            return []
        invert = bool(self.invert.value)
        try:
            checks = look_checks(
                layer_data(layer),
                rgb=bool(layer.rgb),
                in_channels=self.in_channels,
                channel=self.channel.value,
                invert=invert,
                bright_fraction=getattr(self.dock.picked_config, "bright_fraction", 0.0),
            )
            lines = [f"{c.message}; {_advice(c.kind, invert)}." for c in checks]
            if self.dock.picked_config is not None:
                check_image(self.model_input(layer), self.dock.picked_config)
        except SegQCError as exc:
            return [f"{exc}."]
        except (ValueError, IndexError, TypeError):  # shapes inference refuses with a reason
            return []
        return lines

    def show_note(self, lines: list[str]) -> None:
        text = "\n".join([NOTE_TITLE, *(f"\u2022 {line}" for line in lines)]) if lines else ""
        self.note.value = text
        self.note.visible = bool(text)
