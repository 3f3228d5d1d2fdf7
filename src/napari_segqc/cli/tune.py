"""``segqc tune``: a model's decoding settings tuned on a QC set, written into a new model file
with the weights untouched (the work is in ``core.qc.tune``)."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from .common import add_device_options, output_folder


def add_parser(sub) -> None:
    from ..core.qc.tune import TUNE_METRICS

    p = sub.add_parser(
        "tune",
        help="tune a model's decoding (threshold, seeds, split, filters) on a QC set",
        description="Run the model once over --images, then search its decoding settings "
        "(threshold, seed threshold, split height, min size, min object probability) by "
        "coordinate descent on the kept maps to maximise --metric against --gt. Writes a model "
        "file with the same weights, the tuned settings and a note of the tuning set in its "
        "card. The tuned settings never score below the model's own on this set; score them "
        "on other images (segqc evaluate) before trusting them.",
    )
    p.add_argument("--model", required=True, help="built-in name, run folder or .safetensors")
    p.add_argument("--images", required=True, metavar="DIR", help="images of the tuning set")
    p.add_argument("--gt", required=True, metavar="DIR", help="ground-truth labels (by name)")
    p.add_argument("--out", required=True, metavar="FILE", help="the tuned .safetensors to write")
    p.add_argument("--metric", default="accuracy", choices=TUNE_METRICS, help="what is maximised")
    p.add_argument(
        "--threshold", type=float, default=0.5, metavar="TAU", help="IoU threshold of the metric"
    )
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation")
    add_device_options(p, precision=False)
    p.set_defaults(func=run_tune_command)


def run_tune_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..core.device import pick_device
    from ..core.errors import SegQCError
    from ..core.models.builtin import resolve_model_path
    from ..core.models.formats import SAFETENSORS, model_format, read_model_meta
    from ..core.predict.loading import export_model, read_config
    from ..core.qc.evaluate import PredictionCache, evaluate, load_qc_set, model_specs
    from ..core.qc.tune import iter_tune

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise SegQCError(f"--out {out}: name a .safetensors file")
    if not 0.0 < args.threshold <= 1.0:
        raise SegQCError(f"--threshold must be in (0, 1], got {args.threshold}")
    output_folder(out.parent, "--out's folder")
    if model_format(resolve_model_path(args.model)) != SAFETENSORS:
        raise SegQCError(
            f"--model {args.model}: tuning writes a .safetensors model, so it needs the "
            "model's .safetensors file, run folder or built-in name (not an exported model)"
        )
    (spec,) = model_specs([args.model])
    qc_set = load_qc_set(args.images, args.gt)
    config = read_config(args.model)
    cache = PredictionCache()
    print(f"predicting {len(qc_set)} images with {args.model} (once)", flush=True)
    evaluate(
        [spec],
        qc_set,
        threshold=args.threshold,
        tta=args.tta,
        device=pick_device(args.device),
        cache=cache,
    )
    keys = [PredictionCache.key(spec.source, p.name, args.tta) for p in qc_set]
    gen = iter_tune(
        config,
        [cache.maps[k] for k in keys],
        [p.gt for p in qc_set],
        scales=[cache.factors.get(k, 1.0) for k in keys],
        metric=args.metric,
        threshold=args.threshold,
    )
    while True:
        try:
            trials, best = next(gen)
        except StopIteration as finished:
            result = finished.value
            break
        if trials % 25 == 0:
            print(f"  {trials} settings tried, best {args.metric} {best:.4f}", flush=True)
    card = dict(read_model_meta(args.model)[1].get("card") or {})
    card["tuned_decoding"] = {
        "set": {
            "images": str(args.images),
            "gt": str(args.gt),
            "n_images": len(qc_set),
            "names": [p.name for p in qc_set],
        },
        "metric": args.metric,
        "iou_threshold": args.threshold,
        "tta": bool(args.tta),
        "before": result.before,
        "after": result.after,
        "defaults": result.defaults,
        "settings": result.settings,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "note": "tuned on this set: its score here is optimistic; score it on other images",
    }
    export_model(args.model, out, half=False, decoding=result.settings, card=card)
    before = ", ".join(f"{k} {v:g}" for k, v in result.defaults.items())
    after = ", ".join(f"{k} {v:g}" for k, v in result.settings.items())
    print(f"{args.metric} at IoU {args.threshold:.2f} on {len(qc_set)} images:")
    print(f"  model's settings {result.before:.4f} ({before})")
    print(f"  tuned settings   {result.after:.4f} ({after})")
    print(
        f"{len(result.trials)} settings tried, {result.decodings} decodings of the set, "
        f"{result.seconds:.1f} s; wrote {out}"
    )
    return 0
