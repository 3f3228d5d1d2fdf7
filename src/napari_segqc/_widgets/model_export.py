"""The Segment dock's model export row: the picked model as a bioimage.io package, an ONNX
file (float32 or int8) or a TorchScript file, written in a worker thread (the work is in
:mod:`napari_segqc.core.export`)."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import ComboBox, Container, PushButton
from napari.qt.threading import create_worker

from ..core.errors import SegQCError

#: Choice shown -> (format, quantize, file suffix, dialog filter).
EXPORT_CHOICES = {
    "bioimage.io package": ("bioimageio", None, ".zip", "bioimage.io packages (*.zip)"),
    "ONNX": ("onnx", None, ".onnx", "ONNX models (*.onnx)"),
    "ONNX int8": ("onnx", "int8", ".onnx", "ONNX models (*.onnx)"),
    "TorchScript": ("torchscript", None, ".pt", "TorchScript models (*.pt)"),
}


def export_model_file(source: str, dest: Path, fmt: str, quantize, calibration) -> Path:
    """Worker body: load ``source`` and write it to ``dest`` in format ``fmt``."""
    from ..core.export import export_as
    from ..core.predict.loading import load_model

    return export_as(
        load_model(source, backend="torch"), dest, fmt, quantize=quantize, calibration=calibration
    )


class ModelExportRow(Container):
    """Format choice and an "Export model..." button for a dock with a model picker.

    ``dock`` provides ``export_source()`` (the model to export), ``export_calibration()``
    (images for int8 calibration of a model without shipped samples) and the status hooks
    ``show_info``/``show_error``/``set_status``."""

    def __init__(self, dock) -> None:
        self.dock = dock
        self.format = ComboBox(
            choices=list(EXPORT_CHOICES),
            value="bioimage.io package",
            tooltip="bioimage.io: for Fiji/deepImageJ, QuPath, ilastik and napari; ONNX: "
            "onnxruntime (int8: smaller and faster on CPUs, calibrated on the model's sample "
            "images or the picked image); TorchScript: PyTorch without Python code",
        )
        self.button = PushButton(text="Export model...")
        super().__init__(widgets=[self.format, self.button], layout="horizontal", labels=False)
        self.button.changed.connect(lambda: self.export())
        self.worker = None

    def export(self, dest: str | None = None):
        """Export the dock's model (asks for a file name when ``dest`` is None); returns the
        worker (None if nothing started)."""
        fmt, quantize, suffix, pattern = EXPORT_CHOICES[self.format.value]
        try:
            source = self.dock.export_source()
            calibration = self._calibration(source) if quantize == "int8" else None
        except SegQCError as exc:
            self.dock.show_error(str(exc))
            return None
        if dest is None:
            from qtpy.QtWidgets import QFileDialog

            name = f"{Path(source).stem or source}{suffix}"
            dest, _ = QFileDialog.getSaveFileName(self.native, "Export the model", name, pattern)
            if not dest:
                return None
        path = Path(dest)
        if path.suffix.lower() != suffix:
            path = path.with_name(path.name + suffix)
        self.button.enabled = False
        self.dock.set_status(f"exporting {source} as {self.format.value}...")
        self.worker = create_worker(
            export_model_file,
            source,
            path,
            fmt,
            quantize,
            calibration,
            _connect={
                "returned": self._done,
                "errored": lambda exc: self.dock.show_error(f"export failed: {exc}"),
                "finished": lambda: setattr(self.button, "enabled", True),
            },
            _start_thread=False,
        )
        self.worker.start()
        return self.worker

    def _calibration(self, source: str) -> list:
        from ..core.export.calibration import builtin_calibration_folder, read_calibration_folder

        folder = builtin_calibration_folder(source)
        if folder is not None:
            return read_calibration_folder(folder)
        return self.dock.export_calibration()

    def _done(self, path: Path) -> None:
        size = path.stat().st_size / 1e6 if path.is_file() else 0.0
        self.dock.show_info(
            f"SegQC: model exported to {path}" + (f" ({size:.1f} MB)" if size else ""),
            status=f"model exported to {path}",
        )
