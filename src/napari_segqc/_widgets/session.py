"""What the dock widgets share during one napari session (so that no widget imports another)."""

from __future__ import annotations

from pathlib import Path

#: Best models trained in this session, newest last (the Train dock adds them, the Segment dock
#: offers them).
TRAINED_MODELS: list[Path] = []
