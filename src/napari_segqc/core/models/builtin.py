"""Built-in models shipped in the package, and where a model source points to.

A model source is a built-in name (``"nuclei"``), a run folder (its ``best.safetensors``, else
``last.safetensors``), a model file (``.safetensors``, ``.onnx``, TorchScript ``.pt``) or a
bioimage.io package (``.zip``, or a folder holding ``rdf.yaml``) exported by napari-segqc; see
:mod:`.formats`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SegQCError

#: Built-in models: name -> weights file inside the package.
_HERE = Path(__file__).resolve().parent
BUILTIN_MODELS = {
    "nuclei": _HERE / "nuclei.safetensors",
    "nuclei-stained": _HERE / "nuclei_stained.safetensors",
}
#: int8 ONNX companions of the built-in models (``scripts/export_builtin_int8.py``): the same
#: network quantized, run by onnxruntime, the default on the CPU (see
#: :func:`napari_segqc.core.predict.loading.load_model`).
BUILTIN_INT8 = {
    "nuclei": _HERE / "nuclei.int8.onnx",
    "nuclei-stained": _HERE / "nuclei_stained.int8.onnx",
}
#: Built-in models whose int8 companion is the CPU default: its test-split accuracy at IoU 0.5 is
#: within 0.005 of the torch model's (nuclei: 0.862 vs 0.858). nuclei-stained's costs 0.009
#: (0.586 vs 0.595 on its 17 test images), so it runs on torch unless --backend onnx.
INT8_BY_DEFAULT = frozenset({"nuclei"})
#: How the built-in models are shown in the GUI.
BUILTIN_TITLES = {
    "nuclei": "nuclei (fluorescence, DSB 2018)",
    "nuclei-stained": "nuclei-stained (stained and brightfield, DSB 2018)",
}


def resolve_model_path(source: str | os.PathLike) -> Path:
    """The weights file of a built-in name, a run folder or a file path."""
    if str(source) in BUILTIN_MODELS:
        path = BUILTIN_MODELS[str(source)]
        if not path.is_file():
            raise SegQCError(
                f"the built-in model {str(source)!r} is not bundled with this version yet: "
                "pass a run folder or a .safetensors file written by `segqc train`"
            )
        return path
    path = Path(source)
    if path.is_dir():
        if (path / "rdf.yaml").is_file() or any(path.glob("*.bioimageio.yaml")):
            return path  # an unpacked bioimage.io package
        for name in ("best.safetensors", "last.safetensors"):
            if (path / name).is_file():
                return path / name
        raise SegQCError(f"{path}: no best.safetensors or last.safetensors in this run folder")
    if not path.exists():
        raise SegQCError(f"model {path}: no such file or run folder")
    return path
