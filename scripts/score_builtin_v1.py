"""Add the version-2 card fields to the version-1 ``nuclei`` model: scores at IoU 0.5-0.9 on
its own validation split (seed 0, 15 %, which chose its checkpoint and decoding) and on
``splits/dsb2018_test.txt`` - which version 1 was mostly TRAINED on (the fixed splits came
after it), so that number is not a test score; the card says so.

    python scripts/score_builtin_v1.py
    python scripts/score_builtin_v1.py --figure docs/images/nuclei_v1_worst_validation.png

``--figure PNG`` draws the four validation images of lowest accuracy with their error maps
(version 1 has no honest test split to draw them from) and leaves the model file as it is.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from finish_builtin_v2 import scores, split_folder

from napari_segqc.core.models.builtin import BUILTIN_MODELS
from napari_segqc.core.models.weights import load_weights, save_weights
from napari_segqc.core.train.config import TrainConfig
from napari_segqc.core.train.data import load_training_data, split_samples

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018" / "train"
SETTINGS = ("threshold", "min_size", "seed_threshold", "split_height", "min_object_prob")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--figure", type=Path, help="draw the worst validation images; no card")
    args = p.parse_args(argv)
    path = BUILTIN_MODELS["nuclei"]
    weights, meta = load_weights(path)
    config = TrainConfig.from_dict(meta["config"])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _, val = split_samples(load_training_data(DATA), config.val_fraction, config.seed)
        (tmp / "v1val" / "images").mkdir(parents=True)
        (tmp / "v1val" / "masks").mkdir(parents=True)
        for s in val:
            for kind in ("images", "masks"):
                (tmp / "v1val" / kind / f"{s.name}.tif").symlink_to(DATA / kind / f"{s.name}.tif")
        own = scores("nuclei", tmp / "v1val" / "images", tmp / "v1val" / "masks", args.figure)
        if args.figure:
            print("validation", own["images"], own["0.5"]["accuracy"], own["0.7"]["accuracy"])
            for row in own["worst"]:
                print(row)
            return 0
        test = scores("nuclei", *split_folder("dsb2018", "test", tmp))
    card = dict(meta.get("card") or {})
    test["note"] = (
        "NOT a test score: version 1 was trained before the fixed splits existed, on 391 "
        "images that include most of these"
    )
    card["scores"] = {"validation": own, "test_split_seen_in_training": test, "test": test}
    card["splits"] = {
        "validation": "seed-0 15 % split of dsb2018/train (69 images)",
        "test": "splits/dsb2018_test.txt (seen in training by this version)",
    }
    card["tuned_decoding"] = {"settings": {k: getattr(config, k) for k in SETTINGS}}
    save_weights(path, weights, {**meta, "card": card})
    for name, s in (("validation", own), ("test split (seen)", test)):
        print(name, s["images"], [s[f"{t:.1f}"]["accuracy"] for t in (0.5, 0.6, 0.7, 0.8, 0.9)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
