"""A trained model as an ONNX or TorchScript file, with its config and card inside.

ONNX files run with onnxruntime (:mod:`napari_segqc.core.models.onnx_network`); ``quantize``
gives a smaller file: ``"fp16"`` (weights and activations in float16, input and output kept
float32) or ``"int8"`` (onnxruntime static quantization in QDQ form, per-channel weights,
activation ranges calibrated on normalised tiles of real images, see :mod:`.calibration`).
Every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ..errors import SegQCError
from ..io import write_atomic
from ..models.formats import TORCHSCRIPT_META
from ..models.onnx_network import INPUT_NAME, ONNX_META_KEY, OUTPUT_NAME, _import_onnx
from ..predict.loading import LoadedModel, load_model

#: Quantization choices of :func:`export_onnx`.
QUANTIZE = ("int8", "fp16")
OPSET = 17


def _torch_model(source) -> LoadedModel:
    loaded = source if isinstance(source, LoadedModel) else load_model(source, backend="torch")
    if loaded.backend != "torch":
        raise SegQCError(
            f"{loaded.path}: export needs the model's torch weights (its .safetensors, run "
            "folder or bioimage.io package), not an ONNX file"
        )
    return loaded


def model_metadata(loaded: LoadedModel, **extra: Any) -> dict[str, Any]:
    """The metadata an exported file carries: config, card, source and ``extra``."""
    from ..models.formats import read_model_meta

    card = read_model_meta(loaded.path)[1].get("card") or {}
    return {"config": loaded.config.to_dict(), "card": card, "source": loaded.path.name, **extra}


def _float_network(loaded: LoadedModel):
    import copy

    import torch

    return copy.deepcopy(loaded.model).float().to("cpu", memory_format=torch.contiguous_format)


def _example_input(loaded: LoadedModel, size: int = 256):
    import torch

    return torch.zeros(1, loaded.config.model.in_channels, size, size)


def write_onnx_fp32(loaded: LoadedModel, dest: Path) -> Path:
    """Trace the network to an ONNX file (dynamic batch, height and width; opset 17)."""
    import torch

    net = _float_network(loaded).eval()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter
        torch.onnx.export(
            net,
            (_example_input(loaded),),
            str(dest),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
            opset_version=OPSET,
            dynamo=False,
        )
    return dest


def _set_metadata(path: Path, meta: dict[str, Any]) -> None:
    onnx = _import_onnx()
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_META_KEY, json.dumps(meta)
    proto.producer_name = "napari-segqc"
    proto.doc_string = (
        "napari-segqc U-Net: normalised image (N, C, H, W; per channel 1 % -> 0, 99.8 % -> 1) "
        "to logits (N, 3, H, W: foreground, boundary, distance); sigmoid, then seeded "
        "watershed decoding (settings in the 'segqc' metadata)"
    )
    onnx.save(proto, str(path))


def export_onnx(
    source,
    dest: str | os.PathLike,
    *,
    quantize: str | None = None,
    calibration=None,
    calibration_tiles: int = 32,
) -> Path:
    """Write ``source`` (a model source or a :class:`LoadedModel` on torch) as an ONNX file.

    ``quantize``: None (float32), ``"fp16"`` or ``"int8"``; int8 needs ``calibration``, a
    list of images (arrays, as the model reads them) from the model's training data, cut into
    up to ``calibration_tiles`` normalised 256² tiles."""
    if quantize not in (None, *QUANTIZE):
        raise SegQCError(f"quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    if quantize == "int8" and not calibration:
        raise SegQCError("int8 quantization needs calibration images from the training data")
    loaded = _torch_model(source)
    meta = model_metadata(loaded, precision=quantize or "fp32")
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="segqc-onnx-") as tmp:
        fp32 = write_onnx_fp32(loaded, Path(tmp) / "fp32.onnx")
        if quantize == "int8":
            from .calibration import quantize_int8

            final = quantize_int8(
                fp32, Path(tmp) / "int8.onnx", loaded.config, calibration, calibration_tiles
            )
        elif quantize == "fp16":
            final = _to_fp16(fp32, Path(tmp) / "fp16.onnx")
        else:
            final = fp32
        _set_metadata(final, meta)
        return write_atomic(dest, lambda tmp_path: os.replace(final, tmp_path))


def _to_fp16(src: Path, dest: Path) -> Path:
    onnx = _import_onnx()
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(half, str(dest))
    return dest


def export_torchscript(source, dest: str | os.PathLike) -> Path:
    """Write ``source`` as a traced TorchScript file (float32, CPU) with its metadata inside
    (extra file ``segqc.json``); ``napari_segqc.core.predict.load_model`` reads it back."""
    import torch

    loaded = _torch_model(source)
    meta = model_metadata(loaded, precision="fp32")
    net = _float_network(loaded).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, _example_input(loaded), check_trace=False)
    extra = {TORCHSCRIPT_META: json.dumps(meta)}

    def save(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "switch to torch.export"
            torch.jit.save(traced, str(tmp), _extra_files=extra)

    return write_atomic(dest, save)
