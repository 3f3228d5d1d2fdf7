"""The "Train U-Net" dock widget: pick training pairs or a folder, settings, Start/Stop, curves.

The work is :func:`napari_segqc.core.train.iter_train`, run in a worker thread; the widget only
gathers inputs, shows progress and live curves, and remembers the best model it produced.
"""

from __future__ import annotations

import threading
import time
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
    ProgressBar,
    PushButton,
    RadioButtons,
    SpinBox,
)
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from superqt import QCollapsible

from ..core.device import PRECISIONS
from ..core.errors import SegQCError
from ..core.models.registry import ARCHITECTURES, SUGGESTED_ENCODERS, ModelConfig
from ..core.train.config import TrainConfig
from ..core.train.loop import EpochReport, StepReport, iter_train
from ..core.train.losses import LOSSES
from ..core.train.optim import OPTIMIZERS, SCHEDULES, ScheduleConfig
from .curves import TrainingCurves

#: Best models trained in this session, newest last (the Segment widget offers them).
TRAINED_MODELS: list[Path] = []


def _new_run_dir() -> Path:
    return Path.home() / "segqc_runs" / time.strftime("run_%Y%m%d_%H%M%S")


def _train_job(load, config: TrainConfig, out: Path, resume: bool, stop):
    """Worker body: load the samples (off the GUI thread), then train."""
    samples = load()
    return (yield from iter_train(config, samples, out, resume=resume, stop=stop))


