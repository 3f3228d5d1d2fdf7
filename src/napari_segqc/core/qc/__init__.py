"""Quality control: a prediction against its ground truth, as scores and maps.

* :mod:`.similarity`: grey-value similarity (SSIM with its map, RSE map, NRMSE, PSNR) and the
  ZeroCostDL4Mic normalisation;
* :mod:`.matching`: one-to-one object matching over IoU thresholds and object scores;
* :mod:`.pixel`: pixel scores, the error map and the per-object IoU map;
* :mod:`.report`: report entries, their summaries over images and slices, JSON and CSV;
* :mod:`.run`: a QC run of one pair (2-D or a stack, slice by slice, with progress and stop).

The public names are gathered here (``from napari_segqc.core.qc import qc_report, ssim``).
"""

from .matching import (
    THRESHOLD_SWEEP,
    ObjectMatch,
    match_objects,
    match_pairs,
    object_scores_from_counts,
    threshold_key,
)
from .pixel import (
    ERROR_CLASSES,
    ERROR_COLORS,
    error_map,
    object_iou_map,
    pixel_counts,
    pixel_scores,
    pixel_scores_from_counts,
)
from .report import combine_reports, dataset_report, to_json
from .run import QCMaps, QCResult, iter_qc, qc_report, run_qc
from .similarity import normalize_pair, nrmse, percentile_normalize, psnr, rse_map, ssim

__all__ = [
    "ERROR_CLASSES",
    "ERROR_COLORS",
    "THRESHOLD_SWEEP",
    "ObjectMatch",
    "QCMaps",
    "QCResult",
    "combine_reports",
    "dataset_report",
    "error_map",
    "iter_qc",
    "match_objects",
    "match_pairs",
    "normalize_pair",
    "nrmse",
    "object_iou_map",
    "object_scores_from_counts",
    "percentile_normalize",
    "pixel_counts",
    "pixel_scores",
    "pixel_scores_from_counts",
    "psnr",
    "qc_report",
    "rse_map",
    "run_qc",
    "ssim",
    "threshold_key",
    "to_json",
]
