"""Last step of the built-in model: tune its decoding on the validation split, score, export.

The network pass over the 69 validation images (with the weights rounded to float16, as
shipped) runs once per setting of test-time augmentation (off, and flip TTA); the decoding
settings are then chosen on a small grid by object accuracy at IoU 0.5 - foreground
threshold, seed threshold and split height first, then minimum size and minimum object
probability - on the same validation split that picked the epoch, so the numbers are
validation, not test, scores. The model is exported with float16 weights, the chosen settings
and a model card in its metadata.

    python scripts/finish_builtin_model.py --run RUN2 \
        --out src/napari_segqc/core/models/nuclei.safetensors
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from napari_segqc.core.instances.decoding import decode_labels
from napari_segqc.core.predict.inference import predict_probs_tiled
from napari_segqc.core.predict.loading import export_model, load_model
from napari_segqc.core.qc.matching import match_objects
from napari_segqc.core.train.data import load_training_data, split_samples

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018" / "train"
GRID = {
    "threshold": (0.4, 0.5, 0.6),
    "seed_threshold": (0.2, 0.3, 0.5, 0.7),
    "split_height": (0.0, 0.1, 0.15, 0.2, 0.25, 0.3),
    "min_size": (8, 15, 20, 25),
    "min_object_prob": (0.0, 0.8, 0.85, 0.88, 0.9),  # 2 decimals: what the widget shows
}
FIRST = ("threshold", "seed_threshold", "split_height")  # searched together, then the rest


def accuracy(config, maps, val) -> dict[str, float]:
    """Object accuracy TP/(TP+FP+FN) at IoU 0.5 and 0.7, counts summed over the images."""
    counts = {"0.50": [0, 0, 0], "0.70": [0, 0, 0]}
    for probs, sample in zip(maps, val, strict=True):
        result = match_objects(sample.labels, decode_labels(probs, config), (0.5, 0.7))
        for key, c in counts.items():
            for i, name in enumerate(("tp", "fp", "fn")):
                c[i] += result[key][name]
    scores = {key: round(c[0] / max(sum(c), 1), 4) for key, c in counts.items()}
    return {**scores, "tp_fp_fn_0.50": counts["0.50"]}


def tune(config, maps, val) -> tuple[dict, dict]:
    """Decoding settings with the best accuracy at IoU 0.5, and their scores: thresholds and
    split height on their grid first (the other settings as trained), then minimum size and
    minimum object probability on theirs."""
    best, best_settings = None, None
    for group in (FIRST, tuple(name for name in GRID if name not in FIRST)):
        for values in itertools.product(*(GRID[name] for name in group)):
            settings = {**(best_settings or {}), **dict(zip(group, values, strict=True))}
            score = accuracy(replace(config, **settings), maps, val)
            if best is None or score["0.50"] > best["0.50"]:
                best, best_settings = score, settings
    return best_settings, best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--run",
        required=True,
        type=Path,
        nargs="+",
        help="run folder or weights file; several: their weights are averaged (a 'model soup' "
        "of checkpoints of one run)",
    )
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--card", type=Path, help="JSON file with more model-card fields")
    args = p.parse_args()

    source = args.run[0] if len(args.run) == 1 else average_checkpoints(args.run, args.out)
    loaded = load_model(source, backend="torch")
    with torch.no_grad():  # score the weights as shipped: rounded to float16 like the export
        for value in loaded.model.state_dict().values():
            if value.dtype == torch.float32:
                value.copy_(value.half().float())
    config = loaded.config
    samples = load_training_data(args.data)
    _, val = split_samples(samples, config.val_fraction, config.seed)
    maps, seconds = {}, {}
    for tta in (False, True):
        t0 = time.perf_counter()
        maps[tta] = [predict_probs_tiled(loaded, s.image[0], tta=tta) for s in val]
        seconds[tta] = round(time.perf_counter() - t0, 1)
    trainer = accuracy(config, maps[False], val)
    settings, tuned = tune(config, maps[False], val)
    with_tta = accuracy(replace(config, **settings), maps[True], val)
    card = {
        "data": "DSB 2018 stage1_train fluorescence nuclei (dsb2018/train, 460 images): "
        f"{len(samples) - len(val)} for training, {len(val)} for validation (seed "
        f"{config.seed}, fraction {config.val_fraction})",
        "validation_accuracy_tp_over_tp_fp_fn": {
            "trainer_decoding": {"settings": _decoding(config), **trainer},
            "tuned_decoding": {"settings": settings, **tuned},
            "tuned_decoding_with_flip_tta": with_tta,
        },
        "network_seconds_for_validation": {"tta_off": seconds[False], "tta_on": seconds[True]},
    }
    if args.card:
        card.update(json.loads(args.card.read_text()))
    if len(args.run) > 1:
        card["weights"] = "mean of " + ", ".join(path.name for path in args.run)
    out = export_model(source, args.out, decoding=settings, card=card)
    print(json.dumps(card, indent=2))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def average_checkpoints(paths: list[Path], out: Path) -> Path:
    """Average the weights of checkpoints of one run (same config) into a file beside ``out``."""
    from napari_segqc.core.models.builtin import resolve_model_path
    from napari_segqc.core.models.weights import load_weights, save_weights

    total, meta = None, None
    for path in paths:
        weights, meta_i = load_weights(resolve_model_path(path))
        meta = meta or meta_i
        if total is None:
            total = {k: v.double() if v.is_floating_point() else v for k, v in weights.items()}
        else:
            for k, v in weights.items():
                if v.is_floating_point():
                    total[k] += v.double()
    mean = {k: (v / len(paths)).float() if v.is_floating_point() else v for k, v in total.items()}
    return save_weights(out.with_name(out.stem + "_mean.safetensors"), mean, meta)


def _decoding(config) -> dict:
    return {name: getattr(config, name) for name in GRID}


if __name__ == "__main__":
    main()
