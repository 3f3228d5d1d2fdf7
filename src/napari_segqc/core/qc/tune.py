"""Decoding tuned on a QC set: the settings that turn a model's maps into labels (threshold,
seed threshold, split height, minimum size, minimum object probability), searched by
coordinate descent on the network's cached maps; the weights are never touched and the
network never runs again.

The search starts from the model's own settings and only accepts strict improvements, so the
tuned settings never score below them on the set. Each round sweeps one setting at a time
over a grid around the current value (the whole range first, then finer steps near the best),
until a round improves nothing at the finest step. Watershed settings (threshold, seed
threshold, split height) need a decoding per image; the two object filters (minimum size and
probability) only filter the decoded objects again (:func:`.decoding.filter_objects`, the last
step of decoding), so they are cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import SegQCError, Stopped
from .matching import THRESHOLD_SWEEP, match_objects, object_scores_from_counts, threshold_key

#: Each setting: (lowest, highest, steps from coarse to fine).
SEARCH_SPACE: dict[str, tuple[float, float, tuple[float, ...]]] = {
    "threshold": (0.1, 0.9, (0.1, 0.05, 0.01)),
    "seed_threshold": (0.05, 0.9, (0.1, 0.05, 0.01)),
    "split_height": (0.0, 0.6, (0.1, 0.05, 0.01)),
    "min_size": (0, 200, (10, 5, 1)),
    "min_object_prob": (0.0, 0.95, (0.1, 0.05, 0.01)),
}
WATERSHED = ("threshold", "seed_threshold", "split_height")
TUNE_METRICS = ("accuracy", "f1", "pq", "dsb_score")


@dataclass
class TuneResult:
    """Tuned ``settings`` with the score ``before`` (the model's own) and ``after``."""

    metric: str
    threshold: float
    defaults: dict[str, float]
    settings: dict[str, float]
    before: float
    after: float
    decodings: int  # full decodings of the set (watershed settings tried)
    seconds: float
    trials: list[dict[str, Any]] = field(default_factory=list)


def _score(pairs, metric: str, threshold: float) -> float:
    """Summed-count ``metric`` of (gt, labels) pairs at IoU ``threshold`` (or the sweep)."""
    taus = THRESHOLD_SWEEP if metric == "dsb_score" else (threshold,)
    totals = {threshold_key(t): np.zeros(4) for t in taus}
    for gt, labels in pairs:
        for key, m in match_objects(gt, labels, thresholds=taus).items():
            totals[key] += (m["tp"], m["fp"], m["fn"], m["sum_matched_iou"])
    scores = [
        object_scores_from_counts(int(tp), int(fp), int(fn), s) for tp, fp, fn, s in totals.values()
    ]
    if metric == "dsb_score":
        return float(np.mean([s["accuracy"] for s in scores]))
    return float(scores[0][metric])


def iter_tune(
    config,
    maps: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    *,
    scales: Sequence[float] | None = None,
    metric: str = "accuracy",
    threshold: float = 0.5,
    stop: Callable[[], bool] | None = None,
) -> Generator[tuple[int, float], None, TuneResult]:
    """Tune the decoding of a model (its TrainConfig ``config``) on its ``maps`` of images with
    ground truth ``gts``; yields (trials so far, best score) and returns a :class:`TuneResult`.
    ``scales``: the factor each image was resized by for the model (the minimum size is in
    the model's pixels, see :func:`.decoding.min_size_at`); None: all 1."""
    from ..instances.decoding import decode_labels, decoding_config, filter_objects, min_size_at

    if metric not in TUNE_METRICS:
        raise SegQCError(f"metric must be one of {', '.join(TUNE_METRICS)}, got {metric!r}")
    if not maps or len(maps) != len(gts):
        raise SegQCError("tuning needs maps and ground truth of the same images (at least one)")
    scales = [1.0] * len(maps) if scales is None else list(scales)
    if len(scales) != len(maps):
        raise SegQCError(f"{len(maps)} maps but {len(scales)} scales")
    t0 = time.perf_counter()
    names = [n for n in SEARCH_SPACE if config.target_mode == "instance" or n not in WATERSHED[1:]]
    defaults = {n: getattr(config, n) for n in names}
    raw: dict[tuple, list[np.ndarray]] = {}

    def score(settings: dict[str, float]) -> float:
        key = tuple(settings.get(n, getattr(config, n)) for n in WATERSHED)
        if key not in raw:  # decode without the object filters, filter per trial below
            loose = replace(config, **dict(zip(WATERSHED, key, strict=True)))
            loose = replace(loose, min_size=0, min_object_prob=0.0)
            raw[key] = [decode_labels(m, loose) for m in maps]
        min_size = int(settings["min_size"])
        labels = [
            filter_objects(r, min_size_at(min_size, s), m[0], settings["min_object_prob"])
            for r, m, s in zip(raw[key], maps, scales, strict=True)
        ]
        return _score(zip(gts, labels, strict=True), metric, threshold)

    current = dict(defaults)
    best = score(current)
    trials = [{**current, "score": best}]
    for level in range(3):
        improved = True
        while improved:
            improved = False
            for name in names:
                for value in _candidates(name, current[name], level):
                    if stop is not None and stop():
                        raise Stopped("tuning stopped")
                    trial = {**current, name: value}
                    try:
                        decoding_config(config, **trial)
                    except SegQCError:
                        continue  # outside what decoding accepts
                    s = score(trial)
                    trials.append({**trial, "score": s})
                    if s > best + 1e-12:
                        best, current, improved = s, trial, True
                    yield len(trials), best
    # the tuned settings scored the way prediction decodes (must agree with the search)
    tuned = decoding_config(config, **current)
    decoded = [decode_labels(m, tuned, scale=s) for m, s in zip(maps, scales, strict=True)]
    after = _score(zip(gts, decoded, strict=True), metric, threshold)
    before = trials[0]["score"]
    if after < before:  # never worse than the model's own settings
        current, after = dict(defaults), before
    return TuneResult(
        metric,
        threshold,
        defaults,
        current,
        before,
        after,
        len(raw),
        time.perf_counter() - t0,
        trials,
    )


def _candidates(name: str, value: float, level: int) -> list[float]:
    """Values of ``name`` to try at ``level``: the whole range at the coarsest step, then a
    finer step around ``value`` (±2 steps of the middle one, ±4 of the finest: each level
    fills the gaps of the one before)."""
    low, high, steps = SEARCH_SPACE[name]
    step = steps[level]
    if level == 0:
        grid = np.arange(low, high + step / 2, step)
    else:
        reach = 2 if level == 1 else 4
        grid = value + step * np.arange(-reach, reach + 1)
    grid = np.clip(grid, low, high)
    digits = 0 if name == "min_size" else 3
    values = sorted({round(float(v), digits) for v in grid} - {round(float(value), digits)})
    return [int(v) for v in values] if name == "min_size" else values


def tune(config, maps, gts, **kwargs) -> TuneResult:
    """:func:`iter_tune` run to the end."""
    gen = iter_tune(config, maps, gts, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as finished:
            return finished.value
