"""napari sample data: real DSB 2018 nuclei images with their ground truth (see sample_data/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_DIR = Path(__file__).parent / "sample_data"


def sample_names() -> list[str]:
    """Names of the sample images (``nuclei_01`` ...)."""
    return sorted(p.stem for p in (SAMPLE_DIR / "images").glob("*.tif"))


#: Samples of the other kinds (``stained_01``: RGB stained tissue; ``brightfield_01``: grey
#: brightfield, dark nuclei on a light background), kept apart from the fluorescence ones.
OTHER_DIR = SAMPLE_DIR / "other"


def load_sample(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The image and its ground-truth instance labels (fluorescence or other samples)."""
    import tifffile

    folder = SAMPLE_DIR if (SAMPLE_DIR / "images" / f"{name}.tif").is_file() else OTHER_DIR
    image = tifffile.imread(folder / "images" / f"{name}.tif")
    labels = tifffile.imread(folder / "masks" / f"{name}.tif")
    return image, labels


def _layers(name: str) -> list[tuple]:
    from .core.predict.classical import classical_segmentation

    image, labels = load_sample(name)
    truth = {"name": f"{name} ground truth", "opacity": 0.5, "visible": False}
    if image.ndim == 3:  # colour: shown as RGB, no classical segmentation (grey only)
        return [(image, {"name": name, "rgb": True}, "image"), (labels, truth, "labels")]
    return [
        (image, {"name": name, "colormap": "gray"}, "image"),
        (labels, truth, "labels"),
        (classical_segmentation(image), {"name": f"{name} classical", "opacity": 0.5}, "labels"),
    ]


def nuclei_sample() -> list[tuple]:
    """Nuclei (256 x 256): image, ground truth, and a classical (Otsu + watershed) segmentation."""
    return _layers("nuclei_02")


def nuclei_dense_sample() -> list[tuple]:
    """Dense nuclei (520 x 696): image, ground truth, and a classical segmentation."""
    return _layers("nuclei_04")


def stained_sample() -> list[tuple]:
    """Stained tissue (RGB, 256 x 320): image and ground truth."""
    return _layers("stained_01")


def brightfield_sample() -> list[tuple]:
    """Brightfield nuclei (grey, dark on light, 512 x 512): image, ground truth, classical."""
    return _layers("brightfield_01")
