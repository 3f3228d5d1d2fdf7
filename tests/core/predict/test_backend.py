"""Which backend runs a model: built-in models on the CPU run their int8 ONNX companion."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytest.importorskip("onnxruntime")

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.models.builtin import BUILTIN_INT8, BUILTIN_MODELS, INT8_BY_DEFAULT
from napari_segqc.core.predict.inference import predict_probs_tiled
from napari_segqc.core.predict.loading import load_model, read_config
from napari_segqc.core.predict.segmentation import segment
from napari_segqc.core.qc.matching import match_objects, threshold_key


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_builtin_models_run_their_int8_companion_by_default(name):
    loaded = load_model(name)
    if name not in INT8_BY_DEFAULT:  # its companion cost more than 0.005 accuracy
        assert loaded.backend == "torch"
        loaded = load_model(name, backend="onnx")
    assert loaded.backend == "onnx"
    assert loaded.path == BUILTIN_INT8[name]
    assert loaded.config == read_config(name)  # decoding from the .safetensors file
    assert load_model(name, backend="torch").backend == "torch"
    assert load_model(name, backend="onnx").backend == "onnx"


def test_companion_is_the_same_network(sample_dir):
    """The companion was quantized from the shipped weights: maps close, same accuracy."""
    torch_model, fast = load_model("nuclei", backend="torch"), load_model("nuclei")
    scores = {"torch": [0, 0], "onnx": [0, 0]}
    for name in ("nuclei_01", "nuclei_02", "nuclei_03", "nuclei_04"):
        image = tifffile.imread(sample_dir / "images" / f"{name}.tif")
        gt = tifffile.imread(sample_dir / "masks" / f"{name}.tif")
        a = predict_probs_tiled(torch_model, image, dtype=None)
        b = predict_probs_tiled(fast, image)
        assert np.abs(a - b).mean() < 0.01
        for key, loaded in (("torch", torch_model), ("onnx", fast)):
            s = match_objects(gt, segment(loaded, image)[0])[threshold_key(0.5)]
            scores[key][0] += s["tp"]
            scores[key][1] += s["tp"] + s["fp"] + s["fn"]
    accuracy = {k: tp / total for k, (tp, total) in scores.items()}
    assert abs(accuracy["onnx"] - accuracy["torch"]) <= 0.02, accuracy


def test_backend_choices_are_checked(tmp_path):
    import torch

    with pytest.raises(SegQCError, match="backend must be one of"):
        load_model("nuclei", backend="tensorrt")
    weights = tmp_path / "copy.safetensors"
    weights.write_bytes(BUILTIN_MODELS["nuclei"].read_bytes())
    assert load_model(weights).backend == "torch"  # trained models: torch unless exported
    with pytest.raises(SegQCError, match="no ONNX version"):
        load_model(weights, backend="onnx")
    with pytest.raises(SegQCError, match="no ONNX version"):
        load_model("nuclei", device=torch.device("meta"), backend="onnx")
    with pytest.raises(SegQCError, match="runs on onnxruntime only"):
        load_model(BUILTIN_INT8["nuclei"], backend="torch")
