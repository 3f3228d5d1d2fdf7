"""napari-segqc: nuclei segmentation with U-Nets and quality control in napari.

Importing the package stays light: no torch, napari or Qt is imported here. The computing
engine lives in :mod:`napari_segqc.core`, the command line in :mod:`napari_segqc.cli` and the
dock widgets in :mod:`napari_segqc._widgets`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-segqc")  # one source: pyproject.toml
except PackageNotFoundError:  # pragma: no cover - running from a source tree not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
