"""The "Train U-Net" dock widget: pick training pairs or a folder, settings, Start/Stop, curves.

The work is :func:`napari_segqc.core.train.loop.iter_train`, run in the dock's worker
(:class:`.base.DockWidget`); the widget only gathers inputs, shows progress and live curves, and
remembers the best model it produced. Stop is cooperative: training ends after the current step
and saves last.safetensors. The output folder is the user's: never changed behind their back; a
folder that already holds a run is refused at Start (unless resuming), with a free name proposed.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    RadioButtons,
    SpinBox,
)
from napari.layers import Image, Labels
from qtpy.QtWidgets import QAbstractItemView, QListWidget
from superqt import QCollapsible

from ..core.device import PRECISIONS
from ..core.errors import SegQCError
from ..core.models.registry import ARCHITECTURES, SUGGESTED_ENCODERS, ModelConfig
from ..core.train.augment import DEFAULT_ZOOM, AugmentConfig, with_zoom
from ..core.train.config import TrainConfig
from ..core.train.loop import EpochReport, StepReport, iter_train
from ..core.train.losses import LOSSES
from ..core.train.optim import OPTIMIZERS, SCHEDULES, ScheduleConfig
from .base import DockWidget, wrapping
from .curves import TrainingCurves
from .lr_find_row import LRFindRow
from .session import TRAINED_MODELS

NO_PAIRS = "no pairs yet: pick an image and its labels, Add pair"
#: Rows the pairs list shows before it scrolls.
PAIR_ROWS = 5


def _new_run_dir() -> Path:
    return Path.home() / "segqc_runs" / time.strftime("run_%Y%m%d_%H%M%S")


def _free_name(out: Path) -> Path:
    """``out`` itself if it holds no run, else the first free ``<name>_2``, ``<name>_3``..."""
    n = 2
    candidate = out
    while (candidate / "state.safetensors").exists() or candidate.is_file():
        candidate = out.with_name(f"{out.name}_{n}")
        n += 1
    return candidate


def _train_job(load, config: TrainConfig, out: Path, resume: bool, stop):
    """Worker body: load the samples (off the GUI thread), then train."""
    samples = load()
    return (yield from iter_train(config, samples, out, resume=resume, stop=stop))


class TrainWidget(DockWidget):
    """Train a U-Net from (image, labels) layer pairs or a folder, with live curves."""

    task = "training"
    busy_text = "loading data..."

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer, run_text="Start")
        self.start_button = self.run_button
        self._stop = threading.Event()
        self._pairs: list[tuple[Image, Labels]] = []
        self.history: list[dict[str, Any]] = []
        self.last_model: Path | None = None
        self._planned_epochs = 0

        self.source = RadioButtons(
            label="Training data",
            choices=["Layers", "Folder"],
            value="Layers",
            orientation="horizontal",
        )
        self.image_combo = self.layer_picker("Image", Image, exact=True)
        self.labels_combo = self.layer_picker("Labels", Labels, exact=True)
        self.add_pair_button = PushButton(text="Add pair")
        self.remove_pair_button = PushButton(text="Remove", enabled=False)
        self.clear_pairs_button = PushButton(text="Clear pairs")
        self.pairs_label = wrapping(Label(value=NO_PAIRS))
        self.pairs_list = QListWidget()
        self.pairs_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.pairs_list.setToolTip("Training pairs: image + labels (select one to remove it)")
        self.pairs_list.setVisible(False)
        self.pairs_list.setSpacing(2)  # rows readable, not packed
        self.folder = FileEdit(
            label="Folder",
            mode="d",
            visible=False,
            tooltip="images/ + masks/ (paired by name) or DSB 2018 layout",
        )
        self.arch = ComboBox(label="Architecture", choices=list(ARCHITECTURES), value="unet")
        self.encoder = ComboBox(label="Encoder", choices=list(SUGGESTED_ENCODERS), value="resnet34")
        self.target_mode = ComboBox(
            label="Targets",
            choices=["instance", "binary"],
            tooltip="instance: foreground + boundary + distance, split "
            "by watershed; binary: foreground only",
        )
        self.epochs = SpinBox(label="Epochs", value=50, min=1, max=10_000)
        self.patch = SpinBox(label="Patch size", value=256, min=32, max=2048, step=32)
        self.batch = SpinBox(label="Batch size", value=8, min=1, max=512)
        self.lr = FloatSpinBox(label="Learning rate", value=1e-3, min=1e-6, max=1.0, step=1e-4)
        self.lr.native.setDecimals(7)  # the step's 4 decimals would round 3e-5 to 0
        self.lr_finder = LRFindRow(self)
        self.out_dir = FileEdit(
            label="Output folder",
            mode="d",
            value=_new_run_dir(),
            tooltip="The run's folder (created if needed). A folder that holds a run already "
            "is only used to resume it.",
        )
        self.resume = CheckBox(text="Resume the run in the output folder", value=False)
        advanced = [
            ComboBox(name="loss", label="Loss", choices=sorted(LOSSES), value="bce_dice"),
            ComboBox(name="optimizer", label="Optimizer", choices=list(OPTIMIZERS), value="adam"),
            ComboBox(name="schedule", label="LR schedule", choices=list(SCHEDULES), value="cosine"),
            SpinBox(name="patience", label="Early stop patience", value=10, min=0, max=1000),
            FloatSpinBox(
                name="val_fraction",
                label="Validation fraction",
                value=0.15,
                min=0.0,
                max=0.9,
                step=0.05,
            ),
            ComboBox(name="device", label="Device", choices=["auto", "cpu", "cuda", "mps"]),
            ComboBox(name="precision", label="Precision", choices=list(PRECISIONS)),
            SpinBox(name="seed", label="Seed", value=0, min=0, max=2**31 - 1),
            CheckBox(
                name="zoom",
                text=f"Scale augmentation (zoom {DEFAULT_ZOOM[0]}-{DEFAULT_ZOOM[1]}x)",
                value=True,
                tooltip="Patches zoomed in or out at random (with a random rotation), so the "
                "model also segments objects somewhat smaller or larger than in its images",
            ),
        ]
        self.advanced = Container(widgets=advanced, labels=True)
        self.curves = TrainingCurves(getattr(napari_viewer, "theme", "dark"))

        pair_buttons = Container(
            widgets=[self.add_pair_button, self.remove_pair_button, self.clear_pairs_button],
            layout="horizontal",
            labels=False,
        )
        pair_buttons.margins = (0, 0, 0, 0)
        self.pairs_box = Container(widgets=[self.pairs_label], labels=False)
        self.pairs_box.margins = (0, 0, 0, 0)
        self.pairs_box.native.layout().addWidget(self.pairs_list)
        form = Container(
            widgets=[
                self.source,
                self.image_combo,
                self.labels_combo,
                pair_buttons,
                self.pairs_box,
                self.folder,
                self.arch,
                self.encoder,
                self.target_mode,
                self.epochs,
                self.patch,
                self.batch,
                self.lr,
                self.lr_finder,
                self.out_dir,
                self.resume,
            ],
            labels=True,
        )
        collapsible = QCollapsible("Advanced settings")
        collapsible.addWidget(self.advanced.native)
        self.add(form, self.lr_finder.plot, collapsible, self.run_panel, self.curves)
        self.source.changed.connect(self._on_source)
        self.add_pair_button.changed.connect(self.add_pair)
        self.remove_pair_button.changed.connect(self.remove_pair)
        self.clear_pairs_button.changed.connect(self.clear_pairs)
        self.pairs_list.currentRowChanged.connect(
            lambda row: setattr(self.remove_pair_button, "enabled", row >= 0)
        )
        self.resume.changed.connect(self._on_resume)
        self.out_dir.changed.connect(lambda _v: self._on_resume(self.resume.value))

    def _on_resume(self, resume: bool) -> None:
        """Resuming: show the run's planned epochs (more continue it, fewer shorten it)."""
        from ..core.train.run_folder import saved_run

        if not resume:
            return
        try:
            saved, done = saved_run(self.out_dir.value)
        except SegQCError:
            return  # no run there (yet): Start says so
        self.epochs.value = saved.epochs
        self.set_status(f"resume: {done} of {saved.epochs} epochs done")

    def _on_source(self, value: str) -> None:
        layers = value == "Layers"
        for w in (
            self.image_combo,
            self.labels_combo,
            self.add_pair_button,
            self.remove_pair_button,
            self.clear_pairs_button,
            self.pairs_box,
        ):
            w.visible = layers
        self.folder.visible = not layers

    # --- data ---------------------------------------------------------------------------------
    def add_pair(self) -> None:
        image, labels = self.image_combo.value, self.labels_combo.value
        if image is None or labels is None:
            self.show_error("pick an Image layer and a Labels layer to add as a training pair")
            return
        rgb_shape = image.data.shape[:-1] if image.rgb else image.data.shape
        if tuple(rgb_shape) != tuple(labels.data.shape):
            self.show_error(
                f"{image.name!r} has shape {tuple(image.data.shape)} but {labels.name!r} "
                f"has shape {tuple(labels.data.shape)}: a pair needs the same size"
            )
            return
        if (image, labels) not in self._pairs:
            self._pairs.append((image, labels))
        self._show_pairs()
        self.pairs_list.setCurrentRow(self._pairs.index((image, labels)))

    def remove_pair(self, _value=None) -> None:
        """Remove the pair selected in the list."""
        row = self.pairs_list.currentRow()
        if 0 <= row < len(self._pairs):
            del self._pairs[row]
            self._show_pairs()
            self.pairs_list.setCurrentRow(min(row, len(self._pairs) - 1))

    def clear_pairs(self) -> None:
        self._pairs = []
        self._show_pairs()

    def on_layers_changed(self, event) -> None:
        """Pairs follow their layers: renamed, they show the new names; removed, they go."""
        layers = list(self.viewer.layers)
        kept = [(i, m) for i, m in self._pairs if i in layers and m in layers]
        if kept != self._pairs or getattr(event, "type", None) == "name":
            self._pairs = kept
            self._show_pairs()

    def _show_pairs(self) -> None:
        """The pairs list shows every pair; the label above it how many."""
        row = self.pairs_list.currentRow()
        self.pairs_list.clear()
        self.pairs_list.addItems([f"{i.name} + {m.name}" for i, m in self._pairs])
        n = len(self._pairs)
        self.pairs_label.value = f"{n} pair{'s' if n != 1 else ''}:" if n else NO_PAIRS
        self.pairs_list.setVisible(n > 0)
        rows = max(1, min(n, PAIR_ROWS))
        frame = 2 * self.pairs_list.frameWidth()
        row_height = self.pairs_list.sizeHintForRow(0) + 2 * self.pairs_list.spacing()
        self.pairs_list.setFixedHeight(rows * row_height + frame + 2)
        self.pairs_list.setCurrentRow(min(row, n - 1))
        self.remove_pair_button.enabled = self.pairs_list.currentRow() >= 0

    def _loader(self):
        """A function that builds the samples (run in the worker); data read here."""
        from ..core.train.data import load_training_data, samples_from_arrays

        if self.source.value == "Folder":
            folder = Path(self.folder.value)
            if not folder.is_dir():
                raise SegQCError(f"training folder {folder} does not exist")
            return lambda: load_training_data(folder)
        if not self._pairs:
            raise SegQCError("add at least one (image, labels) training pair first")
        arrays = [(np.asarray(i.data), np.asarray(m.data), i.rgb, i.name) for i, m in self._pairs]

        def load():
            out = []
            for image, labels, rgb, name in arrays:
                out.extend(samples_from_arrays(image, labels, rgb=rgb, name=name))
            return out

        return load

    def config(self) -> TrainConfig:
        """The settings shown, as a :class:`TrainConfig`."""
        a = {w.name: w.value for w in self.advanced}
        return TrainConfig(
            model=ModelConfig(arch=self.arch.value, encoder=self.encoder.value),
            target_mode=self.target_mode.value,
            loss=a["loss"],
            optimizer=a["optimizer"],
            lr=float(self.lr.value),
            schedule=ScheduleConfig(name=a["schedule"]),
            epochs=int(self.epochs.value),
            patch=int(self.patch.value),
            batch=int(self.batch.value),
            val_fraction=float(a["val_fraction"]),
            seed=int(a["seed"]),
            device=a["device"],
            precision=a["precision"],
            patience=int(a["patience"]),
            augment=with_zoom(AugmentConfig(), DEFAULT_ZOOM if a["zoom"] else (1.0, 1.0)),
        )

    # --- run ----------------------------------------------------------------------------------
    def prepare(self):
        from ..core.train.config import check_training
        from ..core.train.run_folder import check_run_folder

        load = self._loader()
        config = self.config()
        check_training(config)
        out, resume = Path(self.out_dir.value), bool(self.resume.value)
        if not resume and (out / "state.safetensors").exists():
            raise SegQCError(
                f'{out} already holds a run: tick "{self.resume.text}" to continue it, or '
                f"pick another output folder (e.g. {_free_name(out)})"
            )
        check_run_folder(out, resume)
        self._stop.clear()
        self.history = []
        self._planned_epochs = config.epochs
        self.curves.clear()
        return partial(_train_job, load, config, out, resume, self._stop.is_set)

    def start(self) -> None:
        self.run()

    def stop(self) -> None:
        """Ask training to stop after the current step (it saves last.safetensors)."""
        if self.running:
            self._stop.set()
            self.set_status("stopping after the current step...")

    def on_yielded(self, report) -> None:
        if isinstance(report, StepReport):
            self.set_progress(report.step, report.steps)
            self.set_status(
                f"epoch {report.epoch + 1}: step {report.step}/{report.steps}, "
                f"loss {report.loss:.4f}"
            )
        elif isinstance(report, EpochReport):
            self._planned_epochs = report.epochs
            self.history.append(
                {
                    k: getattr(report, k)
                    for k in ("epoch", "train_loss", "val_loss", "val_iou", "val_f1", "lr")
                }
            )
            self.curves.show_history(self.history)
            self.set_status(
                f"epoch {report.epoch + 1}/{report.epochs}: val F1 {report.val_f1:.3f}, "
                f"IoU {report.val_iou:.3f}, {report.images_per_s:.1f} patches/s"
            )

    def on_returned(self, best: Path) -> None:
        self.last_model = Path(best)
        TRAINED_MODELS.append(self.last_model)
        done, planned = (self.history[-1]["epoch"] + 1 if self.history else 0), self._planned_epochs
        if self._stop.is_set():
            what = f"stopped at epoch {done} of {planned}"
        elif done < planned:
            what = f"stopped early at epoch {done} of {planned} (no better validation score)"
        else:
            what = f"finished ({planned} epochs)"
        self.show_info(
            f"SegQC: training {what}; best model {self.last_model}",
            status=f"{what}: best model {self.last_model}",
        )
