"""Last step of the built-in model: tune its decoding on the validation split, score, export.

The network pass over the 69 validation images runs once per setting of test-time augmentation
(off, and flip TTA); the decoding settings (foreground threshold, seed threshold, minimum size)
are then chosen on a small grid by object accuracy at IoU 0.5 - on the same validation split
that picked the epoch, so the numbers are validation, not test, scores. The model is exported
with float16 weights, the chosen settings and a model card in its metadata.

    python scripts/finish_builtin_model.py --run RUN2 \
        --out src/napari_segqc/models/nuclei.safetensors
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path

from napari_segqc.core.data import load_training_data, split_samples
from napari_segqc.core.matching import match_objects
from napari_segqc.core.predict import decode_labels, export_model, load_model, predict_probs_tiled

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018" / "train"
GRID = {
    "threshold": (0.4, 0.5, 0.6),
    "seed_threshold": (0.3, 0.6, 0.7, 0.8, 0.85, 0.9),
    "min_size": (8, 15, 25),
}


def accuracy(config, maps, val) -> dict[str, float]:
    """Object accuracy TP/(TP+FP+FN) at IoU 0.5 and 0.7, counts summed over the images."""
    counts = {"0.50": [0, 0, 0], "0.70": [0, 0, 0]}
    for probs, sample in zip(maps, val, strict=True):
        result = match_objects(sample.labels, decode_labels(probs, config), (0.5, 0.7))
        for key, c in counts.items():
            for i, name in enumerate(("tp", "fp", "fn")):
                c[i] += result[key][name]
    return {key: round(c[0] / max(sum(c), 1), 4) for key, c in counts.items()}


def tune(config, maps, val) -> tuple[dict, dict]:
    """Decoding settings with the best accuracy at IoU 0.5, and their scores: thresholds on
    their grid first (minimum size as trained), then the minimum size."""
    best, best_settings = None, None
    sizes = (config.min_size,)
    for values in itertools.product(GRID["threshold"], GRID["seed_threshold"], sizes):
        settings = dict(zip(GRID, values, strict=True))
        score = accuracy(replace(config, **settings), maps, val)
        if best is None or score["0.50"] > best["0.50"]:
            best, best_settings = score, settings
    for size in GRID["min_size"]:
        settings = {**best_settings, "min_size": size}
        score = accuracy(replace(config, **settings), maps, val)
        if score["0.50"] > best["0.50"]:
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
    loaded = load_model(source)
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
    tta_settings, tta_tuned = tune(config, maps[True], val)
    card = {
        "data": "DSB 2018 stage1_train fluorescence nuclei (dsb2018/train, 460 images): "
        f"{len(samples) - len(val)} for training, {len(val)} for validation (seed "
        f"{config.seed}, fraction {config.val_fraction})",
        "validation_accuracy_tp_over_tp_fp_fn": {
            "trainer_decoding": {"settings": _decoding(config), **trainer},
            "tuned_decoding": {"settings": settings, **tuned},
            "tuned_decoding_with_flip_tta": with_tta,
            "decoding_tuned_for_tta": {"settings": tta_settings, **tta_tuned},
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
    from napari_segqc.core.checkpoint import load_weights, save_weights
    from napari_segqc.core.predict import resolve_model_path

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
