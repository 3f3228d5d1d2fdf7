"""Validation during training: the whole image through the network, then the same decoding and
scores as prediction and QC (loss, pixel IoU, object F1 at IoU 0.5, counts summed)."""

from __future__ import annotations

import math

import numpy as np

from ..instances.decoding import decode_labels
from ..qc.matching import match_objects, object_scores_from_counts
from ..qc.pixel import pixel_counts, pixel_scores_from_counts


def predict_probs(model, image: np.ndarray, device, dtype=None, channels_last: bool = True):
    """Sigmoid output ``(K, H, W)`` of ``model`` for one ``(C, H, W)`` image (padded to 32)."""
    import torch
    import torch.nn.functional as F

    _, h, w = image.shape
    ph, pw = -h % 32, -w % 32
    x = torch.from_numpy(np.ascontiguousarray(image))[None].to(device)
    mode = "reflect" if ph < h and pw < w else "replicate"
    x = F.pad(x, (0, pw, 0, ph), mode=mode)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=dtype, enabled=dtype is not None),
    ):
        logits = model(x)
    return logits.float()[0, :, :h, :w]


def validate(model, val_set, val_targets, loss_fn, config, device, dtype) -> dict[str, float]:
    """Loss, pixel IoU and object F1 at IoU 0.5 of the decoded instances (counts summed)."""
    import torch

    if not val_set:
        return {"val_loss": math.nan, "val_iou": math.nan, "val_f1": math.nan}
    model.eval()
    losses, px, obj = [], {"tp": 0, "fp": 0, "fn": 0, "tn": 0}, [0, 0, 0, 0.0]
    for sample, target in zip(val_set, val_targets, strict=True):
        logits = predict_probs(model, sample.image, device, dtype, config.channels_last)
        losses.append(float(loss_fn(logits[None], torch.from_numpy(target)[None].to(device))))
        probs = torch.sigmoid(logits).cpu().numpy()
        pred = decode_labels(probs, config)
        for k, v in pixel_counts(sample.labels, pred).items():
            px[k] += v
        m = match_objects(sample.labels, pred, thresholds=(0.5,))["0.50"]
        obj = [obj[0] + m["tp"], obj[1] + m["fp"], obj[2] + m["fn"], obj[3] + m["sum_matched_iou"]]
    return {
        "val_loss": float(np.mean(losses)),
        "val_iou": pixel_scores_from_counts(px)["iou"],
        "val_f1": object_scores_from_counts(*obj)["f1"],
    }
