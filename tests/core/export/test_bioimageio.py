"""bioimage.io model packages: export (zip and folder), bioimage.io's own checks of them
(bioimageio.spec's format and file checks, bioimageio.core's model test), offline, and loading
a package back as a napari-segqc model."""

from __future__ import annotations

import hashlib
import socket
import zipfile

import numpy as np
import pytest

pytest.importorskip("bioimageio.spec")
pytest.importorskip("onnxruntime")

import torch

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.export import bioimageio_package
from napari_segqc.core.export.bioimageio_package import (
    check_package,
    export_bioimageio,
    spec_problem,
)
from napari_segqc.core.models.bioimageio_model import (
    FILES,
    parse_rdf,
    read_bioimageio_metadata,
    read_bioimageio_weights,
)
from napari_segqc.core.models.formats import read_model_meta
from napari_segqc.core.models.registry import ModelConfig, build_model
from napari_segqc.core.models.weights import save_weights
from napari_segqc.core.predict.inference import predict_probs_tiled
from napari_segqc.core.predict.loading import load_model, read_config
from napari_segqc.core.train.config import TrainConfig

PROBLEM = spec_problem()  # e.g. bioimageio.spec 0.5.12 with pydantic 2.14
needs_spec = pytest.mark.skipif(PROBLEM is not None, reason=str(PROBLEM))
WEIGHTS = ("pytorch_state_dict", "torchscript", "onnx")


def test_bioimageio_spec_works_here():
    """The export extra pins what bioimageio.spec needs: a broken combination fails here (and
    the tests below that need it are skipped with the same reason)."""
    assert PROBLEM is None, PROBLEM


