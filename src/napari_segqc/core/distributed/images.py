"""One whole image: read, segmented as ``segqc predict`` does, written. The same function runs
in this process and on dask workers (a folder distributed image by image), so both give the
same labels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import SegQCError
from .settings import PredictSettings
from .zarr_io import is_zarr, open_zarr_image, read_zarr_image, zarr_stem


def read_input(path: str | os.PathLike):
    """An image file as numpy, or a zarr / OME-Zarr image as a lazy dask array."""
    from ..io import read_image

    return read_zarr_image(path) if is_zarr(path) else read_image(path)


def output_name(path: str | os.PathLike) -> str:
    """The output's file name for an input: ``NAME.tif``, or ``NAME.zarr`` (an OME-Zarr
    label store) for a 2-D zarr image; zarr stacks get a TIFF (label stores are 2-D)."""
    if not is_zarr(path):
        return f"{Path(path).stem}.tif"
    try:
        flat = open_zarr_image(path).axes in (("y", "x"), ("y", "x", "c"))
    except SegQCError:
        flat = True  # reading it will say what is wrong
    return f"{zarr_stem(path)}{'.zarr' if flat else '.tif'}"


def write_output(target: str | os.PathLike, labels: np.ndarray) -> Path:
    """Labels to a TIFF (uint16, or uint32 above 65535 objects) or, for a ``.zarr`` target,
    an OME-Zarr label store with its pyramid; atomically either way."""
    from ..io import write_tiff
    from .label_writer import write_label_store

    if is_zarr(target):
        return write_label_store(target, labels)
    n = int(labels.max()) if labels.size else 0
    kind = np.uint16 if n <= np.iinfo(np.uint16).max else np.uint32
    return write_tiff(target, labels.astype(kind))


def segment_image(image, settings: PredictSettings, models):
    """Labels of one image as ``segqc predict`` makes them: with ``auto``, the built-in model
    that fits the image; a colour model gets a grey image as three channels. ``models`` has
    ``get(source, device, backend)`` (a :class:`.cluster.ModelCache`). Returns ``(labels,
    text saying which model was picked ("" unless auto), ScaleInfo)``."""
    from ..device import autocast_dtype, pick_device
    from ..predict.auto import AUTO, choose_model, input_for_model, looks_rgb
    from ..predict.segmentation import segment

    device = pick_device(settings.device)
    picked = ""
    if settings.model == AUTO:
        choice = choose_model(image)
        used = models.get(choice.model, device, settings.backend)
        picked = choice.describe() + "; "
        image = input_for_model(image, used.config.model.in_channels, invert=choice.invert)
    else:
        used = models.get(settings.model, device, settings.backend)
        if used.config.model.in_channels == 3 and not looks_rgb(image):
            image = input_for_model(image, 3)  # grey to a colour model: 3 equal channels
    labels, _, scale = segment(
        used,
        image,
        diameter=settings.diameter,
        return_scale=True,
        dtype=autocast_dtype(settings.precision, device),
        **settings.tiling(),
        **settings.decoding(),
    )
    return labels, picked, scale


def predict_file(path, target, settings: PredictSettings, models=None) -> str:
    """Segment the image at ``path`` and write its labels to ``target``; the line to print.
    ``models``: where models are kept (default: this dask worker's, or this process's)."""
    from .models import worker_models

    path = Path(path)
    if is_zarr(target) and is_zarr(path) and Path(target).resolve() == path.resolve():
        raise SegQCError(f"--out {target} is the input: name another store")
    image = read_input(path)
    labels, picked, scale = segment_image(image, settings, models or worker_models())
    n = int(labels.max()) if labels.size else 0
    written = write_output(target, labels)
    return f"{path.name}: {picked}{scale.describe()}; {n} objects -> {written}"
