"""int8 static quantization of an ONNX model, calibrated on real images.

Activation ranges come from normalised 256² tiles of images the model was trained on (the
same percentile normalisation as prediction), read through onnxruntime's calibration. Weights
are quantized per output channel (symmetric int8), activations per tensor (uint8), in QDQ form
so onnxruntime fuses them into integer convolutions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SegQCError
from ..models.normalize import normalize_image
from ..train.config import TrainConfig

TILE = 256


#: Scale factors the calibration tiles are drawn at, in turn: the network also sees images
#: rescaled to its object size (``--diameter auto``), so its activation ranges must cover
#: objects larger and smaller than in the training images.
ZOOMS = (1.0, 2.0, 0.5, 1.41, 0.71)


def calibration_tiles(images, config: TrainConfig, count: int, seed: int = 0) -> list:
    """Up to ``count`` normalised ``(1, C, 256, 256)`` tiles spread over ``images``, each
    image rescaled by the next factor of :data:`ZOOMS`."""
    from skimage.transform import rescale

    rng = np.random.default_rng(seed)
    rgb = config.model.in_channels == 3
    tiles = []
    per_image = max(1, int(np.ceil(count / max(1, len(images)))))
    for i, image in enumerate(images):
        image = np.asarray(image)
        if not rgb and image.ndim == 3 and image.shape[-1] in (3, 4):
            image = image[..., 0]  # grey saved as RGB
        norm = normalize_image(image, rgb=rgb)
        if norm.shape[0] != config.model.in_channels:
            raise SegQCError(
                f"calibration image has {norm.shape[0]} channel(s), the model expects "
                f"{config.model.in_channels}"
            )
        for j in range(per_image):
            zoom = ZOOMS[(i * per_image + j) % len(ZOOMS)]
            scaled = norm if zoom == 1.0 else rescale(norm, zoom, order=1, channel_axis=0)
            h, w = scaled.shape[1:]
            pad = ((0, 0), (0, max(0, TILE - h)), (0, max(0, TILE - w)))
            padded = np.pad(scaled, pad, mode="reflect") if h < TILE or w < TILE else scaled
            y = int(rng.integers(0, padded.shape[1] - TILE + 1))
            x = int(rng.integers(0, padded.shape[2] - TILE + 1))
            tiles.append(padded[None, :, y : y + TILE, x : x + TILE].astype(np.float32))
    if not tiles:
        raise SegQCError("no calibration images")
    return tiles[:count]


def quantize_int8(src: Path, dest: Path, config: TrainConfig, images, count: int = 32) -> Path:
    """Static int8 quantization of the ONNX file ``src`` into ``dest``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ..models.onnx_network import INPUT_NAME

    tiles = calibration_tiles(images, config, count)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(tiles)

        def get_next(self):
            tile = next(self.batches, None)
            return None if tile is None else {INPUT_NAME: tile}

    prepared = dest.with_name(dest.stem + "_prepared.onnx")
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(dest),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    prepared.unlink(missing_ok=True)
    return dest


def builtin_calibration_folder(source) -> Path | None:
    """The sample images shipped for a built-in model (grey fluorescence for ``nuclei``,
    stained and brightfield for ``nuclei-stained``), or None for other models."""
    samples = Path(__file__).resolve().parents[2] / "sample_data"
    folders = {"nuclei": samples / "images", "nuclei-stained": samples / "other" / "images"}
    return folders.get(str(source))


def read_calibration_folder(folder: Path) -> list:
    """The images of a calibration folder (refused when missing or empty)."""
    from ..io import list_images, read_image

    if not folder.is_dir():
        raise SegQCError(f"calibration folder {folder}: no such folder")
    files = list(list_images(folder).values())
    if not files:
        raise SegQCError(f"calibration folder {folder}: no images in it")
    return [read_image(f) for f in files]
