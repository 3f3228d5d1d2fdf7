"""Two models image by image: paired differences, a signed-rank test, a bootstrap interval of
the summed-count accuracy difference, best and worst images, and where the models disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SegQCError
from .evaluate import Evaluation, row_key

BOOTSTRAP_SAMPLES = 2000


@dataclass
class Comparison:
    """Model ``a`` against model ``b`` (:attr:`.evaluate.ModelSpec.key`) on the same images
    (accuracy at the evaluation's τ)."""

    a: str
    b: str
    images: list[str]
    accuracy_a: np.ndarray
    accuracy_b: np.ndarray
    summed_difference: float  # accuracy of a - accuracy of b, counts summed over images
    interval: tuple[float, float]  # bootstrap 95 % interval of summed_difference
    wilcoxon_p: float  # two-sided Wilcoxon signed-rank test of the per-image differences
    wins: tuple[int, int, int]  # images where a is better, equal, worse

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "summed_accuracy_difference": self.summed_difference,
            "bootstrap_95": list(self.interval),
            "wilcoxon_p": self.wilcoxon_p,
            "a_better_equal_worse": list(self.wins),
        }


def _counts(evaluation: Evaluation, label: str) -> tuple[list[str], np.ndarray]:
    rows = [r for r in evaluation.rows if row_key(r) == label]
    if not rows:
        raise SegQCError(f"no model {label!r} in this evaluation")
    counts = np.array([[r["tp"], r["fp"], r["fn"]] for r in rows], np.int64)
    return [r["image"] for r in rows], counts


def _accuracy(counts: np.ndarray) -> np.ndarray:
    """Accuracy TP/(TP+FP+FN) of each row of counts (1.0 where all three are 0)."""
    den = counts.sum(axis=-1)
    return np.where(den > 0, counts[..., 0] / np.maximum(den, 1), 1.0)


def compare_models(
    evaluation: Evaluation, a: str, b: str, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> Comparison:
    """Paired comparison of models ``a`` and ``b`` (labels in the evaluation)."""
    from scipy.stats import wilcoxon

    names_a, ca = _counts(evaluation, a)
    names_b, cb = _counts(evaluation, b)
    if names_a != names_b:
        raise SegQCError(f"{a!r} and {b!r} were not evaluated on the same images")
    acc_a, acc_b = _accuracy(ca), _accuracy(cb)
    diff = acc_a - acc_b
    summed = _accuracy(ca.sum(0)) - _accuracy(cb.sum(0))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(names_a), (samples, len(names_a)))
    boot = _accuracy(ca[picks].sum(1)) - _accuracy(cb[picks].sum(1))
    low, high = np.percentile(boot, [2.5, 97.5])
    if np.count_nonzero(diff) == 0:
        p = 1.0  # identical on every image
    else:
        p = float(wilcoxon(acc_a, acc_b, zero_method="wilcox").pvalue)
    wins = (int((diff > 0).sum()), int((diff == 0).sum()), int((diff < 0).sum()))
    return Comparison(
        a, b, names_a, acc_a, acc_b, float(summed), (float(low), float(high)), p, wins
    )


def ranked_images(evaluation: Evaluation, label: str, n: int = 5) -> dict[str, list[dict]]:
    """The ``n`` best and worst images of a model by accuracy at τ (ties: by name)."""
    rows = [r for r in evaluation.rows if row_key(r) == label]
    order = sorted(rows, key=lambda r: (-r["accuracy"], r["image"]))
    return {"best": order[:n], "worst": order[::-1][:n]}


def disagreements(comparison: Comparison, n: int = 5) -> list[dict[str, Any]]:
    """The ``n`` images where the two models' accuracies differ most."""
    diff = comparison.accuracy_a - comparison.accuracy_b
    order = np.argsort(-np.abs(diff), kind="stable")[:n]
    return [
        {
            "image": comparison.images[i],
            comparison.a: float(comparison.accuracy_a[i]),
            comparison.b: float(comparison.accuracy_b[i]),
            "difference": float(diff[i]),
        }
        for i in order
    ]
