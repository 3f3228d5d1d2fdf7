"""Channel choice, inversion and the "unlike the training data" checks made before a run."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.predict import image_checks
from napari_segqc.core.predict.image_checks import (
    GREY_MEAN,
    RGB,
    channel_choices,
    look_checks,
    prepare_image,
    sample_image,
)


def brightfield(image: np.ndarray) -> np.ndarray:
    """A fluorescence image turned into a tinted bright-background colour image (like
    brightfield or histology saved as RGB)."""
    inverted = 255.0 - image
    return np.stack([inverted, 0.9 * inverted, 0.75 * inverted + 20], axis=-1).astype(np.uint8)


def kinds(checks) -> list[str]:
    return [c.kind for c in checks]


class ReadLog:
    """An array-like that records every read (a stand-in for a lazy zarr/h5py array)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.reads = data, []
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, index):
        out = self.data[index]
        self.reads.append(out.size)
        return out


def test_fluorescence_images_look_like_the_training_data(sample_pair, sample_dir):
    import tifffile

    for path in sorted((sample_dir / "images").glob("*.tif")):
        assert look_checks(tifffile.imread(path), rgb=False) == [], path.name
    stack = np.stack([sample_pair[0], sample_pair[0][::-1]])
    assert look_checks(stack, rgb=False) == []


def test_dsb_fluorescence_images_raise_no_warning(shared_data):
    import tifffile

    paths = sorted((shared_data / "dsb2018" / "train" / "images").glob("*.tif"))[::10]
    assert len(paths) >= 40
    for path in paths:
        image = tifffile.imread(path)
        assert look_checks(image, rgb=image.ndim == 3) == [], path.name


def test_bright_colour_image_is_flagged_with_what_to_do(sample_pair):
    image = brightfield(sample_pair[0])
    checks = look_checks(image, rgb=True)
    assert kinds(checks) == ["colour", "bright_background"]
    assert "dark one" in checks[1].message and "mean" in checks[0].message
    # inverting fixes the background; picking a channel answers the colour
    assert kinds(look_checks(image, rgb=True, invert=True)) == ["colour"]
    assert look_checks(image, rgb=True, channel="channel 2", invert=True) == []
    # a colour model takes the colour as it is: only the background is flagged
    assert kinds(look_checks(image, rgb=True, in_channels=3, channel=RGB)) == ["bright_background"]
    # inverting a dark-background image makes its background bright: flagged too
    checks = look_checks(sample_pair[0], rgb=False, invert=True)
    assert kinds(checks) == ["bright_background"] and "after inverting" in checks[0].message


def test_grey_saved_as_rgb_is_not_colour(sample_pair):
    grey_rgb = np.repeat(sample_pair[0][..., None], 3, axis=-1)
    assert look_checks(grey_rgb, rgb=True) == []
    assert kinds(look_checks(255 - grey_rgb, rgb=True)) == ["bright_background"]


def test_uniform_image():
    assert kinds(look_checks(np.full((40, 40), 7, np.uint16), rgb=False)) == ["uniform"]


def test_channel_choices_offer_rgb_only_to_colour_models():
    assert channel_choices(1) == [GREY_MEAN, "channel 1", "channel 2", "channel 3"]
    assert channel_choices(3)[0] == RGB and GREY_MEAN in channel_choices(3)


def test_prepare_image_channels_and_inversion(sample_pair):
    image = brightfield(sample_pair[0])
    mean = np.asarray(prepare_image(image, rgb=True, channel=GREY_MEAN))
    assert mean.shape == (256, 256) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, image.astype(np.float32).mean(-1), rtol=1e-6)
    second = prepare_image(image, rgb=True, channel="channel 2")
    assert np.shares_memory(second, image) and np.array_equal(second, image[..., 1])  # a view
    assert prepare_image(image, rgb=True, channel=RGB) is image
    grey = sample_pair[0]
    assert prepare_image(grey, rgb=False) is grey
    inverted = np.asarray(prepare_image(grey, rgb=False, invert=True))
    assert inverted.min() == grey.min() and inverted.max() == grey.max()  # its own range
    np.testing.assert_array_equal(inverted, float(grey.min()) + grey.max() - grey)
    with pytest.raises(SegQCError, match="no channel 3"):
        prepare_image(np.zeros((8, 8, 2)), rgb=True, channel="channel 3")


def test_big_and_lazy_images_are_converted_lazily_and_judged_from_a_sample(
    sample_pair, monkeypatch
):
    image = brightfield(np.tile(sample_pair[0], (8, 8)))  # 2048 x 2048 x 3
    lazy = da.from_array(image, chunks=(512, 512, 3))
    out = prepare_image(lazy, rgb=True, channel=GREY_MEAN, invert=True)
    assert isinstance(out, da.Array)  # nothing computed yet
    np.testing.assert_allclose(np.asarray(out[:4, :4]), np.asarray(out[:4, :4]))
    monkeypatch.setattr(image_checks, "LAZY_VALUES", 1000)
    assert isinstance(prepare_image(image, rgb=True), da.Array)  # big numpy: no full copy

    logged = ReadLog(np.stack([image[..., 0]] * 10))  # a 10-slice stack, read lazily
    assert kinds(look_checks(logged, rgb=False)) == ["bright_background"]
    assert len(logged.reads) == image_checks.SAMPLE_SLICES
    assert sum(logged.reads) <= image_checks.SAMPLE_SLICES * image_checks.SAMPLE_PIXELS
    assert sample_image(logged, rgb=False).shape == (3, 512, 512)
