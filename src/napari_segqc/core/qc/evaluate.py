"""Model QC: one or more models (or every checkpoint of a run) scored over a QC set.

A QC set is a list of :class:`QCPair` (an image and its ground-truth labels), from a folder
pair (:func:`load_qc_set`, paired by name as in ``segqc qc``) or from arrays. For each model
and image, :func:`iter_evaluate` predicts (tile by tile, as ``segqc predict``), decodes with
the model's settings and scores the labels exactly as ``segqc qc`` does (:func:`.run.run_qc`,
merges and splits included). The network's maps and the labels are kept in a
:class:`PredictionCache`, so re-scoring at another τ (:func:`score_evaluation`) or tuning the
decoding never runs the network again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SegQCError, Stopped
from ..predict.auto import AUTO
from .matching import threshold_key
from .report import dataset_report
from .run import run_qc

#: Columns of ``evaluation.csv``: one row per (model, image); object scores at τ.
SCORE_COLUMNS = (
    *("n_gt", "n_pred", "tp", "fp", "fn", "merges", "splits", "precision", "recall", "f1"),
    *("accuracy", "mean_matched_iou", "pq", "dsb_score", "pixel_iou"),
)
EVALUATION_COLUMNS = ("model", "checkpoint", "epoch", "image", *SCORE_COLUMNS)
#: Columns of ``summary.csv``: one row per model or checkpoint, counts summed over images.
SUMMARY_COLUMNS = ("model", "checkpoint", "epoch", "images", *SCORE_COLUMNS, "seconds", "best")
#: Scores a best model or checkpoint can be chosen by (higher is better).
METRICS = ("accuracy", "f1", "dsb_score", "pq", "precision", "recall", "mean_matched_iou")


@dataclass(frozen=True)
class ModelSpec:
    """A model to evaluate: ``source`` (built-in name, run folder or file) shown as
    ``label``; ``checkpoint`` (``epoch_010``, ``best``, ``last``) and ``epoch`` in checkpoint
    QC."""

    label: str
    source: str
    checkpoint: str = ""
    epoch: int | None = None

    @property
    def key(self) -> str:
        """Unique in an evaluation: the label, with the checkpoint in checkpoint QC."""
        return row_key({"model": self.label, "checkpoint": self.checkpoint})


def row_key(row: dict[str, Any]) -> str:
    """The :attr:`ModelSpec.key` of an ``evaluation.csv`` or ``summary.csv`` row."""
    return f"{row['model']} {row['checkpoint']}" if row["checkpoint"] else row["model"]


@dataclass
class QCPair:
    """One image of a QC set with its ground-truth instance labels."""

    name: str
    image: np.ndarray
    gt: np.ndarray


def load_qc_set(images: str | os.PathLike, gt: str | os.PathLike) -> list[QCPair]:
    """Image/label pairs from two folders (or two files), paired by name as in ``segqc qc``."""
    from ..io import pair_files, read_image

    pairs = []
    for name, gt_file, image_file in pair_files(gt, images):
        image, labels = read_image(image_file), read_image(gt_file)
        if labels.dtype.kind not in "biu":
            raise SegQCError(f"{gt_file}: ground truth must be an integer label image")
        plane = image.shape[:-1] if image.ndim == labels.ndim + 1 else image.shape
        if tuple(plane) != tuple(labels.shape):
            raise SegQCError(
                f"{name}: image {image_file} has shape {image.shape} but its ground truth "
                f"{gt_file} has shape {labels.shape}"
            )
        pairs.append(QCPair(name, image, labels))
    return pairs


def run_checkpoints(run_dir: str | os.PathLike) -> list[ModelSpec]:
    """Every checkpoint of a run folder: ``epoch_NNN`` by epoch, then ``best`` and ``last``,
    each with the epoch stored in it."""
    from ..models.weights import load_weights

    run = Path(run_dir)
    if not run.is_dir():
        raise SegQCError(f"--checkpoints needs a run folder; {run} is not a folder")
    files = sorted(run.glob("epoch_[0-9][0-9][0-9]*.safetensors"))
    files += [run / n for n in ("best.safetensors", "last.safetensors") if (run / n).is_file()]
    if not files:
        raise SegQCError(f"{run}: no checkpoints (epoch_NNN, best or last .safetensors)")
    specs = []
    for f in files:
        epoch = load_weights(f, tensors=False)[1].get("epoch")
        epoch = None if epoch is None else int(epoch) + 1  # stored 0-based, shown 1-based
        specs.append(ModelSpec(run.name, str(f), f.stem, epoch))
    return specs


def model_specs(sources: Sequence[str], checkpoints: bool = False) -> list[ModelSpec]:
    """Specs of ``--model`` arguments (each checked now); with ``checkpoints``, every
    checkpoint of each run folder. Labels are unique (a suffix is added to repeated names)."""
    from ..models.builtin import resolve_model_path

    specs: list[ModelSpec] = []
    for source in sources:
        if checkpoints:
            specs.extend(run_checkpoints(source))
            continue
        if source != AUTO:
            resolve_model_path(source)  # missing models fail before anything runs
        path = Path(str(source))
        label = path.name if path.exists() else str(source)
        specs.append(ModelSpec(label, str(source)))
    counts: dict[tuple[str, str], int] = {}
    out = []
    for spec in specs:
        key = (spec.label, spec.checkpoint)
        counts[key] = counts.get(key, 0) + 1
        out.append(spec if counts[key] == 1 else replace(spec, label=f"{spec.label}_{counts[key]}"))
    return out


@dataclass
class PredictionCache:
    """The network's maps and the decoded labels per (model file, image, TTA), so re-scoring
    or tuning never re-runs a network. A changed model file (size or time) is a new entry."""

    maps: dict[tuple, np.ndarray] = field(default_factory=dict)
    #: the resize factor of each image for its model (object size), as decoding needs it
    factors: dict[tuple, float] = field(default_factory=dict)
    labels: dict[tuple, np.ndarray] = field(default_factory=dict)
    configs: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def key(source: str, image: str, tta: bool) -> tuple:
        from ..models.builtin import BUILTIN_MODELS, resolve_model_path

        paths = BUILTIN_MODELS.values() if source == AUTO else [resolve_model_path(source)]
        files = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
        return (files, image, bool(tta))


@dataclass(frozen=True)
class EvalProgress:
    """``done`` of ``total`` (model, image) pairs; ``model`` and ``image`` are the last one."""

    done: int
    total: int
    model: str
    image: str


@dataclass
class Evaluation:
    """What :func:`iter_evaluate` returns: rows per (model, image), a QC report per model."""

    specs: list[ModelSpec]
    names: list[str]
    threshold: float
    rows: list[dict[str, Any]]
    reports: list[dict[str, Any]]  # dataset_report per spec, in the order of specs
    seconds: list[float]
    configs: list[Any]  # each model's TrainConfig (decoding settings, model card)
    tta: bool = False  # whether the predictions were made with flip TTA

    def summary_rows(self, metric: str = "accuracy") -> list[dict[str, Any]]:
        """One row per model or checkpoint (counts summed over images); ``best`` is 1 on the
        row with the highest ``metric`` (the first of equals)."""
        if metric not in METRICS:
            raise SegQCError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        out = []
        for spec, report, seconds in zip(self.specs, self.reports, self.seconds, strict=True):
            row = _score_row(report["summary"], self.threshold)
            out.append(
                {
                    **_spec_columns(spec),
                    "images": len(report["images"]),
                    **row,
                    "seconds": round(seconds, 3),
                    "best": 0,
                }
            )
        values = [r[metric] if r[metric] is not None else -np.inf for r in out]
        if out:
            out[int(np.argmax(values))]["best"] = 1
        return out

    def best(self, metric: str = "accuracy") -> ModelSpec:
        rows = self.summary_rows(metric)
        return self.specs[next(i for i, r in enumerate(rows) if r["best"])]


def _spec_columns(spec: ModelSpec) -> dict[str, Any]:
    return {"model": spec.label, "checkpoint": spec.checkpoint, "epoch": spec.epoch}


def _score_row(entry: dict[str, Any], threshold: float) -> dict[str, Any]:
    objects = entry["objects"][threshold_key(threshold)]
    values = {**objects, "dsb_score": entry["dsb_score"], "pixel_iou": entry["pixel"]["iou"]}
    return {k: values[k] for k in SCORE_COLUMNS}


#: Predicts and scores (spec, pair) items elsewhere, yielding ``(labels, report)`` in order.
Runner = Callable[[list[tuple[ModelSpec, QCPair]]], Iterable[tuple[np.ndarray, dict]]]


def iter_evaluate(
    specs: Sequence[ModelSpec],
    qc_set: Sequence[QCPair],
    *,
    threshold: float = 0.5,
    tta: bool = False,
    device=None,
    dtype="auto",
    backend: str = "auto",
    cache: PredictionCache | None = None,
    stop: Callable[[], bool] | None = None,
    runner: Runner | None = None,
) -> Generator[EvalProgress, None, Evaluation]:
    """Score every model of ``specs`` on every pair of ``qc_set``; yields an
    :class:`EvalProgress` after each (model, image) and returns an :class:`Evaluation`.
    ``dtype``: the autocast precision of torch models (see
    :func:`napari_segqc.core.predict.inference.iter_predict_probs`; one per evaluation);
    ``backend``: see :func:`napari_segqc.core.predict.loading.load_model`.

    Maps and labels already in ``cache`` are reused (``seconds`` then counts only what ran).
    ``runner``: predicts and scores elsewhere (a dask cluster,
    :func:`napari_segqc.core.distributed.qc_tasks.evaluate_runner`): it gets the (spec, pair)
    not in ``cache``, each model file and image once, and yields :func:`score_pair`'s
    ``(labels, report)`` of each in that order; the network's maps are then not cached.
    """
    from ..instances.decoding import decode_labels
    from ..predict.auto import FLUORESCENCE, BuiltinModels
    from ..predict.loading import load_model, read_config

    if not specs:
        raise SegQCError("no model to evaluate")
    if not qc_set:
        raise SegQCError("the QC set is empty")
    if not 0.0 < threshold <= 1.0:
        raise SegQCError(f"IoU threshold must be in (0, 1], got {threshold}")
    cache = cache if cache is not None else PredictionCache()
    total, done = len(specs) * len(qc_set), 0
    reports, seconds, configs, rows = [], [], [], []
    builtins = BuiltinModels(device, backend)
    remote = _remote(runner, specs, qc_set, tta, cache)
    for spec in specs:
        auto = spec.source == AUTO
        config, loaded = read_config(FLUORESCENCE if auto else spec.source), None
        t0, entries = time.perf_counter(), []
        for pair in qc_set:
            if stop is not None and stop():
                raise Stopped("evaluation stopped")
            key = PredictionCache.key(spec.source, pair.name, tta)
            report = None
            if key not in cache.labels and remote is not None:
                cache.labels[key], report = next(remote)
            elif key not in cache.labels:
                if auto:
                    used, image = _auto_input(builtins.get, pair.image)
                else:
                    loaded = loaded or load_model(spec.source, device, backend)
                    used, image = loaded, _model_input(loaded, pair.image)
                if key not in cache.maps:
                    cache.maps[key], cache.factors[key] = _network_maps(
                        used, image, tta, dtype, stop
                    )
                scale = cache.factors.get(key, 1.0)
                cache.labels[key] = decode_labels(cache.maps[key], used.config, scale=scale)
            labels = cache.labels[key]
            report = report if report is not None else _scored(pair, labels, threshold)
            entries.append(report)
            rows.append(
                {**_spec_columns(spec), "image": pair.name, **_score_row(report, threshold)}
            )
            done += 1
            yield EvalProgress(done, total, spec.key, pair.name)
        seconds.append(time.perf_counter() - t0)
        reports.append(dataset_report(entries))
        configs.append(config)
    names = [p.name for p in qc_set]
    return Evaluation(list(specs), names, threshold, rows, reports, seconds, configs, tta)


def _remote(runner: Runner | None, specs, qc_set, tta: bool, cache: PredictionCache):
    """The runner's results for every (spec, pair) whose labels are not cached, each model
    file and image once, in the order :func:`iter_evaluate` meets them."""
    if runner is None:
        return None
    todo, seen = [], set()
    for spec in specs:
        for pair in qc_set:
            key = PredictionCache.key(spec.source, pair.name, tta)
            if key not in cache.labels and key not in seen:
                seen.add(key)
                todo.append((spec, pair))
    return iter(runner(todo))


def score_pair(
    source: str, pair: QCPair, *, threshold: float, tta: bool, dtype, get_model: Callable
) -> tuple[np.ndarray, dict[str, Any]]:
    """The labels of one image by the model ``source`` and their QC report, as
    :func:`iter_evaluate` makes them; ``get_model(name)`` gives a loaded model (a dask worker
    keeps its own: see :mod:`napari_segqc.core.distributed.qc_tasks`)."""
    from ..instances.decoding import decode_labels

    if source == AUTO:
        used, image = _auto_input(get_model, pair.image)
    else:
        used = get_model(source)
        image = _model_input(used, pair.image)
    maps, factor = _network_maps(used, image, tta, dtype)
    labels = decode_labels(maps, used.config, scale=factor)
    return labels, _scored(pair, labels, threshold)


def _network_maps(used, image, tta: bool, dtype, stop=None) -> tuple[np.ndarray, float]:
    """The maps of ``image`` at its size and the factor it was resized by for the model."""
    from ..predict.inference import run_to_end
    from ..predict.segmentation import iter_scaled_maps

    gen = iter_scaled_maps(used, image, diameter="auto", tta=tta, dtype=dtype)
    maps, info = run_to_end(gen, None, stop)
    return maps, info.factor


def _scored(pair: QCPair, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    if labels.shape != pair.gt.shape:
        raise SegQCError(f"{pair.name}: labels {labels.shape} but ground truth {pair.gt.shape}")
    return run_qc(pair.gt, labels, name=pair.name, threshold=threshold, maps=False).report


def _model_input(loaded, image):
    from ..predict.auto import input_for_model

    return input_for_model(image, loaded.config.model.in_channels)


def _auto_input(get_model: Callable, image):
    """The built-in model ``auto`` picks for ``image``, and the image as it gets it."""
    from ..predict.auto import choose_model, input_for_model

    choice = choose_model(image)
    used = get_model(choice.model)
    return used, input_for_model(image, used.config.model.in_channels, invert=choice.invert)


def evaluate(specs, qc_set, **kwargs) -> Evaluation:
    """:func:`iter_evaluate` run to the end."""
    gen = iter_evaluate(specs, qc_set, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as finished:
            return finished.value


def score_evaluation(
    evaluation: Evaluation, qc_set: Sequence[QCPair], cache: PredictionCache, threshold: float
) -> Evaluation:
    """The same evaluation scored at another IoU threshold from the cached labels (no
    network, no decoding)."""
    gen = iter_evaluate(
        evaluation.specs, qc_set, threshold=threshold, cache=cache, tta=_tta_of(evaluation, cache)
    )
    while True:
        try:
            next(gen)
        except StopIteration as finished:
            result = finished.value
            result.seconds = evaluation.seconds
            return result


def _tta_of(evaluation: Evaluation, cache: PredictionCache) -> bool:
    spec, name = evaluation.specs[0], evaluation.names[0]
    return PredictionCache.key(spec.source, name, True) in cache.labels
