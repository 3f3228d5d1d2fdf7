"""The computing engine: numpy, scipy, scikit-image and torch only (no napari, no Qt).

Submodules are imported on use so that ``import napari_segqc.core`` stays cheap; the public
quality-control functions are gathered in :mod:`napari_segqc.core.metrics`.
"""
