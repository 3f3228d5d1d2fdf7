"""Quality-control metrics, gathered in one public namespace.

* grey-value similarity (:mod:`.similarity`): :func:`ssim` (with its map), :func:`rse_map`,
  :func:`nrmse`, :func:`psnr`, and the ZeroCostDL4Mic normalisation :func:`normalize_pair`;
* objects (:mod:`.matching`): :func:`match_objects`, :func:`match_pairs` over the IoU
  sweep :data:`THRESHOLD_SWEEP`;
* pixels and maps (:mod:`.pixel`): :func:`pixel_scores`, :func:`error_map`,
  :func:`object_iou_map`;
* the report (:mod:`.qc`, :mod:`.report`): :func:`qc_report` for one pair (2-D or a stack),
  :func:`combine_reports` / :func:`dataset_report` for many.
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
from .qc import QCMaps, QCResult, iter_qc, qc_report, run_qc
from .report import combine_reports, dataset_report, to_json
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
