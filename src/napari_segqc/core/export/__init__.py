"""Export: trained models as files other tools (and napari-segqc) run.

* :mod:`.onnx_export`: ONNX (fp32, fp16, int8 static quantization calibrated on real images)
  and TorchScript, with the config and card inside the file;
* :mod:`.bioimageio_package`: a bioimage.io model package (format 0.5) with torch, TorchScript
  and ONNX weights, test tensors, cover, card and citations.

Reading these files back as models is :mod:`napari_segqc.core.models.formats`.
"""
