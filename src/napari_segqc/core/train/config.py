"""The training configuration: one JSON-able dataclass, stored as a run's ``config.json``.

It holds everything needed to rebuild the model and its pre- and post-processing, so that a
run folder alone is enough to predict with the model later.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..device import PRECISIONS
from ..errors import SegQCError
from ..models.registry import ModelConfig
from .augment import AugmentConfig
from .optim import ScheduleConfig

CONFIG_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run (defaults: instance-aware nuclei U-Net, resnet34)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    target_mode: str = "instance"
    loss: str = "bce_dice"
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    epochs: int = 50
    steps_per_epoch: int = 0  # 0: about one pass over the training pixels, 4..200 steps
    patch: int = 256
    batch: int = 8
    val_fraction: float = 0.15
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast where supported (CPU, recent GPUs), else fp16
    channels_last: bool = True
    patience: int = 10  # early stopping on the validation metric; 0 = off
    checkpoint_every: int = 10
    threshold: float = 0.5  # decoding: foreground probability threshold
    min_size: int = 15  # decoding: smallest object kept, in pixels
    seed_threshold: float = 0.3  # decoding (instance mode): object-core score of the seeds
    split_height: float = 0.2  # decoding (instance mode): core-peak rise that splits objects
    min_object_prob: float = 0.0  # decoding: objects of lower mean foreground probability dropped
    init: str | None = None  # weights to start from (run folder or .safetensors); None: random
    # object size the model learnt (set by training from its training labels; 0: unknown):
    # median equivalent diameter in pixels, and the 5-95 % range of the images' medians
    diameter: float = 0.0
    diameter_range: tuple[float, float] = (0.0, 0.0)
    # share of the training images with a bright background (stained, brightfield; set by
    # training): above 0.5 the model expects bright backgrounds
    bright_fraction: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = CONFIG_VERSION
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        version = data.pop("version", CONFIG_VERSION)
        if version > CONFIG_VERSION:
            raise SegQCError(f"config version {version} is newer than this napari-segqc")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SegQCError(f"training config has unknown keys: {sorted(unknown)}")
        if isinstance(data.get("diameter_range"), list):
            data["diameter_range"] = tuple(data["diameter_range"])
        nested = {"model": ModelConfig, "schedule": ScheduleConfig, "augment": AugmentConfig}
        for key, kind in nested.items():
            if key in data and isinstance(data[key], dict):  # JSON lists back to tuples
                values = {k: tuple(v) if isinstance(v, list) else v for k, v in data[key].items()}
                data[key] = kind(**values)
        return cls(**data)

    def check(self) -> None:
        """Raise a :class:`SegQCError` for settings that cannot work."""
        if self.patch < 32 or self.patch % 32:
            raise SegQCError(f"patch size must be a multiple of 32 (>= 32), got {self.patch}")
        if self.batch < 1 or self.epochs < 1:
            raise SegQCError("batch size and epochs must be at least 1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise SegQCError(f"validation fraction must be in [0, 1), got {self.val_fraction}")
        if self.precision not in PRECISIONS:
            raise SegQCError(f"precision must be one of {', '.join(PRECISIONS)}")
        if not 0.0 < self.threshold < 1.0:
            raise SegQCError(f"threshold must be in (0, 1), got {self.threshold}")
        if not 0.0 < self.seed_threshold < 1.0:
            raise SegQCError(f"seed threshold must be in (0, 1), got {self.seed_threshold}")
        if not 0.0 <= self.split_height < 1.0:
            raise SegQCError(f"split height must be in [0, 1), got {self.split_height}")
        if not 0.0 <= self.min_object_prob < 1.0:
            raise SegQCError(
                f"minimum object probability must be in [0, 1), got {self.min_object_prob}"
            )
        if self.min_size < 0:
            raise SegQCError(f"minimum size must be at least 0, got {self.min_size}")


def check_training(config: TrainConfig) -> None:
    """Check every setting of a training run before anything is loaded or written: the
    config's own checks, the optimisation settings, the network (architecture, encoder,
    depth, widths), the device and the weights to start from. Raises a :class:`SegQCError`."""
    from ..device import pick_device
    from ..instances.targets import TARGET_CHANNELS
    from ..models.builtin import resolve_model_path
    from ..models.registry import check_model_config
    from .losses import LOSSES
    from .optim import OPTIMIZERS, SCHEDULES

    config.check()
    if config.target_mode not in TARGET_CHANNELS:
        raise SegQCError(f"targets must be one of {', '.join(TARGET_CHANNELS)}")
    if not config.lr > 0 or not config.weight_decay >= 0:
        raise SegQCError(f"learning rate must be > 0 and weight decay >= 0, got {config.lr}")
    for name in ("steps_per_epoch", "patience", "checkpoint_every"):
        if getattr(config, name) < 0:
            raise SegQCError(f"{name.replace('_', ' ')} must be at least 0")
    loss = config.loss.lower().replace("+", "_").replace("-", "_")
    for what, value, names in (
        ("loss", loss, sorted(LOSSES)),
        ("optimizer", config.optimizer, OPTIMIZERS),
        ("schedule", config.schedule.name, SCHEDULES),
    ):
        if value not in names:
            raise SegQCError(f"unknown {what} {value!r}; choose one of: {', '.join(names)}")
    classes = len(TARGET_CHANNELS[config.target_mode])
    check_model_config(replace(config.model, classes=classes))
    pick_device(config.device)
    if config.init:
        resolve_model_path(config.init)
