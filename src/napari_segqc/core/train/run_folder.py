"""A training run's folder: its files, how a saved run is read back, and the checks made before
anything is written into it.

Run folder::

    config.json           TrainConfig (model, targets, decoding, everything to rebuild it)
    history.csv           epoch, train_loss, val_loss, val_iou, val_f1, lr, seconds, images_per_s
    best.safetensors      weights with the best validation metric (val_f1; val_iou in binary mode)
    last.safetensors      weights after the last finished step
    init.safetensors      weights before the first step (a fresh run's; kept on resume)
    state.safetensors     optimizer, schedule, early stopping and epoch counters (for --resume)
    epoch_NNN.safetensors every ``checkpoint_every`` epochs
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import replace
from pathlib import Path

from ..errors import SegQCError
from ..io import write_text
from ..models.weights import load_state, save_weights
from .config import TrainConfig

HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_iou",
    "val_f1",
    "lr",
    "seconds",
    "images_per_s",
)


class RunFolder:
    """The run folder's files; every write is atomic."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def save_weights(self, name: str, model, config: TrainConfig, epoch: int) -> None:
        meta = {"config": config.to_dict(), "epoch": epoch}
        save_weights(self.out / name, model.state_dict(), meta)

    def write_history(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.out / "history.csv", buf.getvalue())

    def read_history(self) -> list[dict]:
        path = self.out / "history.csv"
        if not path.is_file():
            return []
        with open(path, newline="") as f:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        for row in rows:
            row["epoch"] = int(row["epoch"])
        return rows


def saved_run(out_dir: str | Path) -> tuple[TrainConfig, int]:
    """The config of the run in ``out_dir`` and how many epochs it has done (for resuming)."""
    out = Path(out_dir)
    path = out / "config.json"
    if not (path.is_file() and (out / "state.safetensors").is_file()):
        raise SegQCError(f"{out} holds no run to resume (config.json and state.safetensors)")
    saved = TrainConfig.from_dict(json.loads(path.read_text()))
    return saved, int(load_state(out / "state.safetensors", tensors=False)["epoch"])


def resumed_config(out: Path, config: TrainConfig) -> TrainConfig:
    saved, done = saved_run(out)
    if config.epochs <= done:
        raise SegQCError(
            f"{out}: {done} epochs are done already; resume with more epochs in all "
            f"(the run planned {saved.epochs})"
        )
    return replace(saved, epochs=config.epochs)


def check_run_folder(out_dir: str | Path, resume: bool) -> None:
    """Refuse, before anything is written, a run folder that cannot take this run: a file, a
    folder that cannot be created, a run there already (without ``resume``), or no run to
    resume."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SegQCError(f"run folder {out} is a file, not a folder")
    if resume:
        saved_run(out)  # raises if there is no run to resume
        return
    if (out / "state.safetensors").exists():
        raise SegQCError(f"{out} already holds a run: resume it, or pick another folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise SegQCError(f"run folder {out} cannot be created here ({parent} is not writable)")
