"""Segmentation in one call: the network's maps of an image (tile by tile), decoded into
instance labels with the model's decoding settings or overrides."""

from __future__ import annotations

import numpy as np

from ..instances.decoding import decode_labels, decoding_config
from .inference import predict_probs_tiled
from .loading import LoadedModel


def segment(
    loaded: LoadedModel,
    image,
    *,
    threshold: float | None = None,
    min_size: int | None = None,
    split_height: float | None = None,
    min_object_prob: float | None = None,
    **kwargs,
) -> tuple[np.ndarray, np.ndarray]:
    """Instance labels (int32) and the network's maps of a 2-D image or a stack.

    The decoding settings (see :func:`decode_labels`) default to the model's config; ``kwargs``
    go to :func:`predict_probs_tiled`. Re-decode the maps with :func:`decode_labels` to try
    other settings without running the network again.
    """
    config = decoding_config(  # bad settings fail before the network runs
        loaded.config,
        threshold=threshold,
        min_size=min_size,
        split_height=split_height,
        min_object_prob=min_object_prob,
    )
    probs = predict_probs_tiled(loaded, image, **kwargs)
    labels = decode_labels(probs, config)
    return labels, probs
