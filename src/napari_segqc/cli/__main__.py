"""``python -m napari_segqc.cli ...`` (e.g. under ``torchrun -m napari_segqc.cli train ...``)."""

import sys

from napari_segqc.cli.main import main

sys.exit(main())
