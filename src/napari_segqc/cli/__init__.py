"""The ``segqc`` command line (``python -m napari_segqc.cli`` runs it too).

One module per command: :mod:`.qc`, :mod:`.train`, :mod:`.predict`, :mod:`.demo`; the parser
and the entry point are in :mod:`.main`.
"""

from .main import main

__all__ = ["main"]
