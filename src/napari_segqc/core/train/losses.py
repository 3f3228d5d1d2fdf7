"""Segmentation losses on logits (B, K, H, W) against targets in [0, 1] of the same shape.

Every loss is computed in float32 (logits are cast, autocast is switched off inside), so it stays
finite under bf16/fp16 mixed precision. ``weight`` (one number per channel, optional) weighs the
per-channel losses, e.g. to count the foreground more than the boundary or distance channels.
Pick one by name with :func:`make_loss`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SegQCError

__all__ = [
    "LOSSES",
    "BCEDiceLoss",
    "BCELoss",
    "DiceLoss",
    "FocalLoss",
    "TverskyLoss",
    "make_loss",
]


class _ChannelLoss(nn.Module):
    """Base: checks shapes, computes in float32, averages per-channel losses with weights."""

    def __init__(self, weight: Sequence[float] | None = None) -> None:
        super().__init__()
        w = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        self.register_buffer("weight", w, persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.shape != targets.shape or logits.ndim != 4:
            raise SegQCError(
                f"loss needs logits and targets of the same (B, K, H, W) shape, got "
                f"{tuple(logits.shape)} and {tuple(targets.shape)}"
            )
        if self.weight is not None and self.weight.numel() != logits.shape[1]:
            raise SegQCError(
                f"{self.weight.numel()} channel weights for {logits.shape[1]} output channels"
            )
        with torch.autocast(device_type=logits.device.type, enabled=False):
            per_channel = self.per_channel(logits.float(), targets.float())
        if self.weight is None:
            return per_channel.mean()
        w = self.weight.to(per_channel.device)
        return (per_channel * w).sum() / w.sum()

    def per_channel(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss per channel, shape (K,)."""
        raise NotImplementedError


class BCELoss(_ChannelLoss):
    """Binary cross-entropy with logits, averaged over pixels."""

    def per_channel(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return bce.mean(dim=(0, 2, 3))


class TverskyLoss(_ChannelLoss):
    """1 - Tversky index of sigmoid probabilities, per channel over the whole batch.

    ``alpha`` weighs false positives, ``beta`` false negatives (beta > alpha favours recall).
    Written as (2TP + s) / (2TP + 2αFP + 2βFN + s) so that alpha = beta = 0.5 is exactly
    :class:`DiceLoss`, smoothing included.

    References
    ----------
    Salehi, Erdogmus & Gholipour (2017), "Tversky loss function for image segmentation using
    3D fully convolutional deep networks", MLMI.
    """

    def __init__(
        self,
        weight: Sequence[float] | None = None,
        *,
        alpha: float = 0.3,
        beta: float = 0.7,
        smooth: float = 1.0,
    ) -> None:
        super().__init__(weight)
        self.alpha, self.beta, self.smooth = alpha, beta, smooth

    def per_channel(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        dims = (0, 2, 3)
        tp = (p * targets).sum(dims)
        fp = (p * (1 - targets)).sum(dims)
        fn = ((1 - p) * targets).sum(dims)
        num = 2 * tp + self.smooth
        den = 2 * tp + 2 * self.alpha * fp + 2 * self.beta * fn + self.smooth
        return 1 - num / den.clamp_min(1e-7)


class DiceLoss(TverskyLoss):
    """1 - soft Dice of sigmoid probabilities, per channel over the whole batch, ``smooth``
    added to numerator and denominator (an empty target and an empty prediction give 0)."""

    def __init__(self, weight: Sequence[float] | None = None, *, smooth: float = 1.0) -> None:
        super().__init__(weight, alpha=0.5, beta=0.5, smooth=smooth)


class BCEDiceLoss(_ChannelLoss):
    """BCE + Dice: pixel-wise calibration plus overlap, robust to class imbalance."""

    def __init__(self, weight: Sequence[float] | None = None, *, smooth: float = 1.0) -> None:
        super().__init__(weight)
        self.bce, self.dice = BCELoss(), DiceLoss(smooth=smooth)

    def per_channel(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.bce.per_channel(logits, targets) + self.dice.per_channel(logits, targets)


class FocalLoss(_ChannelLoss):
    """Focal loss: BCE down-weighted by (1 - p_t)^gamma for well-classified pixels.

    Computed from the stable BCE with logits (p_t = exp(-BCE)); ``alpha`` weighs the positives
    (1 - alpha the negatives), None switches it off. Never larger than BCE.

    References
    ----------
    Lin et al. (2017), "Focal Loss for Dense Object Detection", ICCV.
    """

    def __init__(
        self,
        weight: Sequence[float] | None = None,
        *,
        gamma: float = 2.0,
        alpha: float | None = 0.25,
    ) -> None:
        super().__init__(weight)
        self.gamma, self.alpha = gamma, alpha

    def per_channel(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        loss = (1 - torch.exp(-bce)).pow(self.gamma) * bce
        if self.alpha is not None:
            loss = loss * (self.alpha * targets + (1 - self.alpha) * (1 - targets))
        return loss.mean(dim=(0, 2, 3))


LOSSES: dict[str, type[_ChannelLoss]] = {
    "bce": BCELoss,
    "dice": DiceLoss,
    "bce_dice": BCEDiceLoss,
    "focal": FocalLoss,
    "tversky": TverskyLoss,
}


def make_loss(name: str, **kwargs) -> nn.Module:
    """Build the loss called ``name`` (see ``LOSSES``); ``kwargs`` go to its class."""
    key = name.lower().replace("+", "_").replace("-", "_")
    if key not in LOSSES:
        raise SegQCError(f"unknown loss {name!r}; choose one of: {', '.join(sorted(LOSSES))}")
    return LOSSES[key](**kwargs)
