"""The model formats napari-segqc reads, and a model's metadata whatever its format.

* ``safetensors`` (training runs, built-in models): weights + JSON metadata, never pickles
  (:mod:`.weights`);
* ``onnx``: run by onnxruntime, metadata in the ONNX file (:mod:`.onnx_network`);
* ``torchscript`` (``.pt``/``.torchscript``): a traced network with the metadata as an extra
  file; TorchScript archives are read by ``torch.jit.load``, which does not unpickle arbitrary
  Python objects;
* ``bioimageio``: a bioimage.io model package (``.zip`` or folder) exported by napari-segqc
  (:mod:`.bioimageio_model`).

The metadata is a dictionary with at least ``config`` (the training config) and usually
``card`` (data, training, scores).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from ..errors import SegQCError
from .builtin import resolve_model_path

SAFETENSORS, ONNX, TORCHSCRIPT, BIOIMAGEIO = "safetensors", "onnx", "torchscript", "bioimageio"
#: File dialog filter for model files of every format.
MODEL_FILE_FILTER = "*.safetensors *.onnx *.pt *.zip"
#: Name of the metadata file inside a TorchScript archive.
TORCHSCRIPT_META = "segqc.json"


def model_format(path: str | os.PathLike) -> str:
    """The format of a resolved model path (see :func:`.builtin.resolve_model_path`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".zip":
        return BIOIMAGEIO
    if suffix == ".onnx":
        return ONNX
    if suffix in (".pt", ".pth", ".torchscript"):
        return TORCHSCRIPT
    return SAFETENSORS


def _archive_names(path: Path) -> list[str]:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except zipfile.BadZipFile:
        return []


def read_torchscript(path: Path, *, network: bool = True) -> tuple[Any, dict[str, Any]]:
    """(TorchScript module, metadata) of a TorchScript file written by napari-segqc; with
    ``network=False`` (None, metadata), read from the archive without loading the module."""
    import zipfile

    if not path.is_file():
        raise SegQCError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(2)
    names = _archive_names(path) if head == b"PK" else []
    if not any("/code/" in name for name in names):  # torch.save zips hold no code
        kind = "a PyTorch pickle (torch.save), not" if head == b"PK" else "not"
        raise SegQCError(
            f"{path}: {kind} a TorchScript archive; napari-segqc never unpickles files (export "
            "models with `segqc export`, or pass the .safetensors of a training run)"
        )
    meta_names = [n for n in names if n.endswith(f"/extra/{TORCHSCRIPT_META}")]
    if not meta_names:
        raise SegQCError(
            f"{path}: a TorchScript model, but not one exported by napari-segqc (no "
            f"{TORCHSCRIPT_META} with its config): export it with `segqc export`"
        )
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read(meta_names[0]))
    if not network:
        return None, meta
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "switch to torch.export"
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SegQCError(f"{path}: not a readable TorchScript model ({first})") from None
    return module, meta


def read_model_meta(source: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(resolved path, metadata) of a model in any format, without building the network
    (safetensors: only the header is read)."""
    path = resolve_model_path(source)
    fmt = model_format(path)
    if fmt == ONNX:
        from .onnx_network import read_onnx_metadata

        meta = read_onnx_metadata(path)
    elif fmt == TORCHSCRIPT:
        meta = read_torchscript(path, network=False)[1]
    elif fmt == BIOIMAGEIO:
        from .bioimageio_model import read_bioimageio_metadata

        meta = read_bioimageio_metadata(path)
    else:
        from .weights import load_weights

        meta = load_weights(path, tensors=False)[1]
    if "config" not in meta:
        raise SegQCError(f"{path}: a {fmt} file, but not a napari-segqc model (no config)")
    return path, meta
