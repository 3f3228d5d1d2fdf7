"""Write the fixed train / validation / test file lists of ../shared/data into splits/.

The test lists choose nothing: no checkpoint, no decoding setting and no design decision is
made on them; they are only scored once a model is finished (see the model cards). The split is
stratified by image kind (fluorescence: image size, a proxy for the imaging set-up; other:
modality) and seeded, so this script writes the same lists every time.

    python scripts/make_splits.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
#: dataset -> (test fraction, validation fraction of the whole, the column that stratifies)
PLAN = {"dsb2018": (0.15, 0.12, "size"), "dsb2018_other": (0.16, 0.12, "modality")}
SEED = 2026


def split_ids(rows: list[dict], test: float, val: float, key: str, seed: int) -> dict:
    groups: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        groups[f"{r['height']}x{r['width']}" if key == "size" else r[key]].append(r["id"])
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for name in sorted(groups):
        ids = sorted(groups[name])
        ids = [ids[i] for i in rng.permutation(len(ids))]
        n_test = round(len(ids) * test) if len(ids) >= 3 else 0
        n_val = round(len(ids) * val) if len(ids) >= 3 else 0
        out["test"] += ids[:n_test]
        out["val"] += ids[n_test : n_test + n_val]
        out["train"] += ids[n_test + n_val :]
    return {k: sorted(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "splits")
    args = p.parse_args(argv)
    args.out.mkdir(exist_ok=True)
    for dataset, (test, val, key) in PLAN.items():
        with open(args.data / dataset / "metadata.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        parts = split_ids(rows, test, val, key, SEED)
        for part, ids in parts.items():
            (args.out / f"{dataset}_{part}.txt").write_text("\n".join(ids) + "\n")
        print(dataset, {k: len(v) for k, v in parts.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
