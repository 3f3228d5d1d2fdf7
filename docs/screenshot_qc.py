"""Screenshot of the Quality control widget for the README: ``docs/images/qc_widget.png``.

Opens a hidden napari viewer with the dense nuclei sample (image, ground truth, classical
segmentation), runs quality control from the dock widget and saves the whole window (a hidden
viewer's canvas-only screenshot is black, so the window is captured)::

    python docs/screenshot_qc.py            # needs a display; on a server: xvfb-run -a python ...
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

OUT = Path(__file__).parent / "images" / "qc_widget.png"


def _wait(condition, timeout: float) -> None:
    from qtpy.QtWidgets import QApplication

    start = time.monotonic()
    while not condition():
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            raise TimeoutError("quality control did not finish in time")


def save_window(viewer, widget, out: Path, dock_width: int) -> None:
    """Give the widget's dock ``dock_width`` pixels, fit the image to the canvas and save the
    whole window as a PNG."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QDockWidget
    from skimage.io import imsave

    qt_window = viewer.window._qt_window
    dock = widget.native
    while not isinstance(dock, QDockWidget):
        dock = dock.parent()
    qt_window.resizeDocks([dock], [dock_width], Qt.Orientation.Horizontal)
    qt_window.grab()  # a hidden window lays itself out only when drawn: size the canvas now
    viewer.reset_view()  # then fit the image to the canvas at its final size
    deadline = time.monotonic() + 0.5
    _wait(lambda: time.monotonic() > deadline, timeout=5)  # let the canvas draw the new layers
    out.parent.mkdir(parents=True, exist_ok=True)
    imsave(out, viewer.screenshot(canvas_only=False, flash=False), check_contrast=False)


def main(out: Path = OUT, size: tuple[int, int] = (1600, 950), dock_width: int = 560) -> Path:
    import napari

    viewer = napari.Viewer(title="napari-segqc", show=False)
    viewer.open_sample("napari-segqc", "nuclei_dense")
    _, widget = viewer.window.add_plugin_dock_widget("napari-segqc", "Quality control")
    viewer.window._qt_window.resize(*size)
    widget.run()
    _wait(lambda: widget.run_button.enabled, timeout=300)
    if widget.report is None:
        raise RuntimeError("quality control failed: see the notification above")
    save_window(viewer, widget, out, dock_width)
    viewer.close()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"PNG file (default {OUT})")
    print(f"wrote {main(parser.parse_args().out)}")
