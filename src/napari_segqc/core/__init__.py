"""The computing engine: numpy, scipy, scikit-image and torch only (no napari, no Qt).

One folder per capability: :mod:`.qc` (quality control), :mod:`.train` (training),
:mod:`.predict` (prediction), :mod:`.models` (networks and weights files) and :mod:`.instances`
(labels to targets and maps back to labels); shared at the top: :mod:`.errors`, :mod:`.io` and
:mod:`.device`. Submodules are imported on use, so that ``import napari_segqc.core`` stays
cheap.
"""
