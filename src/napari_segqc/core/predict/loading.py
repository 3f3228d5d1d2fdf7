"""Loading a trained model for inference, and exporting one for shipping.

:func:`load_model` takes a built-in name, a run folder, a ``.safetensors`` file written by the
trainer, or a model exported by ``segqc export`` (ONNX, TorchScript, bioimage.io package; see
:mod:`napari_segqc.core.models.formats`); the file's own config rebuilds the network and its
pre- and post-processing. Files are checked before reading: pickles and foreign files are
refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import SegQCError
from ..models.builtin import resolve_model_path
from ..models.formats import (
    BIOIMAGEIO,
    ONNX,
    SAFETENSORS,
    TORCHSCRIPT,
    model_format,
    read_model_meta,
    read_torchscript,
)
from ..models.registry import ModelConfig, build_model
from ..models.weights import load_weights, save_weights
from ..train.config import TrainConfig


@dataclass
class LoadedModel:
    """A network ready for inference, with the training config it came from."""

    model: object
    config: TrainConfig
    path: Path
    #: What runs the network: "torch" (also TorchScript) or "onnx" (onnxruntime, CPU).
    backend: str = "torch"


#: ``load_model`` backends: "auto" (on the CPU, the int8 ONNX companion of the built-in models
#: in ``INT8_BY_DEFAULT``; else torch), "torch", "onnx" (ONNX files and built-in models).
BACKENDS = ("auto", "torch", "onnx")


def _int8_companion(source, device, backend: str) -> Path | None:
    """The int8 ONNX file to run for ``source``, if any (see :data:`BACKENDS`); with
    ``backend="onnx"``, a model without one is refused."""
    from ..models.builtin import BUILTIN_INT8, INT8_BY_DEFAULT

    if backend == "torch":
        return None
    path = BUILTIN_INT8.get(str(source))
    if path is None or not path.is_file() or device.type != "cpu":
        if backend == "onnx":
            raise SegQCError(
                f"backend onnx: {source} has no ONNX version here (built-in models on the CPU "
                "have one); export one with `segqc export --format onnx --quantize int8` and "
                "pass the .onnx file as the model"
            )
        return None
    return path if backend == "onnx" or str(source) in INT8_BY_DEFAULT else None


def read_config(source: str | os.PathLike) -> TrainConfig:
    """The config of a model file (built-in name, run folder or file) without loading its
    weights: only the file's header is read, so inputs can be checked against the model at
    once, before the seconds that loading takes."""
    path, meta = read_model_meta(source)
    return _config_of(path, meta)


def _config_of(path: Path, meta: dict) -> TrainConfig:
    if "config" not in meta:
        raise SegQCError(f"{path}: a safetensors file, but not a napari-segqc model (no config)")
    return TrainConfig.from_dict(meta["config"])


def load_model(source: str | os.PathLike, device=None, backend: str = "auto") -> LoadedModel:
    """Load a trained model (weights + config) onto ``device`` (CPU by default), in eval mode.

    ONNX models run with onnxruntime on the CPU (``device`` is ignored); TorchScript and
    bioimage.io packages with torch. A built-in model on the CPU runs its int8 ONNX companion
    (faster, same accuracy; see the README) unless ``backend="torch"``; its decoding
    settings are always those of its ``.safetensors`` file."""
    import torch

    if backend not in BACKENDS:
        raise SegQCError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    path = resolve_model_path(source)
    fmt = model_format(path)
    device = device or torch.device("cpu")
    if isinstance(device, str):
        device = torch.device(device)
    companion = _int8_companion(source, device, backend) if fmt != ONNX else None
    if companion is not None:
        from ..models.onnx_network import make_onnx_network

        config = read_config(source)
        return LoadedModel(make_onnx_network(companion), config, companion, backend="onnx")
    if fmt == ONNX:
        from ..models.onnx_network import make_onnx_network, read_onnx_metadata

        if backend == "torch":
            raise SegQCError(
                f"{path}: an ONNX model runs on onnxruntime only; this needs the model's torch "
                "weights (its .safetensors, run folder or bioimage.io package)"
            )
        config = _config_of(path, read_onnx_metadata(path))
        return LoadedModel(make_onnx_network(path), config, path, backend="onnx")
    if fmt == TORCHSCRIPT:
        module, meta = read_torchscript(path)
        config = _config_of(path, meta)
        module = module.to(device).eval()
        return LoadedModel(module, config, path)
    if fmt == BIOIMAGEIO:
        from ..models.bioimageio_model import read_bioimageio_weights

        weights, meta = read_bioimageio_weights(path)
    else:
        assert fmt == SAFETENSORS
        weights, meta = load_weights(path)
    config = _config_of(path, meta)
    model = build_model(ModelConfig.from_dict(config.model.to_dict()))
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise SegQCError(f"{path}: weights do not fit the model in its config ({first})") from None
    model = model.to(device, memory_format=torch.channels_last).eval()
    return LoadedModel(model=model, config=config, path=path)


def export_model(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    half: bool = True,
    decoding: dict | None = None,
    card: dict | None = None,
) -> Path:
    """Write a model for shipping: weights (as float16 when ``half``; loading casts them back
    to float32), its config with ``decoding`` settings (threshold, min_size, seed_threshold,
    split_height, min_object_prob) replaced, and a JSON-able ``card`` (data, training, scores)
    in the metadata."""
    import torch

    path = resolve_model_path(source)
    weights, meta = load_weights(path)
    config = _config_of(path, meta)
    if decoding:
        config = replace(config, **decoding)
        config.check()
    if half:
        weights = {
            k: v.half() if v.is_floating_point() and v.dtype == torch.float32 else v
            for k, v in weights.items()
        }
        bad = [k for k, v in weights.items() if v.is_floating_point() and not v.isfinite().all()]
        if bad:
            raise SegQCError(f"weights overflow float16: {bad[:3]}; export with half=False")
    meta = {**meta, "config": config.to_dict(), "card": card or {}}
    return save_weights(dest, weights, meta)
