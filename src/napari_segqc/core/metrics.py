"""The quality-control functions under their first public name (``napari_segqc.core.metrics``,
as in the README since version 0.1); they live in :mod:`napari_segqc.core.qc`."""

from .qc import *  # noqa: F403
from .qc import __all__  # noqa: F401
