"""Model QC in the core: cached predictions, re-scoring, paired comparison, decoding tuning."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.instances.decoding import decode_labels
from napari_segqc.core.instances.targets import make_targets
from napari_segqc.core.qc.compare import compare_models, disagreements, ranked_images
from napari_segqc.core.qc.evaluate import (
    Evaluation,
    ModelSpec,
    PredictionCache,
    QCPair,
    evaluate,
    load_qc_set,
    score_evaluation,
)
from napari_segqc.core.qc.run import qc_report
from napari_segqc.core.qc.tune import tune
from napari_segqc.core.train.config import TrainConfig


@pytest.fixture(scope="module")
def small_set(sample_dir):
    pairs = load_qc_set(sample_dir / "images", sample_dir / "masks")
    return [QCPair(p.name, p.image[:128, :128], p.gt[:128, :128]) for p in pairs[:2]]


def test_rescoring_reuses_the_cached_labels(small_set, monkeypatch):
    from napari_segqc.core.predict import inference

    cache = PredictionCache()
    spec = ModelSpec("nuclei", "nuclei")
    first = evaluate([spec], small_set, cache=cache)
    assert len(cache.maps) == len(cache.labels) == 2

    def no_network(*_a, **_k):
        raise AssertionError("the network ran again")

    monkeypatch.setattr(inference, "iter_predict_probs", no_network)
    again = score_evaluation(first, small_set, cache, threshold=0.7)
    assert again.threshold == 0.7 and again.seconds == first.seconds
    for row, pair in zip(again.rows, small_set, strict=True):
        labels = cache.labels[PredictionCache.key("nuclei", pair.name, False)]
        expected = qc_report(pair.gt, labels, threshold=0.7)["objects"]["0.70"]
        assert (row["tp"], row["fp"], row["fn"]) == (expected["tp"], expected["fp"], expected["fn"])
    assert sum(r["tp"] for r in again.rows) <= sum(r["tp"] for r in first.rows)


def _evaluation(counts_a, counts_b) -> Evaluation:
    rows = []
    for label, counts in (("A", counts_a), ("B", counts_b)):
        for i, (tp, fp, fn) in enumerate(counts):
            acc = tp / (tp + fp + fn)
            rows.append({"model": label, "checkpoint": "", "image": f"im{i}", "tp": tp,
                         "fp": fp, "fn": fn, "accuracy": acc})  # fmt: skip
    specs = [ModelSpec("A", "a"), ModelSpec("B", "b")]
    return Evaluation(specs, [f"im{i}" for i in range(len(counts_a))], 0.5, rows, [], [], [])


def test_comparison_of_identical_and_of_better_models():
    counts = [(8, 2, 1), (5, 5, 5), (9, 0, 1), (3, 1, 6), (7, 3, 0)]
    same = compare_models(_evaluation(counts, counts), "A", "B")
    assert same.summed_difference == 0 and same.interval == (0.0, 0.0)
    assert same.wilcoxon_p == 1.0 and same.wins == (0, 5, 0)
    better = [(tp + 2, max(fp - 1, 0), max(fn - 1, 0)) for tp, fp, fn in counts]
    comp = compare_models(_evaluation(better, counts), "A", "B")
    assert comp.summed_difference > 0 and comp.interval[0] > 0 and comp.wins == (5, 0, 0)
    assert 0 < comp.wilcoxon_p < 0.1  # 5 of 5 images better: the smallest two-sided p is 1/16
    worst = ranked_images(_evaluation(better, counts), "B", 2)["worst"]
    assert [r["image"] for r in worst] == ["im3", "im1"]
    assert len(disagreements(comp, 3)) == 3
    with pytest.raises(SegQCError, match="no model"):
        compare_models(_evaluation(counts, counts), "A", "C")


def _blurred_maps(gt: np.ndarray, sigma: float) -> np.ndarray:
    targets = make_targets(gt, "instance")
    return np.stack([ndi.gaussian_filter(t, sigma) for t in targets]).astype(np.float32)


def test_tuning_never_lowers_the_score_and_agrees_with_decoding(sample_pair):
    _, gt = sample_pair
    maps = [_blurred_maps(gt, 2.5), _blurred_maps(gt[::-1], 2.5)]
    gts = [gt, gt[::-1]]
    config = TrainConfig(threshold=0.7, seed_threshold=0.6, split_height=0.4, min_size=40)
    result = tune(config, maps, gts)
    assert result.after >= result.before and result.decodings >= 5
    assert result.defaults == {"threshold": 0.7, "seed_threshold": 0.6, "split_height": 0.4,
                               "min_size": 40, "min_object_prob": 0.0}  # fmt: skip
    tuned = config.__class__(**{**config.__dict__, **result.settings})
    from napari_segqc.core.qc.matching import match_objects

    counts = np.zeros(3)
    for m, g in zip(maps, gts, strict=True):
        s = match_objects(g, decode_labels(m, tuned))["0.50"]
        counts += (s["tp"], s["fp"], s["fn"])
    assert counts[0] / counts.sum() == pytest.approx(result.after)
    assert result.after > result.before  # these defaults are poor on blurred maps
    # images resized x2 for the model: the tuned minimum size is in the model's pixels
    scaled = tune(config, maps, gts, scales=[2.0, 2.0])
    tuned = config.__class__(**{**config.__dict__, **scaled.settings})
    counts = np.zeros(3)
    for m, g in zip(maps, gts, strict=True):
        s = match_objects(g, decode_labels(m, tuned, scale=2.0))["0.50"]
        counts += (s["tp"], s["fp"], s["fn"])
    assert counts[0] / counts.sum() == pytest.approx(scaled.after)
    with pytest.raises(SegQCError, match="scales"):
        tune(config, maps, gts, scales=[1.0])
