"""Training throughput inside the napari widget (thread worker) vs the command-line path.

Both run the same :func:`napari_segqc.core.train.iter_train` with the same settings (U-Net
resnet34, patch 256, batch 8, no validation so only training is timed): once driven from the
main thread as ``segqc train`` does, once by the "Train U-Net" widget in a napari viewer, where
it runs in a ``napari.qt.threading`` worker while the Qt event loop keeps running. Throughput is
the ``images_per_s`` column of ``history.csv`` (epochs after the first, which includes warm-up)::

    xvfb-run -a python benchmarks/bench_widget_vs_cli.py [--steps 15] [--epochs 3]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "dsb2018" / "train"


def throughput(run: Path) -> float:
    with open(run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))[1:]
    return sum(float(r["images_per_s"]) for r in rows) / len(rows)


def run_cli(samples, config, out: Path) -> float:
    from napari_segqc.core.train.loop import iter_train

    for _ in iter_train(config, samples, out):
        pass
    return throughput(out)


def run_widget(folder: Path, config, out: Path) -> float:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_segqc._widgets.train_widget import TrainWidget

    viewer = napari.Viewer(show=False)
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.source.value = "Folder"
    widget.folder.value = folder
    widget.encoder.value = config.model.encoder
    widget.epochs.value = config.epochs
    widget.patch.value, widget.batch.value = config.patch, config.batch
    widget.advanced.val_fraction.value = 0.0
    widget.out_dir.value = out
    widget.config = lambda: config  # the very same settings as the CLI run
    widget.start()
    while not widget.start_button.enabled:
        QApplication.processEvents()
        time.sleep(0.01)
    viewer.close()
    return throughput(out)


def main() -> None:
    from napari_segqc.core.models.registry import ModelConfig
    from napari_segqc.core.train.config import TrainConfig
    from napari_segqc.core.train.data import load_training_data

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    folder = DATA if DATA.is_dir() else ROOT / "sample_data"
    config = TrainConfig(
        model=ModelConfig(encoder="resnet34"),
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        val_fraction=0.0,
        patience=0,
    )
    samples = load_training_data(folder)
    tmp = Path(tempfile.mkdtemp())
    widget = run_widget(folder, config, tmp / "widget")
    cli = run_cli(samples, config, tmp / "cli")
    print(f"data {folder}; {args.epochs} epochs x {args.steps} steps, batch {config.batch}")
    print("\n| path | patches/s | relative |\n| --- | ---: | ---: |")
    print(f"| CLI (main thread) | {cli:.2f} | 100 % |")
    print(
        f"| Train U-Net widget (napari thread worker) | {widget:.2f} | {100 * widget / cli:.0f} % |"
    )


if __name__ == "__main__":
    main()
