"""Model registry: segmentation-models-pytorch architectures and encoders behind one factory.

Encoder weights are ``None`` by default: nothing is downloaded unless the user asks for
``encoder_weights="imagenet"`` and has a network.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import SegQCError

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


#: Decoder widths of smp's U-Net family, widest first; shallower models take the first ones.
DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32, 16)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network (stored in a run's ``config.json``)."""

    arch: str = "unet"
    encoder: str = "resnet34"
    in_channels: int = 1
    classes: int = 3
    encoder_weights: str | None = None
    encoder_depth: int = 5  # downsampling stages used (3..5); fewer = smaller, finer model
    decoder_channels: tuple[int, ...] | None = None  # one per stage; None: the default

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise SegQCError(f"model config has unknown keys: {sorted(unknown)}")
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
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
    if not 3 <= config.encoder_depth <= 5:
        raise SegQCError(f"encoder depth must be 3, 4 or 5, got {config.encoder_depth}")
    if config.decoder_channels is not None and len(config.decoder_channels) != config.encoder_depth:
        raise SegQCError(
            f"decoder channels {list(config.decoder_channels)} must give one width per encoder "
            f"stage ({config.encoder_depth})"
        )


def build_model(config: ModelConfig):
    """Create the network of ``config`` (a ``torch.nn.Module`` producing logits)."""
    smp = import_smp()

    check_model_config(config)
    options: dict[str, Any] = {}
    if config.encoder_depth != 5:
        options["encoder_depth"] = config.encoder_depth
    if config.decoder_channels is not None:
        options["decoder_channels"] = tuple(config.decoder_channels)
    elif config.encoder_depth != 5:  # smp's default widths, cut to the number of stages
        options["decoder_channels"] = DEFAULT_DECODER_CHANNELS[: config.encoder_depth]
    try:
        model = smp.create_model(
            config.arch,
            encoder_name=config.encoder,
            encoder_weights=config.encoder_weights,
            in_channels=config.in_channels,
            classes=config.classes,
            **options,
        )
    except (KeyError, ValueError, RuntimeError, OSError, TypeError) as exc:  # OSError: no network
        raise SegQCError(
            f"cannot build {config.arch} with encoder {config.encoder}: {exc}"
        ) from None
    _drop_unused_stages(model.encoder, config.encoder_depth)
    return model


def _drop_unused_stages(encoder, depth: int) -> None:
    """Remove encoder stages deeper than ``depth``: smp keeps them although they never run.

    Without this a depth-4 resnet34 U-Net would carry (and save) layer4's 13 M unused weights.
    """
    import torch

    get_stages = getattr(encoder, "get_stages", None)
    if get_stages is None or depth >= 5:
        return
    for stride, modules in get_stages().items():
        if stride > 2**depth:
            for module in modules:
                for name, child in list(encoder.named_children()):
                    if child is module:
                        setattr(encoder, name, torch.nn.Identity())
