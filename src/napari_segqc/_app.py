"""Open napari with the SegQC widgets and a sample to check; or run that job headless.

``python -m napari_segqc`` opens the viewer with the dense DSB 2018 sample (image, ground truth,
classical segmentation) and the Quality control widget. ``--headless DIR`` does the same in a
hidden viewer, runs quality control, and writes ``qc_widget.png`` (a screenshot of the whole
window), ``qc_report.json`` and ``qc_scores.csv`` into DIR.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

SAMPLE = "nuclei_dense"


def _viewer(show: bool):
    import napari

    viewer = napari.Viewer(title="napari-segqc", show=show)
    viewer.open_sample("napari-segqc", SAMPLE)
    _, widget = viewer.window.add_plugin_dock_widget("napari-segqc", "Quality control")
    return viewer, widget


def run_headless(out: Path, timeout: float = 300.0) -> int:
    """Run quality control on the sample in a hidden viewer; write screenshot, report, CSV."""
    from qtpy.QtWidgets import QApplication

    from .core.io import write_text
    from .core.report import to_json

    viewer, widget = _viewer(show=False)
    viewer.window._qt_window.resize(1500, 950)
    viewer.window._qt_window.grab()  # a hidden window lays itself out only when drawn
    viewer.reset_view()  # fit the image to the canvas at its final size
    widget.run()
    start = time.monotonic()
    while not widget.run_button.enabled:  # the worker's finished handler re-enables Run
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            print("segqc: quality control did not finish in time")
            return 1
    for _ in range(25):  # let the canvas draw the new layers
        QApplication.processEvents()
        time.sleep(0.02)
    if widget.report is None:
        print("segqc: quality control failed (see the message above)")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    from skimage.io import imsave

    imsave(out / "qc_widget.png", viewer.screenshot(canvas_only=False, flash=False))
    write_text(out / "qc_report.json", to_json(widget.report, indent=2) + "\n")
    widget.export_csv(str(out / "qc_scores.csv"))
    obj = widget.report["objects"]["0.50"]
    print(f"{widget.report['name']}: F1@0.50 {obj['f1']:.3f}, accuracy {obj['accuracy']:.3f}")
    print(f"wrote {out}/qc_widget.png, qc_report.json, qc_scores.csv")
    viewer.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_segqc", description=__doc__)
    parser.add_argument("--headless", metavar="DIR", help="no window: run QC, write results")
    args = parser.parse_args(argv)
    if args.headless:
        return run_headless(Path(args.headless))
    import napari

    _viewer(show=True)
    napari.run()
    return 0
