"""The description (``rdf.yaml``) of a napari-segqc bioimage.io package
(:mod:`.bioimageio_package`) as bioimageio.spec's
:class:`~bioimageio.spec.model.v0_5.ModelDescr`: tensors and their processing, weights,
documentation, citations, training data and the napari-segqc metadata under
``config.segqc``."""

from __future__ import annotations

import json
from typing import Any

from ..instances.targets import TARGET_CHANNELS
from ..models.bioimageio_model import (
    ARCHITECTURE_CALLABLE,
    FILES,
    HALO,
    INPUT_ID,
    MIN_SIZE,
    OUTPUT_ID,
    SIZE_STEP,
    architecture_kwargs,
)
from ..models.normalize import HIGH, LOW
from ..models.registry import ARCHITECTURES
from ..predict.loading import LoadedModel
from .bioimageio_card import (
    DATA_URL,
    DSB,
    LICENSE,
    SMP,
    UNET,
    image_kind,
    inline,
    is_dsb,
    package_description,
)
from .onnx_export import OPSET

AUTHORS = "napari-segqc developers"
REPO_URL = "https://github.com/napari-segqc/napari-segqc"
#: The URLs in napari-segqc's packages: the export and its check do not fetch them.
URLS = (REPO_URL, DATA_URL, SMP[2])
EPS = 1e-6  # bioimage.io's scale_range adds it to the percentile range (its default)


def torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]


def model_descr(loaded: LoadedModel, meta: dict, name: str) -> Any:
    """The package's :class:`~bioimageio.spec.model.v0_5.ModelDescr` for the files in the
    current validation context's root (their SHA-256 are computed as it is built)."""
    from bioimageio.spec.model import v0_5 as bio

    config, card = loaded.config, meta.get("card") or {}
    m = config.model

    def file(key: str, cls: type = bio.FileDescr, **kwargs) -> Any:
        return cls(source=FILES[key], **kwargs)

    def cite(*entries) -> list:
        return [bio.CiteEntry(text=t, **({"doi": d} if d else {"url": u})) for t, d, u in entries]

    names = ["grey"] if m.in_channels == 1 else ["red", "green", "blue"]
    outputs = list(TARGET_CHANNELS.get(config.target_mode, ()))
    if len(outputs) != m.classes:
        outputs = [f"map{i}" for i in range(m.classes)]
    size = bio.ParameterizedSize(min=MIN_SIZE, step=SIZE_STEP)
    refs = [bio.SizeReference(tensor_id=INPUT_ID, axis_id=a) for a in "yx"]
    bright = image_kind(config) != "fluorescence"
    tags = ["transmission-light-microscopy", "stained", "brightfield"] if bright else []
    tags += [] if bright else ["fluorescence-light-microscopy", "fluorescence"]
    tags += ["nuclei", "2d", "pytorch", "unet", "instance-segmentation", "segmentation"]
    tags += ["resnet"] * m.encoder.startswith("resnet")
    tags += ["napari-segqc", "napari", "onnx", "torchscript"]
    pytorch = torch_version()
    data = None
    if is_dsb(card):  # inline: bioimage.io has no dataset id for it to link to
        data = bio.DatasetDescr(
            name="DSB 2018 nuclei (BBBC038v1)",
            description=inline(card.get("data", ""))[:512],
            source=DATA_URL,
            license="CC0-1.0",
            cite=cite(DSB),
            tags=["nuclei", "dsb2018", "bbbc038"],
            authors=[bio.Author(name="Broad Bioimage Benchmark Collection")],
        )
    return bio.ModelDescr(
        name=name,
        description=package_description(config),
        authors=[bio.Author(name=AUTHORS)],
        cite=cite(UNET, SMP, *[DSB] * (data is not None)),
        license=LICENSE,
        git_repo=REPO_URL,
        tags=tags,
        covers=[file("cover")],
        documentation=file("documentation"),
        inputs=[
            bio.InputTensorDescr(
                id=INPUT_ID,
                test_tensor=file("test_input"),
                data=bio.IntervalOrRatioDataDescr(type="float32"),
                description="raw image, any intensity range (normalised per image and channel)",
                axes=[
                    bio.BatchAxis(),
                    bio.ChannelAxis(channel_names=names),
                    *(bio.SpaceInputAxis(id=a, size=size) for a in "yx"),
                ],
                preprocessing=[
                    bio.ScaleRangeDescr(
                        kwargs=bio.ScaleRangeKwargs(
                            axes=["y", "x"], min_percentile=LOW, max_percentile=HIGH, eps=EPS
                        )
                    )
                ],
            )
        ],
        outputs=[
            bio.OutputTensorDescr(
                id=OUTPUT_ID,
                test_tensor=file("test_output"),
                data=bio.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
                description="probability maps: " + ", ".join(outputs),
                axes=[
                    bio.BatchAxis(),
                    bio.ChannelAxis(channel_names=outputs),
                    *(
                        bio.SpaceOutputAxisWithHalo(id=a, size=r, halo=HALO)
                        for a, r in zip("yx", refs, strict=True)
                    ),
                ],
                postprocessing=[bio.SigmoidDescr()],
            )
        ],
        weights=bio.WeightsDescr(
            pytorch_state_dict=file(
                "pytorch_state_dict",
                bio.PytorchStateDictWeightsDescr,
                pytorch_version=pytorch,
                architecture=file(
                    "architecture",
                    bio.ArchitectureFromFileDescr,
                    callable=ARCHITECTURE_CALLABLE,
                    kwargs=architecture_kwargs(m),
                ),
                dependencies=file("environment"),
                comment="float32 state dict written by napari-segqc",
            ),
            torchscript=file(
                "torchscript",
                bio.TorchscriptWeightsDescr,
                pytorch_version=pytorch,
                parent="pytorch_state_dict",
                comment="traced (float32, CPU)",
            ),
            onnx=file(
                "onnx",
                bio.OnnxWeightsDescr,
                opset_version=OPSET,
                parent="pytorch_state_dict",
                comment="float32; dynamic batch, height and width",
            ),
        ),
        **({"training_data": data} if data else {}),
        config=bio.Config(
            bioimageio=bio.BioimageioConfig(
                architecture_type=f"{ARCHITECTURES[m.arch]} ({m.encoder})",
                modality=image_kind(config),
                target_structure=["nuclei"],
                task="instance segmentation (probability maps + seeded watershed)",
                model_parameter_count=sum(p.numel() for p in loaded.model.parameters()),
                training=bio.TrainingDetails(
                    training_batch_size=config.batch,
                    optimizer=config.optimizer,
                    initial_learning_rate=config.lr,
                    loss_function=config.loss,
                    learning_rate_schedule=config.schedule.name,
                ),
            ),
            segqc=json.loads(json.dumps(meta)),  # plain YAML types (tuples become lists)
        ),
    )
