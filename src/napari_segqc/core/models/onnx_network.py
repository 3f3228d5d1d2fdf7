"""ONNX models: a network run by onnxruntime, behind the same call as a torch network.

A napari-segqc ONNX file (written by :func:`napari_segqc.core.export.onnx_export.export_onnx`)
carries the model's training config and card as JSON in its metadata (key ``segqc``), so its
normalisation and decoding settings travel with it. The network maps a normalised image batch
``(N, C, H, W)`` float32 to logits ``(N, K, H, W)``, as the torch network does.

:class:`OnnxNetwork` wraps an onnxruntime session as a ``torch.nn.Module``, so tiled inference,
flip TTA and decoding run unchanged. onnxruntime never executes Python from a model file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import SegQCError

#: Metadata key of the JSON dictionary (config, card, precision) in a napari-segqc ONNX file.
ONNX_META_KEY = "segqc"
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


def _import_onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - depends on the install
        raise SegQCError(
            "ONNX models need the onnx and onnxruntime packages: pip install onnx onnxruntime"
        ) from None
    return onnx


def load_onnx_proto(path: str | os.PathLike, *, weights: bool = True):
    """Parse an ONNX file; anything else (a pickle renamed ``.onnx``, a truncated file) is
    refused with a clear :class:`SegQCError`."""
    onnx = _import_onnx()
    path = Path(path)
    if not path.is_file():
        raise SegQCError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(2)
    if head[:1] in (b"\x80", b"P"):  # pickle protocol 2+ or a zip (torch.save)
        raise SegQCError(f"{path}: a pickle/PyTorch file renamed .onnx, not an ONNX model")
    try:
        proto = onnx.load(str(path), load_external_data=weights)
    except Exception as exc:
        raise SegQCError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    if not proto.graph.node:
        raise SegQCError(f"{path}: not an ONNX model (no graph)")
    return proto


def onnx_metadata(proto, path: Path | None = None) -> dict[str, Any]:
    """The napari-segqc metadata (``config``, ``card``, ``precision``) of a parsed ONNX model;
    a foreign ONNX file (no such metadata) is refused."""
    props = {p.key: p.value for p in proto.metadata_props}
    where = f"{path}: " if path else ""
    if ONNX_META_KEY not in props:
        raise SegQCError(
            f"{where}an ONNX model, but not one exported by napari-segqc (no '{ONNX_META_KEY}' "
            "metadata with its config): export it with `segqc export --format onnx`"
        )
    try:
        meta = json.loads(props[ONNX_META_KEY])
    except json.JSONDecodeError as exc:
        raise SegQCError(f"{where}unreadable napari-segqc metadata ({exc})") from None
    if not isinstance(meta, dict) or "config" not in meta:
        raise SegQCError(f"{where}napari-segqc metadata without a config")
    return meta


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Metadata of a napari-segqc ONNX file (the whole file is parsed: ~0.1 s for 36 MB)."""
    return onnx_metadata(load_onnx_proto(path), Path(path))


def session_options(threads: int | None = None):
    """onnxruntime session options: ``threads`` intra-op threads (default: torch's count)."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def make_onnx_network(path: str | os.PathLike, threads: int | None = None):
    """A ``torch.nn.Module`` running the ONNX file at ``path`` with onnxruntime on the CPU."""
    import numpy as np
    import torch

    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - depends on the install
        raise SegQCError("ONNX models need onnxruntime: pip install onnxruntime") from None

    try:
        session = ort.InferenceSession(
            str(path), session_options(threads), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SegQCError(f"{path}: onnxruntime cannot run this model ({first})") from None
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise SegQCError(f"{path}: expected one 4-D image input, got {len(inputs)} inputs")

    class OnnxNetwork(torch.nn.Module):
        """onnxruntime session as a module: float32 NCHW in, float32 logits out (CPU)."""

        def __init__(self) -> None:
            super().__init__()
            self.session = session
            self.input_name = inputs[0].name
            # an empty parameter: callers ask the network for its device
            self.anchor = torch.nn.Parameter(torch.zeros(0), requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            array = np.ascontiguousarray(x.detach().float().cpu().numpy())
            (logits,) = self.session.run(None, {self.input_name: array})[:1]
            return torch.from_numpy(np.asarray(logits, dtype=np.float32))

    return OnnxNetwork().eval()
