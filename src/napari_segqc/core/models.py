"""Model registry: segmentation-models-pytorch architectures and encoders behind one factory.

Encoder weights are ``None`` by default: nothing is downloaded unless the user asks for
``encoder_weights="imagenet"`` and has a network.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from typing import Any

from .errors import SegQCError

#: Architecture names accepted by :func:`build_model` → segmentation-models-pytorch class names.
ARCHITECTURES: dict[str, str] = {
    "unet": "Unet",
    "unetplusplus": "UnetPlusPlus",
    "fpn": "FPN",
    "deeplabv3plus": "DeepLabV3Plus",
    "manet": "MAnet",
    "linknet": "Linknet",
    "pan": "PAN",
}

#: Encoders offered in the GUI; any smp encoder name, or ``tu-<timm model>``, is accepted.
SUGGESTED_ENCODERS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "efficientnet-b0",
    "efficientnet-b2",
    "tu-hrnet_w18_small",
    "mobilenet_v2",
)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network (stored in a run's ``config.json``)."""

    arch: str = "unet"
    encoder: str = "resnet34"
    in_channels: int = 1
    classes: int = 3
    encoder_weights: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise SegQCError(f"model config has unknown keys: {sorted(unknown)}")
        return cls(**data)


def import_smp():
    """Import segmentation-models-pytorch, keeping triton out when there is no CUDA GPU.

    smp imports ``torch._dynamo``, which imports triton; triton's LLVM clashes with the one
    Mesa's software OpenGL (llvmpipe) has loaded once a napari viewer exists, and the process
    crashes. Triton only serves CUDA GPUs, so without one it is marked as absent (torch then
    treats it as not installed).
    """
    if "segmentation_models_pytorch" not in sys.modules and "triton" not in sys.modules:
        import torch

        if not torch.cuda.is_available():
            sys.modules["triton"] = None  # type: ignore[assignment]
    import segmentation_models_pytorch

    return segmentation_models_pytorch


def check_model_config(config: ModelConfig) -> None:
    """Raise a :class:`SegQCError` listing the valid names if a setting is wrong."""
    smp = import_smp()

    if config.arch not in ARCHITECTURES:
        raise SegQCError(
            f"unknown architecture {config.arch!r}; choose one of: {', '.join(ARCHITECTURES)}"
        )
    if (
        not config.encoder.startswith("tu-")
        and config.encoder not in smp.encoders.get_encoder_names()
    ):
        raise SegQCError(
            f"unknown encoder {config.encoder!r}; choose e.g. {', '.join(SUGGESTED_ENCODERS)} "
            "(any segmentation-models-pytorch encoder, or 'tu-<timm model>')"
        )
    if config.in_channels < 1 or config.classes < 1:
        raise SegQCError(f"in_channels and classes must be >= 1, got {config}")


def build_model(config: ModelConfig):
    """Create the network of ``config`` (a ``torch.nn.Module`` producing logits)."""
    smp = import_smp()

    check_model_config(config)
    try:
        return smp.create_model(
            config.arch,
            encoder_name=config.encoder,
            encoder_weights=config.encoder_weights,
            in_channels=config.in_channels,
            classes=config.classes,
        )
    except (KeyError, ValueError, RuntimeError, OSError) as exc:  # OSError: no network
        raise SegQCError(
            f"cannot build {config.arch} with encoder {config.encoder}: {exc}"
        ) from None
