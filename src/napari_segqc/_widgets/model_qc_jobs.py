"""The Model QC dock's worker bodies (run off the GUI thread): evaluate a QC set, tune a
model's decoding on the cached maps and write the tuned model."""

from __future__ import annotations

from pathlib import Path


def evaluate_job(specs, load_set, threshold, tta, device_name, cache):
    """Worker body: read the QC set (off the GUI thread), then evaluate, yielding progress."""
    from ..core.device import pick_device
    from ..core.qc.evaluate import iter_evaluate

    qc_set = load_set()
    evaluation = yield from iter_evaluate(
        specs, qc_set, threshold=threshold, tta=tta, device=pick_device(device_name), cache=cache
    )
    return qc_set, evaluation


def tune_job(config, maps, scales, gts, metric, threshold, source, dest, qc_names):
    from ..core.predict.loading import export_model
    from ..core.qc.tune import iter_tune

    result = yield from iter_tune(
        config, maps, gts, scales=scales, metric=metric, threshold=threshold
    )
    card = {
        "tuned_decoding": {
            "set": {"names": qc_names, "n_images": len(qc_names)},
            "metric": metric,
            "iou_threshold": threshold,
            "before": result.before,
            "after": result.after,
            "settings": result.settings,
        }
    }
    export_model(source, dest, half=False, decoding=result.settings, card=card)
    return result, Path(dest)
