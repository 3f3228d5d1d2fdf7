"""The classical (Otsu + watershed) segmentation used as a reference prediction."""

import numpy as np
import pytest

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.predict.classical import classical_segmentation
from napari_segqc.core.qc.matching import match_objects


def test_splits_two_touching_discs():
    yy, xx = np.mgrid[:64, :64]
    image = np.zeros((64, 64), np.float32)
    for cy, cx in ((32, 22), (32, 40)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 10**2] = 1.0
    labels = classical_segmentation(image, sigma=0.5)
    assert labels.dtype == np.uint16
    assert labels.max() == 2
    assert labels[32, 22] != labels[32, 40] and labels[32, 22] > 0


def test_reasonable_on_real_sample(sample_pair):
    image, gt = sample_pair
    scores = match_objects(gt, classical_segmentation(image))["0.50"]
    assert scores["f1"] > 0.6  # a fair classical baseline, far from perfect


def test_constant_and_bad_images():
    assert classical_segmentation(np.ones((16, 16))).max() == 0
    with pytest.raises(SegQCError, match="2-D"):
        classical_segmentation(np.zeros((2, 16, 16)))
    with pytest.raises(SegQCError, match="NaN"):
        classical_segmentation(np.full((16, 16), np.nan))
