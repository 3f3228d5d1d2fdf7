"""The documentation of a napari-segqc bioimage.io package: its description, its ``README.md``
(model card: input and output, the decoding that turns the maps into labels, data, training,
validation scores, licence, citations) and the citations of its description
(:mod:`.bioimageio_descr`)."""

from __future__ import annotations

import json
import re
from typing import Any

from ..instances.targets import TARGET_CHANNELS
from ..models.bioimageio_model import HALO, INPUT_ID, MIN_SIZE, OUTPUT_ID, SIZE_STEP
from ..models.registry import ARCHITECTURES

LICENSE = "BSD-3-Clause"  # the code's and the weights'; the DSB 2018 data is CC0-1.0
DATA_URL = "https://bbbc.broadinstitute.org/BBBC038"
UNET = (
    "Ronneberger O, Fischer P, Brox T. U-Net: Convolutional Networks for Biomedical Image "
    "Segmentation. MICCAI 2015, LNCS 9351, 234-241.",
    "10.1007/978-3-319-24574-4_28",
    None,
)
SMP = (
    "Iakubovskii P. Segmentation Models Pytorch (segmentation-models-pytorch).",
    None,
    "https://github.com/qubvel-org/segmentation_models.pytorch",
)
DSB = (
    "Caicedo JC et al. Nucleus segmentation across imaging experiments: the 2018 Data Science "
    "Bowl. Nature Methods 16, 1247-1253 (2019).",
    "10.1038/s41592-019-0612-7",
    None,
)


def is_dsb(card: dict) -> bool:
    """Whether the card says the model was trained on DSB 2018 (BBBC038)."""
    return bool(re.search(r"DSB|BBBC038|Data Science Bowl", str(card.get("data", ""))))


def image_kind(config) -> str:
    """The images a model of ``config`` is for."""
    bright = config.model.in_channels == 3 or config.bright_fraction > 0.5
    return "stained or brightfield" if bright else "fluorescence"


def package_description(config) -> str:
    """The package's one-paragraph description (at most 512 characters)."""
    m = config.model
    return (
        f"{ARCHITECTURES[m.arch]} ({m.encoder} encoder, {m.encoder_depth} stages) for nuclei in "
        f"2-D {image_kind(config)} images ({m.in_channels} channel{'s' * (m.in_channels > 1)}), "
        "trained with napari-segqc. It outputs probability maps ("
        + ", ".join(TARGET_CHANNELS.get(config.target_mode, ("maps",)))
        + "); napari-segqc decodes them into instance labels with a seeded watershed "
        "(settings and scores in the documentation)."
    )


def inline(value: Any) -> str:
    """A card entry as text: strings as they are, mappings as a list, the rest as JSON."""
    if isinstance(value, dict):
        return "\n".join(f"- {k}: {_plain(v)}" for k, v in value.items())
    return _plain(value)


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _scores_table(scores: dict) -> str:
    """Markdown table: accuracy per split and IoU threshold τ from a card's ``scores``."""
    splits = {k: v for k, v in scores.items() if isinstance(v, dict)}
    taus = sorted({t for v in splits.values() for t in v if re.fullmatch(r"0\.\d+", t)}, key=float)
    splits = {k: v for k, v in splits.items() if any(t in v for t in taus)}
    if not splits:
        return "No scores recorded in the model's card."

    def cell(value: Any) -> str:
        value = value.get("accuracy") if isinstance(value, dict) else value
        return f"{value:.3f}" if isinstance(value, int | float) else ""

    rows = [f"| split | images | {' | '.join(f'τ {t}' for t in taus)} |"]
    rows.append("| --- | ---: |" + " ---: |" * len(taus))
    for k, v in splits.items():
        rows.append(f"| {k} | {v.get('images', '')} | {' | '.join(cell(v.get(t)) for t in taus)} |")
    return "\n".join(
        [*rows, "", *(f"- {k}: {v['note']}" for k, v in splits.items() if "note" in v)]
    )


def card_markdown(name: str, config, card: dict, objects: int) -> str:
    """The package's ``README.md``: what goes in and out, the decoding, data, training,
    validation scores, licence and citations, and the whole card as stored; ``objects``: how
    many napari-segqc finds in the cover's image."""
    c = config
    keys = ["threshold", "min_size", "min_object_prob"]
    keys += ["seed_threshold", "split_height"] if c.target_mode == "instance" else []
    settings = "\n".join(f"| {k} | {getattr(c, k)} |" for k in keys)
    if c.target_mode == "instance":
        decoding = (
            f"A seeded watershed: pixels with foreground > {c.threshold} are objects; seeds are "
            f"the h-maxima (height {c.split_height}) of the core score distance × (1 − boundary), "
            f"smoothed with σ 1, above {c.seed_threshold}; they grow over the foreground by a "
            "watershed on boundary − distance (foreground blobs without a seed are objects of "
            "their own)"
        )
    else:
        decoding = f"Connected components of foreground > {c.threshold}"
    scores = card.get("scores") if isinstance(card.get("scores"), dict) else {}
    dsb = is_dsb(card)
    cites = [f"- {UNET[0]} doi:{UNET[1]}", f"- {SMP[0]} {SMP[2]}"]
    cites += [f"- {DSB[0]} doi:{DSB[1]}"] if dsb else []
    size = f" (objects of about {c.diameter:.0f} pixels across)" if c.diameter else ""
    splits = f"\n\nSplits:\n\n{inline(card['splits'])}" if card.get("splits") else ""
    splits += f"\n\nSource: BBBC038v1, {DATA_URL} (CC0-1.0)." if dsb else ""
    return f"""# {name}

{package_description(c)}

## Input and output

- **Input** `{INPUT_ID}` (batch, channel, y, x): {c.model.in_channels} channel(s), {image_kind(c)},
  y and x of {MIN_SIZE} + n × {SIZE_STEP} pixels{size}. Preprocessing `scale_range`: per image
  and channel, (x − p1) / (p99.8 − p1) with the 1 % and 99.8 % percentiles, no clipping
  (napari-segqc's normalisation).
- **Output** `{OUTPUT_ID}` (batch, channel, y, x): probability maps after a `sigmoid`:
  {", ".join(TARGET_CHANNELS.get(c.target_mode, ())) or c.model.classes}. Predicting in tiles,
  crop {HALO} pixels (the halo) at tile borders.
- The cover: the test image, and its {objects} objects as napari-segqc finds them.

## From maps to instance labels

The package outputs maps; napari-segqc (`segqc predict --model PACKAGE`, or the *Segment*
widget in napari) decodes them into labels. {decoding}; objects under {c.min_size} pixels or
of mean foreground probability under {c.min_object_prob} are dropped.

| setting | value |
| --- | ---: |
{settings}

## Training data

{inline(card.get("data", "Not recorded in the model's card."))}{splits}

## Training

{inline(card.get("training", "Not recorded in the model's card."))}

Final settings: {c.loss} loss, {c.optimizer} (lr {c.lr}, {c.schedule.name} schedule),
batch {c.batch} × {c.patch}² patches.

## Validation

Scores: {scores.get("metric", "object accuracy TP / (TP + FP + FN) at IoU τ")}.

{_scores_table(scores)}

## License and citations

Code and weights: {LICENSE} (napari-segqc).{" Training data: BBBC038v1, CC0-1.0." * dsb}

{chr(10).join(cites)}

## Model card as stored (`config.segqc.card`)

```json
{json.dumps(card, indent=1, ensure_ascii=False)}
```
"""
