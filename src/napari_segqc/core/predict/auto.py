"""``--model auto``: the built-in model that fits an image, chosen from a sample of it.

* a colour image (channels that differ) -> ``nuclei-stained``, given the RGB channels;
* a grey image with a bright background (brightfield: dark nuclei on a light background) ->
  :data:`GREY_BRIGHTFIELD` (``nuclei-stained``, the grey image given as three equal channels;
  chosen on the validation split, see the model cards);
* any other grey image (fluorescence: bright nuclei on a dark background) -> ``nuclei``.

An RGB file whose channels are equal counts as grey. Only a strided sample of the image is
read (:func:`.image_checks.sample_image`), so big and lazy images cost nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.normalize import BRIGHT_BACKGROUND, background_place
from .image_checks import GREY_MEAN, _coloured, _lazy, sample_image

AUTO = "auto"
FLUORESCENCE = "nuclei"
STAINED = "nuclei-stained"
#: The built-in model for grey brightfield images (the other way: ``nuclei`` on the inverted
#: image); the validation split chose it.
GREY_BRIGHTFIELD = STAINED


@dataclass(frozen=True)
class ModelChoice:
    """The built-in ``model`` picked for an image, whether the image is ``inverted`` before
    it, and why (``reason``, for the user)."""

    model: str
    invert: bool
    reason: str

    def describe(self) -> str:
        return f"{self.model}{' on the inverted image' if self.invert else ''} ({self.reason})"


def looks_rgb(image) -> bool:
    """Whether an array is an RGB(A) image or stack of them, by its last axis."""
    return image.ndim >= 3 and image.shape[-1] in (3, 4)


def choose_model(image, *, rgb: bool | None = None) -> ModelChoice:
    """The built-in model for ``image`` (see the module); ``rgb=None`` guesses from the shape."""
    rgb = looks_rgb(image) if rgb is None else rgb
    sample = sample_image(image, rgb=rgb)
    if rgb and _coloured(sample):
        return ModelChoice(STAINED, False, "colour image")
    grey = sample[..., :3].mean(axis=-1) if rgb else sample
    if background_place(grey) > BRIGHT_BACKGROUND:
        invert = GREY_BRIGHTFIELD == FLUORESCENCE
        return ModelChoice(GREY_BRIGHTFIELD, invert, "grey, bright background: brightfield")
    return ModelChoice(FLUORESCENCE, False, "grey, dark background: fluorescence")


def input_for_model(image, in_channels: int, *, rgb: bool | None = None, invert: bool = False):
    """``image`` as a model of ``in_channels`` channels takes it: a grey image for a colour
    model becomes three equal channels, a colour image for a grey model the mean of its
    channels, and with ``invert`` intensities are flipped over the image's range. Views or
    lazy arrays: nothing big is copied."""
    from .image_checks import RGB, prepare_image

    rgb = looks_rgb(image) if rgb is None else rgb
    if rgb and in_channels == 1:
        image, rgb = prepare_image(image, rgb=True, channel=GREY_MEAN), False
    if invert:  # colour stays colour here: a grey model's input is already grey
        image = prepare_image(image, rgb=rgb, channel=RGB, invert=True)
    if not rgb and in_channels == 3:
        lazy = _lazy(image)
        if isinstance(lazy, np.ndarray):
            image = np.broadcast_to(lazy[..., None], (*lazy.shape, 3))
        else:
            import dask.array as da

            image = da.stack([lazy] * 3, axis=-1)
    elif rgb and in_channels == 3:
        image = image[..., :3]
    return image


class BuiltinModels:
    """Built-in models loaded on first use and kept (``get(name)``), for runs over many
    images with ``auto``."""

    def __init__(self, device=None, backend: str = "auto") -> None:
        self.device = device
        self.backend = backend
        self._loaded: dict[str, object] = {}

    def get(self, name: str):
        from .loading import load_model

        if name not in self._loaded:
            self._loaded[name] = load_model(name, self.device, self.backend)
        return self._loaded[name]
