"""Choose when ``--diameter auto`` rescales (``SCALE_TOLERANCE``) on a validation split.

Each validation image is segmented at its own scale, at x0.5 and at x2 (images whose halved
nuclei would be under 6 px are left out at x0.5), once as it is and once resized to the
model's median diameter from the estimated diameter; the object counts at IoU 0.5 are kept
per image, and every tolerance is scored as the accuracy (counts summed) over all three
scales. Prints one line per tolerance and the estimate's error.

    python scripts/choose_scale_policy.py --model nuclei --split val [--kind fluo]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_builtin_v2 import DATASET, load_split

from napari_segqc.core.instances.decoding import decode_labels
from napari_segqc.core.instances.sizes import object_diameters
from napari_segqc.core.predict.inference import predict_probs_tiled
from napari_segqc.core.predict.loading import load_model
from napari_segqc.core.predict.scale import estimate_diameter
from napari_segqc.core.qc.matching import match_objects

TOLERANCES = (1.2, 1.4, 1.7, 2.0, 2.5, 100.0)
#: Asymmetric policies: objects larger than the model's by more than DOWN are shrunk, smaller by
#: more than UP enlarged.
DOWN_TOLERANCES, UP = (1.2, 1.3, 1.4, 1.5, 1.6), 1.7


def counts(gt, labels) -> np.ndarray:
    r = match_objects(gt, labels)["0.50"]
    return np.array([r["tp"], r["fp"], r["fn"]], float)


def report(rows, title: str, down: float, up: float) -> None:
    """Accuracy when objects are shrunk beyond ``down`` and enlarged beyond ``up``; and how
    many images at their own scale would be rescaled."""
    by, moved = {}, 0
    for factor, ratio, c_n, c_s in rows:
        keep = 1 / down <= ratio <= up
        moved += factor == 1.0 and not keep
        by.setdefault(factor, np.zeros(3))
        by[factor] += c_n if keep else c_s
    total = sum(by.values())
    parts = " ".join(f"x{f}: {c[0] / c.sum():.4f}" for f, c in sorted(by.items()))
    print(f"{title}: all {total[0] / total.sum():.4f}  {parts}  (x1 rescaled: {moved})", flush=True)


def main(argv=None) -> int:
    from skimage.transform import rescale

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="nuclei")
    p.add_argument("--kind", default="fluo", choices=sorted(DATASET))
    p.add_argument("--split", default="val")
    args = p.parse_args(argv)
    loaded = load_model(args.model)
    d_model = loaded.config.diameter
    rgb = loaded.config.model.in_channels == 3
    rows = []  # (ratio d_model / d_est, counts native, counts rescaled)
    errors = []
    for sample in load_split(DATASET[args.kind], args.split, rgb=rgb or None):
        image = np.moveaxis(sample.image, 0, -1) if rgb else sample.image[0]
        true_d = float(np.median(object_diameters(sample.labels)))
        for factor in (1.0, 0.5, 2.0):
            if factor == 0.5 and true_d * factor < 6:
                continue
            img = rescale(image, factor, order=1, channel_axis=-1 if rgb else None)
            gt = sample.labels
            if factor != 1.0:
                gt = rescale(gt, factor, order=0, anti_aliasing=False, preserve_range=True)
                gt = gt.astype(np.int32)
            native = predict_probs_tiled(loaded, img)
            d_est = estimate_diameter(native) or d_model
            errors.append(d_est / (true_d * factor))
            c_native = counts(gt, decode_labels(native, loaded.config))
            ratio = d_model / d_est
            scaled = predict_probs_tiled(loaded, img, scale=ratio, diameter=d_model)
            c_scaled = counts(gt, decode_labels(scaled, loaded.config, scale=ratio))
            rows.append((factor, ratio, c_native, c_scaled))
        print(f"{sample.name[:12]} d={true_d:.0f}", flush=True)
    errors = np.array(errors)
    within = np.mean(abs(errors - 1) < 0.25)
    print(f"estimate / true: median {np.median(errors):.3f}, within 25 %: {within:.3f}")
    for tol in TOLERANCES:
        report(rows, f"tolerance {tol}", tol, tol)
    for down in DOWN_TOLERANCES:  # shrinking costs no time: it may start earlier
        report(rows, f"shrink beyond {down}, enlarge beyond {UP}", down, UP)
    return 0


if __name__ == "__main__":
    sys.exit(main())
