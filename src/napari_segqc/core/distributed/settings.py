"""What a prediction run was asked for, in one picklable object that workers get."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PredictSettings:
    """``segqc predict``'s settings: the model (``"auto"``, a built-in name or a path that
    every worker can read), the object ``diameter`` (``"auto"``, pixels or None), tiling,
    where and how the network runs, decoding overrides (None: the model's), and for big
    images the ``block`` side and ``halo`` (None: from the object size, see
    :func:`.blocks.halo_for`)."""

    model: str = "auto"
    diameter: float | str | None = "auto"
    tile: int = 1024
    overlap: int = 64
    batch: int = 4
    device: str = "auto"
    backend: str = "auto"
    precision: str = "auto"
    tta: bool = False
    threshold: float | None = None
    min_size: int | None = None
    split_height: float | None = None
    min_object_prob: float | None = None
    block: int = 4096
    halo: int | None = None

    def decoding(self) -> dict:
        """The decoding overrides, as :func:`~napari_segqc.core.predict.segment` takes them."""
        return {
            "threshold": self.threshold,
            "min_size": self.min_size,
            "split_height": self.split_height,
            "min_object_prob": self.min_object_prob,
        }

    def tiling(self) -> dict:
        """Tiling and network options, as :func:`~napari_segqc.core.predict.segment` takes
        them (the autocast type is resolved where the network runs)."""
        return {"tile": self.tile, "overlap": self.overlap, "batch": self.batch, "tta": self.tta}