@pytest.fixture(scope="module", autouse=True)
def offline():
    """Nothing here reaches the network: name lookups and internet connections fail at once.
    Yields the host names something tried to reach."""
    tried: list[str] = []
    connect = socket.socket.connect

    def refuse_lookup(host, *args, **kwargs):
        tried.append(str(host))
        raise socket.gaierror(f"no network in these tests ({host})")

    def refuse_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            tried.append(str(address))
            raise OSError("no network in these tests")
        return connect(sock, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", refuse_lookup)
        mp.setattr(socket.socket, "connect", refuse_connect)
        yield tried


@pytest.fixture(scope="module")
def reference():
    return load_model("nuclei", backend="torch")


@pytest.fixture(scope="module")
def package(tmp_path_factory, reference, offline):
    """The built-in model as a zip package (exported once; the export checks it offline)."""
    if PROBLEM:
        pytest.skip(PROBLEM)
    path = export_bioimageio(reference, tmp_path_factory.mktemp("bioimageio") / "nuclei.zip")
    assert offline == []  # the export's own check fetched no URL
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """An untrained small U-Net (3 stages, own decoder widths) saved as the trainer does."""
    torch.manual_seed(0)
    config = TrainConfig(
        model=ModelConfig(encoder="resnet18", encoder_depth=3, decoder_channels=(32, 16, 8))
    )
    path = tmp_path_factory.mktemp("run") / "best.safetensors"
    save_weights(path, build_model(config.model).eval().state_dict(), {"config": config.to_dict()})
    return path


@needs_spec
def test_zip_package_holds_everything(package, reference):
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        rdf = parse_rdf(archive.read("rdf.yaml"))
        test_input = np.load(archive.open(FILES["test_input"]), allow_pickle=False)
        test_output = np.load(archive.open(FILES["test_output"]), allow_pickle=False)
        readme = archive.read(FILES["documentation"]).decode()
    assert names == {"rdf.yaml", *FILES.values()}
    assert rdf["format_version"].startswith("0.5.") and rdf["type"] == "model"
    assert rdf["license"] == "BSD-3-Clause"
    assert rdf["training_data"]["license"] == "CC0-1.0"
    dois = {c.get("doi") for c in rdf["cite"]}
    assert {"10.1007/978-3-319-24574-4_28", "10.1038/s41592-019-0612-7"} <= dois
    assert set(rdf["weights"]) == set(WEIGHTS)
    # bioimageio.spec wraps the processing in ensure_dtype steps
    pre = {p["id"]: p.get("kwargs") for p in rdf["inputs"][0]["preprocessing"]}
    assert pre["scale_range"]["max_percentile"] == 99.8
    assert [p["id"] for p in rdf["outputs"][0]["postprocessing"]] == ["sigmoid", "ensure_dtype"]
    assert test_input.shape == (1, 1, 256, 256) and test_input.dtype == np.float32
    assert test_output.shape == (1, 3, 256, 256) and 0 <= test_output.min() < test_output.max() <= 1
    for needed in ("## Validation", "seeded watershed", "| split_height | 0.2 |", "CC0-1.0"):
        assert needed in readme
    # the napari-segqc metadata came along: config and card
    assert read_config(package) == reference.config
    assert read_model_meta(package)[1]["card"]["scores"]
    assert read_bioimageio_metadata(package)["card"] == read_model_meta("nuclei")[1]["card"]


@needs_spec
def test_bioimageio_spec_validates_offline(package, offline):
    from bioimageio.spec import InvalidDescr, load_description

    assert not isinstance(check_package(package), InvalidDescr)  # napari-segqc's offline check
    descr = load_description(package, perform_io_checks=True)  # hashes, test tensor shapes
    assert not isinstance(descr, InvalidDescr), descr.validation_summary.format()
    assert descr.validation_summary.status in ("valid-format", "passed")
    # the URLs (repository, smp, data) were refused, not fetched
    assert {h for h in offline if not h.startswith("(")} <= {
        "github.com",
        "bbbc.broadinstitute.org",
    }


@needs_spec
def test_bioimageio_core_reproduces_the_test_outputs(package):
    from bioimageio.core import test_model

    summary = test_model(package)
    failed = [f"{d.name}: {[e.msg for e in d.errors]}" for d in summary.details if d.errors]
    assert summary.status == "passed", failed
    passed = {d.name for d in summary.details if d.status == "passed"}
    for weights in WEIGHTS:
        assert f"Reproduce test outputs from test inputs ({weights})" in passed
        assert f"Run {weights} inference for inputs with batch_size: 2 and size parameter n: 2" in (
            passed
        )


@needs_spec
def test_package_loads_back_as_the_same_model(package, reference, sample_pair):
    loaded = load_model(package)
    assert loaded.backend == "torch" and loaded.config == reference.config
    image = sample_pair[0]
    maps = predict_probs_tiled(loaded, image, dtype=None)
    assert np.abs(maps - predict_probs_tiled(reference, image, dtype=None)).max() < 1e-4
    weights, meta = read_bioimageio_weights(package)
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())
    assert meta["precision"] == "fp32"


