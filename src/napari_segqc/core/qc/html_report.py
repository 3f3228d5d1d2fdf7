"""The Model QC report: one self-contained HTML file (tables, figures and thumbnails embedded as
PNG data, no external reference), which opens offline in any browser."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..models.builtin import BUILTIN_MODELS
from ..predict.auto import AUTO
from ..predict.loading import read_config
from .compare import compare_models, disagreements, ranked_images
from .evaluate import (
    EVALUATION_COLUMNS,
    SUMMARY_COLUMNS,
    Evaluation,
    PredictionCache,
    QCPair,
    row_key,
)
from .pixel import ERROR_COLORS, error_map

STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #ccc;
padding:2px 6px;text-align:right}th{background:#eee}td:first-child{text-align:left}
.best{background:#e6f6e6}figure{display:inline-block;margin:4px;font-size:11px}
pre{background:#f6f6f6;padding:6px;font-size:11px;overflow:auto}"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(data_uri: str, caption: str = "", width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri}"{size} alt="{html.escape(caption)}">{cap}</figure>'


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if np.isfinite(v) else ""
    return html.escape(str(v))


def _table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cls = ' class="best"' if r.get("best") == 1 else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _figure():
    from matplotlib.figure import Figure

    return Figure(figsize=(6, 3.6))


def checkpoint_figure(summary: Sequence[dict], history: Sequence[dict] | None):
    """Accuracy, F1 and DSB score of each ``epoch_NNN`` checkpoint against the epoch, beside
    the run's validation curves (``history.csv``: val_f1, val_iou; epochs 1-based)."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    points = sorted(
        (r for r in summary if r["checkpoint"].startswith("epoch_") and r["epoch"] is not None),
        key=lambda r: r["epoch"],
    )
    if points:
        epochs = [r["epoch"] for r in points]
        for key, style in (("accuracy", "o-"), ("f1", "s-"), ("dsb_score", "^-")):
            ax.plot(epochs, [r[key] for r in points], style, label=f"QC {key}")
    for key, style in (("val_f1", "--"), ("val_iou", ":")):
        if history and key in history[0]:
            ax.plot([h["epoch"] + 1 for h in history], [h[key] for h in history], style, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("score")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def scatter_figure(comparison):
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(comparison.accuracy_b, comparison.accuracy_a, s=12)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.set_xlabel(f"accuracy {comparison.b}")
    ax.set_ylabel(f"accuracy {comparison.a}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    return fig


def bars_figure(evaluation: Evaluation):
    """Accuracy per image, one bar per model."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    labels = list(dict.fromkeys(row_key(r) for r in evaluation.rows))
    width = 0.8 / max(len(labels), 1)
    x = np.arange(len(evaluation.names))
    for i, label in enumerate(labels):
        acc = [r["accuracy"] for r in evaluation.rows if row_key(r) == label]
        ax.bar(x + i * width, acc, width, label=label)
    ax.set_xticks(x + width * (len(labels) - 1) / 2)
    ax.set_xticklabels(evaluation.names, rotation=90, fontsize=6)
    ax.set_ylabel(f"accuracy at IoU {evaluation.threshold:.2f}")
    ax.legend(fontsize=7)
    return fig


def error_overlay(image, gt: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """RGB float image: the image (grey, or colour as it is) with the error map over it."""
    from matplotlib.colors import to_rgba

    data = np.asarray(image, np.float32)
    lo, hi = np.percentile(data, [1, 99.8])
    data = np.clip((data - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = data[..., :3].copy() if data.ndim == 3 else np.repeat(data[..., None], 3, -1)
    errors = error_map(gt, labels, threshold=threshold)
    for value, color in ERROR_COLORS.items():
        if value:
            rgb[errors == value] = 0.35 * rgb[errors == value] + 0.65 * np.array(to_rgba(color)[:3])
    return rgb


def thumbnail(image: np.ndarray, gt: np.ndarray, labels: np.ndarray, threshold: float) -> str:
    """The image with the error map over it, as a small PNG data URI."""
    rgb = error_overlay(image, gt, labels, threshold)
    fig = _figure()
    fig.set_size_inches(2.4, 2.4 * rgb.shape[0] / rgb.shape[1])
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(rgb, interpolation="nearest")
    ax.axis("off")
    return _png(fig)


def report_labels(
    evaluation: Evaluation, cache: PredictionCache
) -> dict[tuple[str, str], np.ndarray]:
    """The labels :func:`render_report` draws: (model key, image name) -> the cached labels of
    that evaluation (with or without TTA, as it ran); pairs not in the cache are left out."""
    out = {}
    for spec in evaluation.specs:
        for name in evaluation.names:
            key = PredictionCache.key(spec.source, name, evaluation.tta)
            if key in cache.labels:
                out[spec.key, name] = cache.labels[key]
    return out


def render_report(
    evaluation: Evaluation,
    qc_set: Sequence[QCPair],
    labels: dict[tuple[str, str], np.ndarray],
    *,
    metric: str = "accuracy",
    title: str = "SegQC model QC",
    qc_set_name: str = "",
    history: Sequence[dict] | None = None,
    top: int = 3,
) -> str:
    """The report as HTML text. ``labels`` maps (:attr:`.evaluate.ModelSpec.key`, image name)
    to the labels of the best/worst thumbnails (from the evaluation's cache)."""
    summary = evaluation.summary_rows(metric)
    pairs = {p.name: p for p in qc_set}
    t = evaluation.threshold
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(qc_set)} images ({html.escape(qc_set_name)}), IoU threshold τ = {t:.2f}, "
        f"best by {html.escape(metric)}; {stamp}. Counts are summed over images before ratios "
        "are taken.</p>",
        "<h2>Summary</h2>",
        _table(summary, SUMMARY_COLUMNS),
    ]
    if any(r["checkpoint"].startswith("epoch_") for r in summary):
        parts += ["<h2>Checkpoints</h2>", _img(_png(checkpoint_figure(summary, history)))]
    models = [s.key for s in evaluation.specs]
    if len(models) >= 2 and not any(s.checkpoint for s in evaluation.specs):
        parts.append("<h2>Comparison</h2>")
        for b in models[1:]:
            comp = compare_models(evaluation, models[0], b)
            parts += [
                _img(_png(scatter_figure(comp)), f"{comp.a} vs {comp.b}, one point per image"),
                f"<pre>{html.escape(json.dumps(comp.to_dict(), indent=1))}</pre>",
                "<h3>Where they disagree most</h3>",
                _table(disagreements(comp), ["image", comp.a, comp.b, "difference"]),
            ]
    parts += ["<h2>Accuracy per image</h2>", _img(_png(bars_figure(evaluation)))]
    parts.append("<h2>Best and worst images</h2>")
    for spec in evaluation.specs:
        if spec.checkpoint and spec.checkpoint.startswith("epoch_"):
            continue  # checkpoints: only best/last get thumbnails
        ranked = ranked_images(evaluation, spec.key, top)
        figs = []
        for kind in ("best", "worst"):
            for r in ranked[kind]:
                key = (spec.key, r["image"])
                if key in labels:
                    p = pairs[r["image"]]
                    uri = thumbnail(p.image, p.gt, labels[key], t)
                    figs.append(_img(uri, f"{kind}: {r['image']} acc {r['accuracy']:.3f}", 220))
        parts.append(f"<h3>{html.escape(spec.label)} {html.escape(spec.checkpoint)}</h3>")
        parts.append("".join(figs))
    parts.append("<h2>Models: settings and cards</h2>")
    for spec, config in zip(evaluation.specs, evaluation.configs, strict=True):
        if spec.source == AUTO:  # each image went to one of the built-in models
            info = {
                "source": AUTO,
                "models": {name: _settings(name, read_config(name)) for name in BUILTIN_MODELS},
            }
        else:
            info = _settings(spec.source, config)
        parts.append(f"<h3>{html.escape(spec.label)} {html.escape(spec.checkpoint)}</h3>")
        parts.append(f"<pre>{html.escape(json.dumps(info, indent=1, default=str))}</pre>")
    parts += ["<h2>All images</h2>", _table(evaluation.rows, EVALUATION_COLUMNS)]
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def _settings(source: str, config) -> dict:
    """A model's source, network, decoding settings and card (the card stored in the model
    file's metadata; empty if it has none)."""
    from ..models.formats import read_model_meta

    decoding = {
        k: getattr(config, k)
        for k in ("threshold", "seed_threshold", "split_height", "min_size", "min_object_prob")
    }
    return {
        "source": source,
        "model": config.model.to_dict(),
        "decoding": decoding,
        "card": read_model_meta(source)[1].get("card") or {},
    }
