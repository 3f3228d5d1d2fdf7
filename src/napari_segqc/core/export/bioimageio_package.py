"""A napari-segqc model as a bioimage.io model package (format 0.5) for the model zoo and the
tools that run such packages (bioimageio.core, ...).

Files (:data:`~napari_segqc.core.models.bioimageio_model.FILES`): ``rdf.yaml`` (the
description, a bioimageio.spec ``ModelDescr`` built in :mod:`.bioimageio_descr`); weights as
``pytorch_state_dict`` (float32; ``segqc_unet.py`` rebuilds the network), ``torchscript`` and
``onnx`` (:mod:`.onnx_export`); test tensors from a real image (the float32 network's output
on the input normalised as bioimage.io normalises it); a cover; the card as ``README.md``
(:mod:`.bioimageio_card`); and the napari-segqc metadata under ``config.segqc``, so
napari-segqc loads the package back as the same model. The package outputs probability maps
(``scale_range`` 1-99.8 % in, ``sigmoid`` out); the seeded watershed that turns them into
labels is napari-segqc's. bioimageio.spec writes the package (zip or folder) and checks it,
offline.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SegQCError
from ..io import write_atomic
from ..models.bioimageio_model import (
    ARCHITECTURE_SOURCE,
    ENVIRONMENT,
    FILES,
    MIN_SIZE,
    SIZE_STEP,
)
from ..models.normalize import HIGH, LOW
from ..predict.loading import LoadedModel
from .bioimageio_card import card_markdown
from .bioimageio_descr import EPS, URLS, model_descr, torch_version
from .onnx_export import _float_network, _torch_model, export_onnx, export_torchscript
from .onnx_export import model_metadata as _model_metadata

TEST_SIZE = 256  # side of the test image cut from the sample (at most)


def default_sample(in_channels: int) -> np.ndarray:
    """A real image for a model of ``in_channels``: a DSB 2018 fluorescence sample (grey) or
    the stained tissue sample (RGB) shipped with napari-segqc."""
    import tifffile

    samples = Path(__file__).resolve().parents[2] / "sample_data"
    files = {1: samples / "images/nuclei_02.tif", 3: samples / "other/images/stained_01.tif"}
    path = files.get(in_channels)
    if path is None or not path.is_file():
        raise SegQCError(f"no sample image for a model of {in_channels} channels: pass sample=")
    return tifffile.imread(path)


def sample_crop(loaded: LoadedModel, sample=None) -> np.ndarray:
    """The sample (default: :func:`default_sample`) as the model reads it (``(H, W)`` grey or
    ``(H, W, 3)`` RGB), cut around its centre to at most ``TEST_SIZE`` pixels a side at a
    size the package accepts."""
    from ..predict.inference import grey_if_equal_channels, image_layout

    channels = loaded.config.model.in_channels
    image = default_sample(channels) if sample is None else np.asarray(sample)
    image = grey_if_equal_channels(image, channels)
    if image_layout(image.shape, channels)[0]:
        raise SegQCError(f"the sample must be one 2-D image, got shape {image.shape}")
    if image.dtype.kind not in "iuf" or not np.isfinite(image).all():
        raise SegQCError("the sample must be a numeric image without NaN or infinite values")
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIZE:
        raise SegQCError(f"the sample is {h} x {w} pixels; the package needs {MIN_SIZE} or more")
    th, tw = (MIN_SIZE + (min(n, TEST_SIZE) - MIN_SIZE) // SIZE_STEP * SIZE_STEP for n in (h, w))
    crop = image[(h - th) // 2 : (h - th) // 2 + th, (w - tw) // 2 : (w - tw) // 2 + tw]
    return crop[..., :3] if crop.ndim == 3 else crop


def expected_output(loaded: LoadedModel, tensor: np.ndarray) -> np.ndarray:
    """The package's output for ``tensor`` ``(1, C, H, W)``: bioimage.io's ``scale_range``
    (``(x - p1) / (p99.8 - p1 + eps)`` per channel), the float32 network, a sigmoid."""
    import torch

    lo = np.percentile(tensor, LOW, axis=(2, 3), keepdims=True)
    hi = np.percentile(tensor, HIGH, axis=(2, 3), keepdims=True)
    norm = ((tensor - lo) / (hi - lo + EPS)).astype(np.float32)
    with torch.inference_mode():
        out = torch.sigmoid(_float_network(loaded).eval()(torch.from_numpy(norm)))
    return out.numpy().astype(np.float32)


def _write_cover(path: Path, image: np.ndarray, labels: np.ndarray) -> None:
    """The image and, right of it, the same with its labels' outlines (2:1, as bioimage.io
    asks)."""
    from PIL import Image
    from skimage.segmentation import find_boundaries

    rgb = image.astype(np.float32).reshape(*image.shape[:2], -1)
    lo, hi = np.percentile(rgb, [LOW, HIGH], axis=(0, 1))
    rgb = np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0, 1)
    rgb = (np.broadcast_to(rgb, (*rgb.shape[:2], 3)) * 255).round().astype(np.uint8)
    outlined = rgb.copy()
    colour = (255, 220, 0) if rgb.mean() < 128 else (0, 150, 0)  # dark or bright background
    outlined[find_boundaries(labels, mode="inner")] = colour
    Image.fromarray(np.concatenate([rgb, outlined], axis=1)).save(path)


def package_name(loaded: LoadedModel, card: dict, name: str | None) -> str:
    """``name``, or napari-segqc's and the model's (bioimage.io allows 5 to 128 letters,
    digits, spaces and ``_+-()``)."""
    if name is not None:
        if not re.fullmatch(r"[A-Za-z0-9_+\- ()]{5,128}", name):
            raise SegQCError(f"package name {name!r}: use 5 to 128 letters, digits, spaces, _+-()")
        return name
    base = " ".join(re.sub(r"[^A-Za-z0-9_+\- ()]", " ", str(card.get("name") or "")).split())
    return f"napari-segqc {base or loaded.path.stem}"[:64].strip()


def _write_files(loaded: LoadedModel, work: Path, image: np.ndarray) -> np.ndarray:
    """Write the package's files (all but the README) into ``work``; returns the labels
    napari-segqc finds in the test image."""
    import segmentation_models_pytorch
    import torch

    from ..predict.segmentation import segment

    state = {
        k: (v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.cpu()).contiguous()
        for k, v in loaded.model.state_dict().items()
    }
    torch.save(state, work / FILES["pytorch_state_dict"])
    (work / FILES["architecture"]).write_text(ARCHITECTURE_SOURCE, encoding="utf-8")
    env = ENVIRONMENT.format(torch=torch_version(), smp=segmentation_models_pytorch.__version__)
    (work / FILES["environment"]).write_text(env, encoding="utf-8")
    export_torchscript(loaded, work / FILES["torchscript"])
    export_onnx(loaded, work / FILES["onnx"])
    tensor = (image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)).astype(np.float32)
    tensor = np.ascontiguousarray(tensor[None])
    np.save(work / FILES["test_input"], tensor, allow_pickle=False)
    np.save(work / FILES["test_output"], expected_output(loaded, tensor), allow_pickle=False)
    labels, _ = segment(loaded, image, diameter=None, dtype=None)
    _write_cover(work / FILES["cover"], image, labels)
    return labels


def check_package(path: str | os.PathLike) -> Any:
    """The :class:`bioimageio.spec.model.v0_5.ModelDescr` of a package (``rdf.yaml``, zip or
    folder) checked by bioimageio.spec with its file checks (hashes, test tensors against the
    axes) but offline: the URLs of napari-segqc's packages are not fetched. Raises a
    :class:`SegQCError` saying what bioimage.io refuses."""
    from bioimageio.spec import InvalidDescr, ValidationContext, load_description

    path = Path(path) / "rdf.yaml" if Path(path).is_dir() else path
    with ValidationContext(log_warnings=False):
        descr = load_description(path, perform_io_checks=True, known_files=dict.fromkeys(URLS))
    if isinstance(descr, InvalidDescr):
        reason = " ".join(str(descr.get_reason()).split())
        raise SegQCError(f"bioimage.io refuses the package: {reason}")
    return descr


def spec_problem() -> str | None:
    """Why bioimageio.spec cannot check packages here (not installed, or a version that fails
    with the installed pydantic: bioimageio.spec 0.5.12 with pydantic 2.14), or None."""
    try:
        import pydantic
        from bioimageio.spec import ValidationContext, __version__
        from bioimageio.spec.model.v0_5 import TorchscriptWeightsDescr
    except ImportError:
        return "bioimage.io export needs bioimageio.spec: pip install 'napari-segqc[export]'"
    try:  # any file entry of a description is serialised when it is checked
        with ValidationContext(perform_io_checks=False, log_warnings=False):
            url = "https://example.com/w.pt"  # bioimage.io never fetches example.com
            TorchscriptWeightsDescr(source=url, pytorch_version="2.1").model_dump(mode="json")
    except Exception as exc:
        return (
            f"bioimageio.spec {__version__} does not work with pydantic {pydantic.VERSION} "
            f"({type(exc).__name__}): install a pydantic it supports (pydantic<2.14 for "
            "bioimageio.spec 0.5.12) or a newer bioimageio.spec"
        )
    return None


def _context(root: Path, *, io_checks: bool) -> Any:
    """bioimageio.spec's validation context for the files in ``root``, offline: napari-segqc's
    URLs are known (not fetched); without ``io_checks`` nothing is read or fetched at all."""
    from bioimageio.spec import ValidationContext

    return ValidationContext(
        root=root,
        file_name="rdf.yaml",
        perform_io_checks=io_checks,
        known_files=dict.fromkeys(URLS) if io_checks else {},
        log_warnings=False,
    )


def _save(descr: Any, files: Path, out: Path, *, as_zip: bool) -> None:
    """Write the package of ``descr`` (its files in ``files``) to ``out`` (a zip file or a new
    folder) with bioimageio.spec, and check it (:func:`check_package`)."""
    from bioimageio.spec import save_bioimageio_package, save_bioimageio_package_as_folder

    # without io checks: bioimageio.spec re-reads the zip it wrote with a new context, where
    # the URLs would be fetched; check_package checks everything offline
    with _context(files, io_checks=False):
        if as_zip:
            save_bioimageio_package(descr, output_path=out)
        else:
            save_bioimageio_package_as_folder(descr, output_path=out)
    check_package(out)


def export_bioimageio(source, dest: str | os.PathLike, *, sample=None, name=None) -> Path:
    """Write ``source`` (a model source, or a :class:`LoadedModel` on torch) as a bioimage.io
    model package: a zip file when ``dest`` ends in ``.zip``, else a new folder.

    ``sample``: a 2-D image (grey ``(H, W)`` or RGB ``(H, W, 3)``, at least 96 pixels a side)
    for the test tensors and the cover; default: a sample image shipped with napari-segqc.
    ``name``: the package's name (default: from the model's card). Nothing is left at ``dest``
    if the export fails."""
    problem = spec_problem()
    if problem:
        raise SegQCError(problem)
    dest = Path(dest)
    as_zip = dest.suffix.lower() == ".zip"
    if as_zip and dest.is_dir():
        raise SegQCError(f"{dest} is a folder: name a .zip file")
    if not as_zip and dest.exists():
        raise SegQCError(f"{dest} exists: name a new package folder (nothing is replaced)")
    loaded = _torch_model(source)
    image = sample_crop(loaded, sample)
    meta = _model_metadata(loaded, precision="fp32")
    title = package_name(loaded, meta.get("card") or {}, name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:  # the files in work/files; the package written from them by bioimageio.spec
        files, folder = work / "files", work / "package"
        files.mkdir()
        labels = _write_files(loaded, files, image)
        readme = card_markdown(title, loaded.config, meta.get("card") or {}, int(labels.max()))
        (files / FILES["documentation"]).write_text(readme, encoding="utf-8")
        with _context(files, io_checks=True):  # hashes the files, checks the test tensors
            descr = model_descr(loaded, meta, title)
        if as_zip:
            return write_atomic(dest, lambda tmp: _save(descr, files, tmp, as_zip=True))
        _save(descr, files, folder, as_zip=False)
        os.rename(folder, dest)
        return dest
    finally:
        shutil.rmtree(work, ignore_errors=True)
