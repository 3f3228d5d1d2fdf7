"""How well the decoding turns targets back into the objects they came from, and how long it
takes: DSB 2018 masks -> targets -> decoded labels -> object accuracy against the masks.

For every setting of the split height (0 = seeds are connected core regions; > 0 = h-maxima of
the smoothed core score) the exact targets and targets blurred with a Gaussian (sigma 1.5,
network-like soft maps) are decoded, side by side in one run, and scored with object accuracy
TP/(TP+FP+FN) at IoU 0.5, counts summed over the images. This is an upper bound of what a
network with these targets can reach, not a model's score.

    python benchmarks/bench_decoding.py [--masks ../shared/data/dsb2018/train/masks] [--every 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from napari_segqc.core.instances.decoding import decode_instances
from napari_segqc.core.instances.targets import make_targets
from napari_segqc.core.qc.matching import match_objects

MASKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018" / "train" / "masks"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--masks", type=Path, default=MASKS)
    p.add_argument("--every", type=int, default=1, help="use every n-th mask file")
    p.add_argument("--heights", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3])
    args = p.parse_args()
    files = sorted(args.masks.glob("*.tif"))[:: args.every]
    if not files:
        sys.exit(f"no mask files in {args.masks}")
    counts = {(h, blur): np.zeros(3) for h in args.heights for blur in (0.0, 1.5)}
    seconds = dict.fromkeys(counts, 0.0)
    for f in files:
        gt = tifffile.imread(f)
        exact = make_targets(gt)
        soft = np.stack([ndi.gaussian_filter(c, 1.5) for c in exact])
        for (h, blur), c in counts.items():
            t0 = time.perf_counter()
            pred = decode_instances(soft if blur else exact, split_height=h)
            seconds[h, blur] += time.perf_counter() - t0
            r = match_objects(gt, pred, (0.5,))["0.50"]
            c += (r["tp"], r["fp"], r["fn"])
    print(f"{len(files)} DSB 2018 masks, {int(counts[args.heights[0], 0.0][[0, 2]].sum())} nuclei")
    print("| split height | targets | accuracy at IoU 0.5 | decoding ms / image |")
    print("| ---: | --- | ---: | ---: |")
    for (h, blur), c in counts.items():
        name = "blurred (sigma 1.5)" if blur else "exact"
        ms = 1000 * seconds[h, blur] / len(files)
        print(f"| {h:g} | {name} | {c[0] / c.sum():.3f} | {ms:.0f} |")


if __name__ == "__main__":
    main()
