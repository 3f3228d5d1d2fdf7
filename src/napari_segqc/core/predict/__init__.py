"""Prediction: trained models over images of any size, into instance labels.

* :mod:`.loading`: a model (built-in name, run folder or file) loaded for inference; export;
* :mod:`.tiling`: where tiles start, how long they are, how overlaps are blended;
* :mod:`.inference`: the network's maps of a 2-D image or a stack, tile by tile, with progress,
  stop, flip TTA and out-of-memory retry;
* :mod:`.segmentation`: maps and decoded instance labels in one call;
* :mod:`.classical`: a classical segmentation (Otsu + watershed) to compare with.

Decoding the maps into labels is :mod:`napari_segqc.core.instances.decoding`, shared with the
trainer's validation; :func:`decode_labels` is re-exported here.
"""

from ..instances.decoding import decode_labels
from .inference import iter_predict_probs, predict_probs_tiled
from .loading import LoadedModel, export_model, load_model
from .segmentation import segment

__all__ = [
    "LoadedModel",
    "decode_labels",
    "export_model",
    "iter_predict_probs",
    "load_model",
    "predict_probs_tiled",
    "segment",
]
