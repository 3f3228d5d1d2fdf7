"""ONNX (fp32, fp16, int8) and TorchScript export of a model, and loading them back as models."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tifffile

pytest.importorskip("onnxruntime")

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.export.calibration import builtin_calibration_folder
from napari_segqc.core.export.onnx_export import export_onnx, export_torchscript
from napari_segqc.core.predict.inference import predict_probs_tiled
from napari_segqc.core.predict.loading import load_model, read_config
from napari_segqc.core.predict.segmentation import segment
from napari_segqc.core.qc.matching import match_objects, threshold_key


@pytest.fixture(scope="module")
def torch_model():
    return load_model("nuclei", backend="torch")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, torch_model):
    """The built-in model as ONNX fp32, fp16, int8 and TorchScript files (exported once)."""
    folder = tmp_path_factory.mktemp("export")
    calibration = [
        tifffile.imread(p) for p in sorted(builtin_calibration_folder("nuclei").glob("*.tif"))
    ]
    return {
        "fp32": export_onnx(torch_model, folder / "nuclei.onnx"),
        "fp16": export_onnx(torch_model, folder / "nuclei_fp16.onnx", quantize="fp16"),
        "int8": export_onnx(
            torch_model, folder / "nuclei_int8.onnx", quantize="int8", calibration=calibration
        ),
        "torchscript": export_torchscript(torch_model, folder / "nuclei.pt"),
    }


def test_onnx_maps_match_torch(exported, torch_model, sample_pair):
    image = sample_pair[0]
    reference = predict_probs_tiled(torch_model, image, dtype=None)
    loaded = load_model(exported["fp32"])
    assert loaded.backend == "onnx"
    maps = predict_probs_tiled(loaded, image, dtype=None)
    assert maps.shape == reference.shape
    assert np.abs(maps - reference).max() < 1e-3
    # tiles and a batch of several: the dynamic axes work
    tiled = predict_probs_tiled(loaded, np.tile(image, (2, 3)), tile=256, overlap=32, dtype=None)
    assert tiled.shape == (3, 512, 768)


def test_config_and_card_travel_inside(exported, torch_model):
    for key in ("fp32", "int8", "torchscript"):
        config = read_config(exported[key])
        assert config == torch_model.config
    from napari_segqc.core.models.formats import read_model_meta

    meta = read_model_meta(exported["int8"])[1]
    assert meta["precision"] == "int8"
    assert meta["card"]["scores"]  # the built-in model's card came along


def test_quantized_files_are_smaller_and_close(exported, torch_model, sample_dir):
    size = {k: exported[k].stat().st_size for k in ("fp32", "fp16", "int8")}
    assert size["int8"] <= 0.35 * size["fp32"]
    assert size["fp16"] <= 0.55 * size["fp32"]
    tp = {"fp32": 0, "int8": 0, "fp16": 0}
    total = {k: 0 for k in tp}
    for name in ("nuclei_01", "nuclei_02", "nuclei_03", "nuclei_04"):
        image = tifffile.imread(sample_dir / "images" / f"{name}.tif")
        gt = tifffile.imread(sample_dir / "masks" / f"{name}.tif")
        for key in tp:
            labels, _ = segment(load_model(exported[key]), image, diameter=None)
            s = match_objects(gt, labels)[threshold_key(0.5)]
            tp[key] += s["tp"]
            total[key] += s["tp"] + s["fp"] + s["fn"]
    accuracy = {k: tp[k] / total[k] for k in tp}
    assert accuracy["fp32"] > 0.7
    assert abs(accuracy["int8"] - accuracy["fp32"]) <= 0.02, accuracy
    assert abs(accuracy["fp16"] - accuracy["fp32"]) <= 0.005, accuracy


def test_torchscript_loads_back(exported, torch_model, sample_pair):
    loaded = load_model(exported["torchscript"])
    assert loaded.backend == "torch"
    reference = predict_probs_tiled(torch_model, sample_pair[0], dtype=None)
    assert np.abs(predict_probs_tiled(loaded, sample_pair[0], dtype=None) - reference).max() < 1e-4


def test_export_needs_torch_weights(exported, tmp_path):
    with pytest.raises(SegQCError, match="torch weights"):
        export_onnx(exported["fp32"], tmp_path / "again.onnx")
    with pytest.raises(SegQCError, match="calibration"):
        export_onnx("nuclei", tmp_path / "q.onnx", quantize="int8")
    with pytest.raises(SegQCError, match="quantize"):
        export_onnx("nuclei", tmp_path / "q.onnx", quantize="int4")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_foreign_and_corrupt_files_refused(tmp_path, exported):
    import onnx
    from onnx import TensorProto, helper

    pickled = tmp_path / "evil.onnx"
    pickled.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(SegQCError, match="pickle"):
        load_model(pickled)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(exported["fp32"].read_bytes()[:5000])
    with pytest.raises(SegQCError, match=r"not a readable ONNX model|not an ONNX model"):
        read_config(truncated)
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), str(foreign))
    with pytest.raises(SegQCError, match="not one exported by napari-segqc"):
        load_model(foreign)
    script = tmp_path / "random.pt"
    script.write_bytes(b"\x80\x04junk")
    with pytest.raises(SegQCError, match="not a TorchScript archive"):
        load_model(script)
