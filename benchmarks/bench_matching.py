"""Benchmark object matching against StarDist's ``stardist.matching.matching``; check agreement.

StarDist is not a dependency of napari-segqc; run this in its own environment, e.g.::

    python3 -m venv /work/bench-venv
    /work/bench-venv/bin/pip install -r benchmarks/requirements-stardist.txt
    /work/bench-venv/bin/pip install --no-deps stardist csbdeep
    /work/bench-venv/bin/python benchmarks/bench_matching.py [--size 4096] [--objects 5000]

``--no-deps`` keeps TensorFlow out: ``stardist.matching`` needs only numpy, scipy,
scikit-image, numba, tqdm and ``csbdeep.utils`` (which needs six), all listed in the
requirements file; ``import stardist.matching`` then works without TensorFlow. napari-segqc is
imported from ``src/`` (its matching module needs only numpy, scipy and scikit-image).

Timings are best of ``--repeat`` runs after a warm-up (numba compiles StarDist's overlap
counting on first use). For the IoU sweep StarDist is timed two ways: one ``matching`` call per
threshold, as users usually write it, and one call with the tuple of thresholds (its overlap
computed once, one dense assignment per threshold), the fairest comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import ellipse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from napari_segqc.core.qc.matching import THRESHOLD_SWEEP, match_objects, threshold_key

try:
    from stardist.matching import matching as sd_matching
except ImportError as err:  # pragma: no cover - depends on the benchmark environment
    sys.exit(f"stardist.matching not importable ({err}); see this file's docstring")


def paint_blobs(shape, centers, radii, rng, out=None, only_empty=False, first_id=1):
    """Paint random ellipses (later ones on top, touching like crowded nuclei)."""
    out = np.zeros(shape, np.int32) if out is None else out
    for i, ((r, c), rad) in enumerate(zip(centers, radii, strict=True)):
        ratio = rng.uniform(0.6, 1.0)
        rr, cc = ellipse(r, c, rad, rad * ratio, shape=shape, rotation=rng.uniform(0, np.pi))
        if only_empty:
            keep = out[rr, cc] == 0
            rr, cc = rr[keep], cc[keep]
        out[rr, cc] = first_id + i
    return out


def make_pair(size: int, n_objects: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth with ~n_objects blobs; prediction = warped boundaries, drops, spurious."""
    rng = np.random.default_rng(seed)
    shape = (size, size)
    centers = rng.uniform(0, size, (n_objects, 2))
    gt = paint_blobs(shape, centers, rng.uniform(6, 16, n_objects), rng)
    # boundaries perturbed by a smooth random displacement field (a few pixels)
    field = [ndi.gaussian_filter(rng.normal(size=shape), 6) for _ in range(2)]
    field = [f * (1.5 / f.std()) for f in field]
    grid = np.indices(shape, dtype=np.float32)
    pred = ndi.map_coordinates(gt, [grid[0] + field[0], grid[1] + field[1]], order=0)
    ids = np.unique(pred[pred > 0])
    dropped = rng.choice(ids, size=len(ids) // 20, replace=False)  # 5 % missed
    pred[np.isin(pred, dropped)] = 0
    n_fp = n_objects // 25  # 4 % spurious
    spurious = rng.uniform(0, size, (n_fp, 2))
    pred = paint_blobs(shape, spurious, rng.uniform(4, 10, n_fp), rng, pred, True, pred.max() + 1)
    # scramble the predicted ids so that they do not follow the ground truth
    lut = np.concatenate(([0], rng.permutation(int(pred.max())) + 1 + 10_000))
    return gt.astype(np.uint16), lut[pred].astype(np.int32)


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, result = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def compare(ours: dict, theirs) -> tuple[bool, bool, bool]:
    """(tp/fp/fn equal, matched IoU sum equal, ours >= StarDist's) at one threshold.

    Below 0.5 the matched IoU sums may differ: StarDist's tie-break also rewards the IoU of
    assigned pairs *below* the threshold (its cost is -(iou >= t) - iou / 2n over all pairs),
    napari-segqc maximises the IoU of the matched pairs only, so its sum is never lower.
    """
    o = ours[threshold_key(theirs.thresh)]
    counts = (o["tp"], o["fp"], o["fn"]) == (theirs.tp, theirs.fp, theirs.fn)
    theirs_sum = theirs.mean_matched_score * theirs.tp  # StarDist scores are float32
    equal = bool(np.isclose(o["sum_matched_iou"], theirs_sum, rtol=1e-5, atol=1e-5))
    return counts, equal, o["sum_matched_iou"] >= theirs_sum - 1e-5


def random_agreement(n_pairs: int, seed: int = 1) -> tuple[int, int, dict]:
    """Small crowded random pairs at low and high thresholds, where the assignment matters."""
    rng = np.random.default_rng(seed)
    thresholds = (0.1, 0.2, 0.3, 0.4, *THRESHOLD_SWEEP)
    checked = agreed = 0
    iou_equal = {"below 0.5": [0, 0], "0.5 and above": [0, 0]}
    for _ in range(n_pairs):
        size, n = 96, int(rng.integers(5, 60))
        gt = paint_blobs((size, size), rng.uniform(0, size, (n, 2)), rng.uniform(3, 12, n), rng)
        m = int(rng.integers(5, 60))
        pred = paint_blobs((size, size), rng.uniform(0, size, (m, 2)), rng.uniform(3, 12, m), rng)
        ours = match_objects(gt, pred, thresholds)
        for st in sd_matching(gt, pred, thresh=thresholds):
            counts, equal, not_lower = compare(ours, st)
            checked += 1
            agreed += counts and not_lower
            group = iou_equal["below 0.5" if st.thresh < 0.5 else "0.5 and above"]
            group[0] += equal
            group[1] += 1
    return agreed, checked, iou_equal


def exact_threshold_cases() -> list[tuple[str, int, int]]:
    """IoU exactly τ (a prediction of 100 τ pixels inside a 100-pixel object): tp of both.

    Both match it: StarDist's IoU is float32, but it is compared with τ in float32 too.
    """
    rows = []
    for t in THRESHOLD_SWEEP:
        gt, pred = np.zeros((10, 10), np.int32), np.zeros((10, 10), np.int32)
        gt[:] = 1
        pred.ravel()[: round(100 * t)] = 1
        ours = match_objects(gt, pred, (t,))[threshold_key(t)]["tp"]
        rows.append((threshold_key(t), ours, int(sd_matching(gt, pred, thresh=t).tp)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--random-pairs", type=int, default=200)
    args = parser.parse_args()

    gt, pred = make_pair(args.size, args.objects)
    n_gt, n_pred = len(np.unique(gt)) - 1, len(np.unique(pred)) - 1
    print(f"images {gt.shape}, {n_gt} gt objects, {n_pred} predicted objects")
    warm_gt, warm_pred = gt[:256, :256], pred[:256, :256]  # numba compiles on first use
    sd_matching(warm_gt, warm_pred, thresh=0.5)
    match_objects(warm_gt, warm_pred)

    r = args.repeat
    sweep = THRESHOLD_SWEEP
    t_ours1, ours1 = best_of(lambda: match_objects(gt, pred, (0.5,)), r)
    t_ours, ours = best_of(lambda: match_objects(gt, pred, sweep), r)
    t_sd1, sd1 = best_of(lambda: sd_matching(gt, pred, thresh=0.5), r)
    t_sd_once, sd_once = best_of(lambda: sd_matching(gt, pred, thresh=sweep), r)
    t_sd_each, sd_each = best_of(lambda: [sd_matching(gt, pred, thresh=t) for t in sweep], r)

    agree1 = all(compare(ours1, sd1)[:2])
    agree_sweep = all(all(compare(ours, st)[:2]) for st in (*sd_once, *sd_each))
    agreed, checked, iou_equal = random_agreement(args.random_pairs)

    def row(name, ours_t, sd_t, agree):
        return f"| {name} | {ours_t:.3f} | {sd_t:.3f} | {sd_t / ours_t:.1f}x | {agree} |"

    print(f"\nbest of {r}, seconds\n")
    print("| task | napari-segqc | stardist | speed-up | tp/fp/fn and IoU agree |")
    print("| --- | ---: | ---: | ---: | --- |")
    print(row("τ = 0.5", t_ours1, t_sd1, agree1))
    print(row("sweep 0.50:0.95, stardist one call per τ", t_ours, t_sd_each, agree_sweep))
    print(row("sweep 0.50:0.95, stardist one call with all τ", t_ours, t_sd_once, agree_sweep))
    print(f"\nrandom crowded 96x96 pairs, τ in 0.1..0.95: tp/fp/fn agree in {agreed}/{checked}")
    for name, (eq, n) in iou_equal.items():
        print(f"  matched IoU sum equal for τ {name}: {eq}/{n} (else napari-segqc's is higher)")
    print("\n| τ | tp | fp | fn | accuracy | mean matched IoU | pq |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key, o in ours.items():
        print(
            f"| {key} | {o['tp']} | {o['fp']} | {o['fn']} | {o['accuracy']:.4f} "
            f"| {o['mean_matched_iou']:.4f} | {o['pq']:.4f} |"
        )
    exact = exact_threshold_cases()
    exact_agree = all(a == b == 1 for _, a, b in exact)
    print(f"IoU exactly τ, for each τ of the sweep: both match it: {exact_agree}")
    if not (exact_agree and agree1 and agree_sweep and agreed == checked):
        sys.exit("DISAGREEMENT with stardist")


if __name__ == "__main__":
    main()