@needs_spec
def test_folder_package_of_a_trained_model(tmp_path, tiny_run, sample_pair):
    import importlib.util

    dest = tmp_path / "tiny"
    assert export_bioimageio(tiny_run, dest, sample=sample_pair[0][:200, :150]) == dest
    assert {p.name for p in tmp_path.iterdir()} == {"tiny"}  # no temporary folder left
    assert {p.name for p in dest.iterdir()} == {"rdf.yaml", *FILES.values()}
    rdf = parse_rdf((dest / "rdf.yaml").read_text())
    assert "training_data" not in rdf  # its card names no data
    assert rdf["name"] == "napari-segqc best"
    assert np.load(dest / FILES["test_input"]).shape == (1, 1, 192, 128)  # 96 + n * 32
    loaded, original = load_model(dest), load_model(tiny_run)
    image = sample_pair[0]
    maps = predict_probs_tiled(loaded, image, dtype=None)
    assert np.abs(maps - predict_probs_tiled(original, image, dtype=None)).max() < 1e-4
    # the generated architecture rebuilds the 3-stage net with its own widths (strictly, as
    # bioimageio.core loads it)
    spec = importlib.util.spec_from_file_location("tiny_arch", dest / FILES["architecture"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.segqc_unet(**rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"])
    state = torch.load(dest / FILES["pytorch_state_dict"], weights_only=True)
    net.load_state_dict(state, strict=True)
    with pytest.raises(SegQCError, match="exists"):
        export_bioimageio(tiny_run, dest)


@needs_spec
def test_failed_export_leaves_nothing(tmp_path, tiny_run, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(bioimageio_package, "export_onnx", broken)
    for dest in (tmp_path / "m.zip", tmp_path / "folder"):
        with pytest.raises(RuntimeError, match="disk full"):
            export_bioimageio(tiny_run, dest)
    with pytest.raises(SegQCError, match="96"):
        export_bioimageio(tiny_run, tmp_path / "small.zip", sample=np.zeros((64, 300)))
    with pytest.raises(SegQCError, match="package name"):
        export_bioimageio(tiny_run, tmp_path / "n.zip", name="a/b")
    assert list(tmp_path.iterdir()) == []


class _Code:
    """An object a pickle would rebuild (and could run code from)."""


@pytest.mark.skipif(PROBLEM is None, reason="bioimageio.spec works here")
def test_export_says_why_bioimageio_spec_cannot_work(tmp_path):
    with pytest.raises(SegQCError, match=r"bioimageio\.spec"):
        export_bioimageio("nuclei", tmp_path / "m.zip")
    assert list(tmp_path.iterdir()) == []


def _zip(path, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_foreign_and_broken_packages_are_refused(tmp_path):
    no_rdf = _zip(tmp_path / "no_rdf.zip", {"weights.pt": b"x"})
    with pytest.raises(SegQCError, match=r"no rdf\.yaml"):
        load_model(no_rdf)
    foreign = _zip(tmp_path / "foreign.zip", {"rdf.yaml": b"type: model\nname: other\n"})
    with pytest.raises(SegQCError, match="not one exported by napari-segqc"):
        read_config(foreign)
    with pytest.raises(SegQCError, match="not one exported by napari-segqc"):
        load_model(foreign)
    not_zip = tmp_path / "junk.zip"
    not_zip.write_bytes(b"\x80\x04junk")
    with pytest.raises(SegQCError, match="not a readable zip"):
        load_model(not_zip)


def test_weights_are_read_safely(tmp_path):
    import io

    config = TrainConfig(model=ModelConfig(encoder="resnet18")).to_dict()
    rdf = "type: model\nweights:\n  pytorch_state_dict:\n    source: {src}\n    sha256: {sha}\n"
    rdf += "config:\n  segqc:\n    config:\n      seed: 0\n"

    def package(name: str, data: bytes, sha: str | None = None, src: str = "weights.pt"):
        sha = sha or hashlib.sha256(data).hexdigest()
        text = rdf.format(src=src, sha=sha)
        return _zip(tmp_path / f"{name}.zip", {"rdf.yaml": text.encode(), "weights.pt": data})

    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2, dtype=torch.float16), "n": torch.tensor(3)}, buffer)
    weights, meta = read_bioimageio_weights(package("ok", buffer.getvalue()))
    assert weights["w"].dtype == torch.float32 and weights["n"].dtype == torch.int64
    assert meta == {"config": {"seed": 0}}
    with pytest.raises(SegQCError, match="SHA-256"):
        read_bioimageio_weights(package("corrupt", buffer.getvalue(), sha="f" * 64))
    with pytest.raises(SegQCError, match="inside the package"):
        read_bioimageio_weights(package("outside", buffer.getvalue(), src="../weights.pt"))
    for name, state in (("config", {"w": torch.ones(2), "config": config}), ("code", _Code())):
        buffer = io.BytesIO()
        torch.save(state, buffer)  # more than tensors; an object torch.load must not build
        with pytest.raises(SegQCError, match="state dict"):
            read_bioimageio_weights(package(name, buffer.getvalue()))


def test_descriptions_are_read_as_yaml_1_2():
    rdf = parse_rdf("type: model\na: 1e-06\nb: no\nc: on\nd: 012\ne: 1:20\nf: true\ng: .inf\n")
    assert rdf == {
        "type": "model",
        **{"a": 1e-06, "b": "no", "c": "on", "d": 12, "e": "1:20", "f": True, "g": float("inf")},
    }
    with pytest.raises(SegQCError, match=r"not a bioimage\.io description"):
        parse_rdf("- a list\n")
