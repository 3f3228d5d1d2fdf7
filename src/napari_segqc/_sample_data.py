"""napari sample data: real DSB 2018 nuclei images with their ground truth (see sample_data/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_DIR = Path(__file__).parent / "sample_data"


def sample_names() -> list[str]:
    """Names of the sample images (``nuclei_01`` ...)."""
    return sorted(p.stem for p in (SAMPLE_DIR / "images").glob("*.tif"))


def load_sample(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The image and its ground-truth instance labels."""
    import tifffile

    image = tifffile.imread(SAMPLE_DIR / "images" / f"{name}.tif")
    labels = tifffile.imread(SAMPLE_DIR / "masks" / f"{name}.tif")
    return image, labels


def _layers(name: str) -> list[tuple]:
    from .core.predict.classical import classical_segmentation

    image, labels = load_sample(name)
    return [
        (image, {"name": name, "colormap": "gray"}, "image"),
        (labels, {"name": f"{name} ground truth", "opacity": 0.5, "visible": False}, "labels"),
        (classical_segmentation(image), {"name": f"{name} classical", "opacity": 0.5}, "labels"),
    ]


def nuclei_sample() -> list[tuple]:
    """Nuclei (256 x 256): image, ground truth, and a classical (Otsu + watershed) segmentation."""
    return _layers("nuclei_02")


def nuclei_dense_sample() -> list[tuple]:
    """Dense nuclei (520 x 696): image, ground truth, and a classical segmentation."""
    return _layers("nuclei_04")
