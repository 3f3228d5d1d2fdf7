"""bioimage.io model packages exported by napari-segqc, read back as napari-segqc models.

A package (a ``.zip`` or an unpacked folder) holds a description file (``rdf.yaml``), the
weights in several formats and the napari-segqc metadata (training config and card) under
``config.segqc`` of the description (see :mod:`napari_segqc.core.export.bioimageio_package`).
Reading needs neither bioimageio.spec nor the network: the description is parsed as YAML 1.2
(what bioimage.io writes) and the ``pytorch_state_dict`` weights are loaded with
``torch.load(..., weights_only=True)``, which builds tensors only and never runs code from the
file. A package napari-segqc did not export is refused: it has no config to rebuild the
network and its decoding from. The layout of napari-segqc's packages (file names, tensor
sizes, the network's source file) is fixed here too, for the exporter.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import SegQCError

#: Names of a package's description file, in the order bioimage.io looks for them.
RDF_NAMES = ("rdf.yaml", "bioimageio.yaml", "model.yaml")
#: Key of the napari-segqc metadata (config, card) in the description's ``config``.
CONFIG_KEY = "segqc"
#: The weights napari-segqc reads from a package.
WEIGHTS_FORMAT = "pytorch_state_dict"

# The packages napari-segqc writes (:mod:`napari_segqc.core.export.bioimageio_package`):
#: input sizes ``MIN_SIZE + n * SIZE_STEP``; outputs lose ``HALO`` pixels a side when an image is
#: predicted in tiles (bioimage.io wants ``MIN_SIZE - 2 * HALO >= 1``)
MIN_SIZE, SIZE_STEP, HALO = 96, 32, 32
INPUT_ID, OUTPUT_ID = "image", "probabilities"
#: The package's files, by role.
FILES = {
    "pytorch_state_dict": "weights.pt",
    "torchscript": "weights.torchscript",
    "onnx": "weights.onnx",
    "architecture": "segqc_unet.py",
    "environment": "environment.yaml",
    "test_input": "test_input.npy",
    "test_output": "test_output.npy",
    "cover": "cover.png",
    "documentation": "README.md",
}
ARCHITECTURE_CALLABLE = "segqc_unet"
#: ``segqc_unet.py``: rebuilds the network as :func:`.registry.build_model` does.
ARCHITECTURE_SOURCE = '''"""The napari-segqc network of this package: a segmentation-models-pytorch
model whose encoder stages deeper than ``encoder_depth`` are removed (napari-segqc never runs
nor saves them). Written by napari-segqc; needs torch and segmentation-models-pytorch."""

import torch


def segqc_unet(arch, encoder_name, in_channels, classes, encoder_depth=5, decoder_channels=None):
    """The network (it outputs logits); the package's state dict holds its weights."""
    import segmentation_models_pytorch as smp

    options = {}
    if encoder_depth != 5:
        options["encoder_depth"] = encoder_depth
    if decoder_channels is not None:
        options["decoder_channels"] = tuple(decoder_channels)
    model = smp.create_model(
        arch, encoder_name=encoder_name, encoder_weights=None, in_channels=in_channels,
        classes=classes, **options,
    )
    get_stages = getattr(model.encoder, "get_stages", None)
    if get_stages is not None and encoder_depth < 5:
        for stride, modules in get_stages().items():
            if stride > 2**encoder_depth:
                for module in modules:
                    for name, child in list(model.encoder.named_children()):
                        if child is module:
                            setattr(model.encoder, name, torch.nn.Identity())
    return model
