import sys

from napari_segqc._app import main

sys.exit(main())
