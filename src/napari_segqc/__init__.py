"""napari-segqc: nuclei segmentation with U-Nets and quality control in napari.

Importing the package stays light: no torch, napari or Qt is imported here. The computing
engine lives in :mod:`napari_segqc.core`, the command line in :mod:`napari_segqc.cli` and the
dock widgets in :mod:`napari_segqc._widgets`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
