"""File > Open Sample: the SegQC samples open as image, ground truth and a segmentation."""

import numpy as np
import pytest
from napari.layers import Image, Labels


@pytest.mark.parametrize(("key", "shape"), [("nuclei", (256, 256)), ("nuclei_dense", (520, 696))])
def test_open_sample(make_napari_viewer, key, shape):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-segqc", key)
    kinds = [type(layer) for layer in viewer.layers]
    assert kinds == [Image, Labels, Labels]
    image, gt, seg = viewer.layers
    assert image.data.shape == gt.data.shape == seg.data.shape == shape
    assert gt.name.endswith("ground truth") and seg.name.endswith("classical")
    assert len(np.unique(gt.data)) > 20  # real nuclei, not an empty mask
    assert len(np.unique(seg.data)) > 20