'''
#: ``environment.yaml``: what ``segqc_unet.py`` needs (conda environment file).
ENVIRONMENT = """name: napari-segqc-unet
channels:
  - conda-forge
  - nodefaults
dependencies:
  - python >=3.10
  - pytorch >={torch}
  - pip
  - pip:
      - segmentation-models-pytorch=={smp}
"""


def architecture_kwargs(model) -> dict[str, Any]:
    """Arguments of ``segqc_unet`` that rebuild the network of ``model`` (a
    :class:`.registry.ModelConfig`) as :func:`.registry.build_model` builds it."""
    from .registry import ARCHITECTURES, DEFAULT_DECODER_CHANNELS

    if model.arch not in ARCHITECTURES:
        raise SegQCError(f"unknown architecture {model.arch!r} in the model's config")
    channels = model.decoder_channels
    if channels is None and model.encoder_depth != 5:
        channels = DEFAULT_DECODER_CHANNELS[: model.encoder_depth]
    kwargs: dict[str, Any] = {
        "arch": model.arch,
        "encoder_name": model.encoder,
        "in_channels": model.in_channels,
        "classes": model.classes,
        "encoder_depth": model.encoder_depth,
    }
    if channels is not None:
        kwargs["decoder_channels"] = [int(c) for c in channels]
    return kwargs


def is_rdf_name(name: str) -> bool:
    """Whether ``name`` names a bioimage.io description file (``rdf.yaml``,
    ``NAME.bioimageio.yaml``, ...)."""
    return any(name == n or name.endswith("." + n) for n in RDF_NAMES)


@contextmanager
def _package_files(path: Path) -> Iterator[tuple[list[str], Callable[[str], bytes]]]:
    """(top-level file names, ``read(name) -> bytes``) of a package zip or folder."""
    if path.is_dir():

        def read(name: str) -> bytes:
            return (path / name).read_bytes()

        yield sorted(p.name for p in path.iterdir() if p.is_file()), read
        return
    if not path.is_file():
        raise SegQCError(f"{path}: no such bioimage.io package (zip file or folder)")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SegQCError(f"{path}: not a readable zip file ({exc})") from None
    with archive:
        names = [n for n in archive.namelist() if "/" not in n.rstrip("/")]
        yield names, archive.read


def _rdf_name(path: Path, names: list[str]) -> str:
    for wanted in RDF_NAMES:  # rdf.yaml first, then NAME.bioimageio.yaml and the others
        found = sorted(n for n in names if n == wanted or n.endswith("." + wanted))
        if found:
            return found[0]
    raise SegQCError(
        f"{path}: not a bioimage.io model package (no rdf.yaml or *.bioimageio.yaml inside)"
    )


def _yaml12_loader():
    """PyYAML's safe loader with YAML 1.2 scalars, as bioimage.io writes them: ``1e-06`` is a
    number and ``no``/``on`` are strings (YAML 1.1 reads them the other way round)."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with napari
        raise SegQCError("reading bioimage.io packages needs PyYAML: pip install pyyaml") from None

    class Loader(yaml.SafeLoader):
        pass

    replaced = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in replaced]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        replaced[0], re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    Loader.add_implicit_resolver(replaced[1], re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
    Loader.add_implicit_resolver(
        replaced[2],
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+0123456789."),
    )
    # YAML 1.1 reads 012 as octal; in YAML 1.2's core schema it is decimal
    Loader.add_constructor(replaced[1], lambda loader, node: int(loader.construct_scalar(node)))
    return Loader


def parse_rdf(text: bytes | str, source: str | os.PathLike = "rdf.yaml") -> dict[str, Any]:
    """A bioimage.io description (YAML 1.2 text) as a dictionary."""
    import yaml

    try:
        rdf = yaml.load(text, Loader=_yaml12_loader())  # a safe loader
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SegQCError(f"{source}: unreadable bioimage.io description ({first})") from None
    if not isinstance(rdf, dict):
        raise SegQCError(f"{source}: not a bioimage.io description (not a YAML mapping)")
    return rdf


def read_bioimageio_rdf(path: str | os.PathLike) -> dict[str, Any]:
    """The description (``rdf.yaml``) of a package zip or folder as a dictionary."""
    path = Path(path)
    with _package_files(path) as (names, read):
        name = _rdf_name(path, names)
        return parse_rdf(read(name), path / name)


def _segqc_meta(path: Path, rdf: dict[str, Any]) -> dict[str, Any]:
    config = rdf.get("config")
    meta = config.get(CONFIG_KEY) if isinstance(config, dict) else None
    if rdf.get("type") != "model" or not isinstance(meta, dict) or "config" not in meta:
        what = "model package" if rdf.get("type") == "model" else f"{rdf.get('type')!r} package"
        raise SegQCError(
            f"{path}: a bioimage.io {what}, but not one exported by napari-segqc (no "
            f"config.{CONFIG_KEY} with its training config); napari-segqc runs only its own "
            "packages: run other bioimage.io models with bioimageio.core"
        )
    return meta


def read_bioimageio_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The napari-segqc metadata (``config``, ``card``, ...) of a package it exported; only
    the description is read (no weights, no network)."""
    path = Path(path)
    return dict(_segqc_meta(path, read_bioimageio_rdf(path)))


def _member_name(path: Path, source: Any) -> str:
    """The file a ``source`` entry names inside the package (plain names only: no URLs, no
    folders, nothing outside the package)."""
    if not isinstance(source, str) or not source.strip():
        raise SegQCError(f"{path}: the {WEIGHTS_FORMAT} weights have no source file")
    parts = PurePosixPath(source.strip()).parts
    if "://" in source or len(parts) != 1 or parts[0] in (".", ".."):
        raise SegQCError(
            f"{path}: the {WEIGHTS_FORMAT} weights must be a file inside the package, "
            f"not {source!r}"
        )
    return parts[0]


def read_bioimageio_weights(path: str | os.PathLike) -> tuple[dict, dict[str, Any]]:
    """``(state_dict, metadata)`` of a package napari-segqc exported: its
    ``pytorch_state_dict`` weights (float32 CPU tensors; the file's SHA-256 is checked
    against the description) and its napari-segqc metadata."""
    import torch

    path = Path(path)
    with _package_files(path) as (names, read):
        rdf_name = _rdf_name(path, names)
        rdf = parse_rdf(read(rdf_name), path / rdf_name)
        meta = _segqc_meta(path, rdf)
        entry = (rdf.get("weights") or {}).get(WEIGHTS_FORMAT)
        if not isinstance(entry, dict):
            raise SegQCError(f"{path}: the package has no {WEIGHTS_FORMAT} weights")
        name = _member_name(path, entry.get("source"))
        if name not in names:
            raise SegQCError(f"{path}: the weights file {name} is missing from the package")
        data = read(name)
    expected = entry.get("sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != str(expected).lower():
        raise SegQCError(f"{path}: {name} does not match its SHA-256 in the description (corrupt)")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with objects, or a corrupt file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SegQCError(f"{path}: {name} is not a plain state dict of tensors ({first})") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise SegQCError(f"{path}: {name} is not a state dict (names -> tensors)")
    weights = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return weights, dict(meta)
