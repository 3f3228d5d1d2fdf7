"""Which device computes, and in which precision: shared by training, prediction and QC."""

from __future__ import annotations

from .errors import SegQCError

#: Precisions a user can ask for (``auto``: bf16 autocast where supported, else fp16).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(name: str = "auto"):
    """``auto``: CUDA, then Apple MPS, then the CPU; or the device named."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise SegQCError(f"unknown device {name!r} ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SegQCError("device 'cuda' asked for, but no CUDA GPU is available")
    return device


def autocast_dtype(precision: str, device):
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    import torch

    if precision == "fp32" or device.type == "mps":
        return None
    if precision == "bf16" or (precision == "auto" and device.type == "cpu"):
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
