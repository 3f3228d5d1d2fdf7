"""Export: trained models as files other tools (and napari-segqc) run.

* :mod:`.onnx_export`: ONNX (fp32, fp16, int8 static quantization calibrated on real images)
  and TorchScript, with the config and card inside the file;
* :mod:`.bioimageio_package`: a bioimage.io model package (format 0.5) with torch, TorchScript
  and ONNX weights, test tensors, cover, card and citations.

Reading these files back as models is :mod:`napari_segqc.core.models.formats`.
"""

from __future__ import annotations

#: ``segqc export --format`` choices.
FORMATS = ("bioimageio", "onnx", "torchscript")


def export_as(loaded, dest, fmt: str, *, quantize=None, calibration=None, calibration_tiles=32):
    """Write ``loaded`` (a model on torch) to ``dest`` in format ``fmt`` (see :data:`FORMATS`;
    ``quantize`` and the int8 ``calibration`` images apply to ONNX); returns the path."""
    if fmt == "onnx":
        from .onnx_export import export_onnx

        return export_onnx(
            loaded,
            dest,
            quantize=quantize,
            calibration=calibration,
            calibration_tiles=calibration_tiles,
        )
    if fmt == "torchscript":
        from .onnx_export import export_torchscript

        return export_torchscript(loaded, dest)
    from .bioimageio_package import export_bioimageio

    return export_bioimageio(loaded, dest)
