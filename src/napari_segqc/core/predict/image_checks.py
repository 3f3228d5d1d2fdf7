"""What the network gets from an image, and whether it looks like the models' training data.

The built-in models learnt from grey fluorescence images: bright objects on a dark background.
Before a run, :func:`prepare_image` turns the image into what the model takes (a colour
image's channel or channel mean, intensities inverted for a bright background), and
:func:`look_checks` says, from a strided sample only (big and lazy images are never read in
full), when the result looks unlike such data - a bright background, a colour image reduced to
the mean of its channels, a uniform image - so that the user can act before segmenting
nonsense. Intensity ranges do not matter: inference normalises with the image's percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.normalize import BRIGHT_BACKGROUND, HIGH, LOW

GREY_MEAN = "grey (mean of channels)"
RGB = "RGB"
CHANNELS = ("channel 1", "channel 2", "channel 3")
#: Pixels of one slice read to judge an image (a strided sample of bigger ones).
SAMPLE_PIXELS = 512 * 512
#: Slices of a stack or time-lapse read to judge it (evenly spaced).
SAMPLE_SLICES = 3
#: Numpy images bigger than this many values are converted lazily (dask), not copied.
LAZY_VALUES = 16_000_000


def channel_choices(in_channels: int) -> list[str]:
    """How a colour image can be given to a model that takes ``in_channels`` channels."""
    return [*([RGB] if in_channels == 3 else []), GREY_MEAN, *CHANNELS]


def prepare_image(image, *, rgb: bool, channel: str = GREY_MEAN, invert: bool = False):
    """The image as the model gets it: for a colour (``rgb``) image its ``channel`` choice
    (:data:`RGB`: as is; :data:`GREY_MEAN`; ``"channel N"``), then, with ``invert``,
    intensities flipped over the image's own range (``max + min - x``, the range read from a
    sample). Cheap: a view or a lazy (dask) array for big or lazy input."""
    if rgb and channel != RGB:
        if channel == GREY_MEAN:
            image = _lazy(image)[..., :3].mean(axis=-1, dtype=np.float32)
        elif channel in CHANNELS:
            index = CHANNELS.index(channel)
            if image.shape[-1] <= index:
                from ..errors import SegQCError

                raise SegQCError(f"the image has no {channel} (shape {tuple(image.shape)})")
            image = image[..., index]
        else:
            raise ValueError(f"unknown channel choice {channel!r}")
        rgb = False
    if invert:
        sample = sample_image(image, rgb=rgb)
        lo, hi = float(np.min(sample)), float(np.max(sample))
        image = (lo + hi) - _lazy(image).astype(np.float32)
    return image


def sample_image(image, *, rgb: bool) -> np.ndarray:
    """A strided sample, as float32 ``(slices, h, w[, channels])``, of at most
    :data:`SAMPLE_SLICES` slices of :data:`SAMPLE_PIXELS` each: all that is read of the image."""
    lead_dims = image.ndim - (3 if rgb else 2)
    lead = tuple(int(n) for n in image.shape[:lead_dims])
    h, w = (int(n) for n in image.shape[lead_dims : lead_dims + 2])
    stride = max(1, int(np.ceil(np.sqrt(h * w / SAMPLE_PIXELS))))
    count = int(np.prod(lead))
    picks = sorted(set(np.linspace(0, count - 1, min(count, SAMPLE_SLICES)).round().astype(int)))
    step = slice(None, None, stride)
    planes = [np.asarray(image[(*np.unravel_index(i, lead), step, step)]) for i in picks]
    return np.stack(planes).astype(np.float32, copy=False)


@dataclass(frozen=True)
class LookCheck:
    """One way an image looks unlike the training data: ``kind`` is ``"bright_background"``,
    ``"colour"`` or ``"uniform"``; ``message`` says what was seen."""

    kind: str
    message: str


def look_checks(
    image,
    *,
    rgb: bool,
    in_channels: int = 1,
    channel: str = GREY_MEAN,
    invert: bool = False,
    bright_fraction: float = 0.0,
) -> list[LookCheck]:
    """How ``image``, once prepared (:func:`prepare_image` with ``channel`` and ``invert``),
    looks unlike the model's training images, judged from a sample; ``[]`` when it looks like
    them. Colour only counts when a grey model (``in_channels`` 1) would get the mean of
    differing channels. ``bright_fraction``: the share of the model's training images with a
    bright background (its config's); above a half the model expects bright backgrounds
    (stained, brightfield) and a dark one is what is unlike its data."""
    sample = sample_image(image, rgb=rgb)
    if not np.isfinite(sample).all():
        return []  # inference says so, with where
    checks = []
    if rgb and channel == GREY_MEAN and in_channels == 1 and _coloured(sample):
        checks.append(
            LookCheck(
                "colour",
                "a colour image: the model, trained on grey images, gets the mean of its channels",
            )
        )
    grey = prepare_image(sample, rgb=rgb, channel=channel, invert=invert)
    grey = np.asarray(grey, dtype=np.float32)
    if rgb and channel == RGB:  # colour as is: judge the brightness
        grey = grey[..., :3].mean(axis=-1)
    lo, hi = np.percentile(grey, [LOW, HIGH])
    if hi <= lo:
        checks.append(LookCheck("uniform", "a uniform image: nothing stands out to segment"))
        return checks
    place = (float(np.median(grey)) - lo) / (hi - lo)
    if bright_fraction > 0.5:
        if place <= BRIGHT_BACKGROUND:
            checks.append(
                LookCheck(
                    "dark_background",
                    "a dark background: the model expects dark objects on a bright one "
                    "(stained or brightfield images)",
                )
            )
        return checks
    if place > BRIGHT_BACKGROUND:
        checks.append(
            LookCheck(
                "bright_background",
                f"a bright background{' after inverting' if invert else ''}: the model "
                "expects bright objects on a dark one (fluorescence)",
            )
        )
    return checks


def _coloured(sample: np.ndarray) -> bool:
    """Whether the colour channels differ by more than a few percent of the intensity range."""
    rgb = sample[..., :3]
    spread = float(np.percentile(rgb, HIGH) - np.percentile(rgb, LOW)) or 1.0
    difference = np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).mean()
    return difference > 0.02 * spread


def _lazy(image):
    """Big numpy images as dask arrays (conversions then run tile by tile, no full copy)."""
    if isinstance(image, np.ndarray) and image.size > LAZY_VALUES:
        import dask.array as da

        return da.from_array(image)
    if isinstance(image, np.ndarray) or hasattr(image, "dask"):
        return image
    import dask.array as da  # zarr, h5py and other lazy arrays

    return da.from_array(image)