class TrainWidget(Container):
    """Train a U-Net from (image, labels) layer pairs or a folder, with live curves."""

    def __init__(self, napari_viewer) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self._worker = None
        self._stop = threading.Event()
        self._pairs: list[tuple[Image, Labels]] = []
        self.history: list[dict[str, Any]] = []
        self.last_model: Path | None = None

        self.source = RadioButtons(
            label="Training data",
            choices=["Layers", "Folder"],
            value="Layers",
            orientation="horizontal",
        )
        self.image_combo = ComboBox(label="Image", choices=self._choices(Image))
        self.labels_combo = ComboBox(label="Labels", choices=self._choices(Labels))
        self.add_pair_button = PushButton(text="Add pair")
        self.clear_pairs_button = PushButton(text="Clear pairs")
        self.pairs_label = Label(value="no pairs yet: pick an image and its labels, Add pair")
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
        self.out_dir = FileEdit(label="Output folder", mode="d", value=_new_run_dir())
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
        ]
        self.advanced = Container(widgets=advanced, labels=True)
        self.start_button = PushButton(text="Start")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.progress = ProgressBar(label="Progress", value=0, max=1)
        self.status = Label(value="")
        self.curves = TrainingCurves(getattr(napari_viewer, "theme", "dark"))

        pair_buttons = Container(
            widgets=[self.add_pair_button, self.clear_pairs_button],
            layout="horizontal",
            labels=False,
        )
        run_buttons = Container(
            widgets=[self.start_button, self.stop_button], layout="horizontal", labels=False
        )
        self.extend(
            [
                self.source,
                self.image_combo,
                self.labels_combo,
                pair_buttons,
                self.pairs_label,
                self.folder,
                self.arch,
                self.encoder,
                self.target_mode,
                self.epochs,
                self.patch,
                self.batch,
                self.lr,
                self.out_dir,
                self.resume,
            ]
        )
        collapsible = QCollapsible("Advanced settings")
        collapsible.addWidget(self.advanced.native)
        for native in (
            collapsible,
            run_buttons.native,
            self.progress.native,
            self.status.native,
            self.curves,
        ):
            self.native.layout().addWidget(native)
        self.status.native.setWordWrap(True)
        self.native.setMinimumWidth(380)
        self._connect()

    def _choices(self, kind):
        return lambda _w=None: [(ly.name, ly) for ly in self.viewer.layers if type(ly) is kind]

    def _connect(self) -> None:
        """Connect every signal to its handler (tests call the handlers directly)."""
        self.source.changed.connect(self._on_source)
        self.add_pair_button.changed.connect(self.add_pair)
        self.clear_pairs_button.changed.connect(self.clear_pairs)
        self.start_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)
        self.resume.changed.connect(self._on_resume)
        self.out_dir.changed.connect(lambda _v: self._on_resume(self.resume.value))
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(lambda _e: self.reset_choices())

    def _on_resume(self, resume: bool) -> None:
        """Resuming: show the run's planned epochs (more continue it, fewer shorten it)."""
        from ..core.train.loop import saved_run

        if not resume:
            return
        try:
            saved, done = saved_run(self.out_dir.value)
        except SegQCError:
            return  # no run there (yet): Start says so
        self.epochs.value = saved.epochs
        self.status.value = f"resume: {done} of {saved.epochs} epochs done"

    def _on_source(self, value: str) -> None:
        layers = value == "Layers"
        for w in (
            self.image_combo,
            self.labels_combo,
            self.add_pair_button,
            self.clear_pairs_button,
            self.pairs_label,
        ):
            w.visible = layers
        self.folder.visible = not layers

    # --- data ---------------------------------------------------------------------------------
    def add_pair(self) -> None:
        image, labels = self.image_combo.value, self.labels_combo.value
        if image is None or labels is None:
            show_error("pick an Image layer and a Labels layer to add as a training pair")
            return
        rgb_shape = image.data.shape[:-1] if image.rgb else image.data.shape
        if tuple(rgb_shape) != tuple(labels.data.shape):
            show_error(
                f"{image.name!r} has shape {tuple(image.data.shape)} but {labels.name!r} "
                f"has shape {tuple(labels.data.shape)}: a pair needs the same size"
            )
            return
        if (image, labels) not in self._pairs:
            self._pairs.append((image, labels))
        self.pairs_label.value = f"{len(self._pairs)} pair(s): " + "; ".join(
            f"{i.name} + {m.name}" for i, m in self._pairs
        )

    def clear_pairs(self) -> None:
        self._pairs = []
        self.pairs_label.value = "no pairs yet: pick an image and its labels, Add pair"

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
        )

    # --- run ----------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            load = self._loader()
            config = self.config()
            config.check()
        except SegQCError as exc:
            show_error(str(exc))
            return
        self._stop.clear()
        self.history = []
        self.curves.clear()
        self.progress.value, self.progress.max = 0, 1
        self.status.value = "loading data..."
        self._set_running(True)
        self._worker = create_worker(
            _train_job,
            load,
            config,
            Path(self.out_dir.value),
            bool(self.resume.value),
            self._stop.is_set,
            _progress={"desc": "SegQC training"},
            _connect={
                "yielded": self._on_report,
                "returned": self._on_done,
                "errored": self._on_error,
                "finished": lambda: self._set_running(False),
            },
            _start_thread=False,
        )
        self._worker.start()

    def stop(self) -> None:
        """Ask training to stop after the current step (it saves last.safetensors)."""
        self._stop.set()
        self.status.value = "stopping after the current step..."

    def _on_report(self, report) -> None:
        if isinstance(report, StepReport):
            self.progress.max = report.steps
            self.progress.value = report.step
            self.status.value = (
                f"epoch {report.epoch + 1}: step {report.step}/{report.steps}, "
                f"loss {report.loss:.4f}"
            )
        elif isinstance(report, EpochReport):
            self.history.append(
                {
                    k: getattr(report, k)
                    for k in ("epoch", "train_loss", "val_loss", "val_iou", "val_f1", "lr")
                }
            )
            self.curves.show_history(self.history)
            self.status.value = (
                f"epoch {report.epoch + 1}/{report.epochs}: val F1 {report.val_f1:.3f}, "
                f"IoU {report.val_iou:.3f}, {report.images_per_s:.1f} patches/s"
            )

    def _on_done(self, best: Path) -> None:
        self.last_model = Path(best)
        TRAINED_MODELS.append(self.last_model)
        self.status.value = f"done: best model {self.last_model}"
        show_info(f"SegQC: training finished; best model {self.last_model}")
        if not self.resume.value:
            self.out_dir.value = _new_run_dir()

    def _on_error(self, exc: Exception) -> None:
        self.status.value = f"failed: {exc}"
        show_error(f"SegQC training failed: {exc}")

    def _set_running(self, running: bool) -> None:
        self.start_button.enabled = not running
        self.stop_button.enabled = running
