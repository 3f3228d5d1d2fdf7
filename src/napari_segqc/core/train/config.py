"""The training configuration: one JSON-able dataclass, stored as a run's ``config.json``.

It holds everything needed to rebuild the model and its pre- and post-processing, so that a
run folder alone is enough to predict with the model later.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
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
