"""Open napari with the SegQC widgets and a sample to segment and check; or take screenshots.

``python -m napari_segqc`` opens the viewer with the dense DSB 2018 sample (image, ground truth,
classical segmentation), the Segment widget (built-in model) and the Quality control widget.
``--screenshots DIR`` runs that loop in a hidden viewer - Segment, then Quality control of the
labels against the ground truth - and saves screenshots of the window (``segqc demo`` uses it).
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
    dock_segment, segment = viewer.window.add_plugin_dock_widget("napari-segqc", "Segment")
    dock_qc, qc = viewer.window.add_plugin_dock_widget("napari-segqc", "Quality control")
    viewer.window._qt_window.tabifyDockWidget(dock_segment, dock_qc)
    dock_segment.raise_()
    return viewer, segment, qc, (dock_segment, dock_qc)


def _wait(widget, timeout: float) -> None:
    """Process Qt events until the widget's worker has finished (its Run button is back)."""
    from qtpy.QtWidgets import QApplication

    start = time.monotonic()
    while not widget.run_button.enabled:
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{type(widget).__name__} did not finish in {timeout:.0f} s")
    _settle()


def _settle(frames: int = 25) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(frames):  # let the canvas draw new layers
        QApplication.processEvents()
        time.sleep(0.02)


def take_screenshots(out: Path, model: str = "nuclei", device: str = "auto") -> int:
    """Segment the sample with ``model``, check it against its ground truth, save screenshots."""
    from skimage.io import imsave

    from ._widgets.segment_widget import BUILTIN_NAMES, FILE_CHOICE

    viewer, segment, qc, (_, dock_qc) = _viewer(show=False)
    window = viewer.window._qt_window
    window.resize(1600, 1000)
    window.grab()  # a hidden window lays itself out only when drawn
    image = viewer.layers[0]
    viewer.layers.remove(f"{image.name} classical")
    titles = {name: title for title, name in BUILTIN_NAMES.items()}
    if model in titles:
        segment.model_combo.value = titles[model]
    else:
        segment.model_combo.value = FILE_CHOICE
        segment.model_path.value = model
    segment.device.value = device
    segment.image_combo.value = image
    viewer.reset_view()  # fit the image to the canvas at its final size
    segment.run()
    _wait(segment, timeout=600)
    name = f"{image.name} labels"
    labels = next((layer for layer in viewer.layers if layer.name == name), None)
    if labels is None or segment.probs is None:
        print("segqc: segmentation failed (see the message above)")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    shots = {}
    shots["1_segment.png"] = viewer.screenshot(canvas_only=False, flash=False)

    dock_qc.raise_()
    qc.reset_choices()
    qc.pred_combo.value = labels
    qc.gt_combo.value = viewer.layers[f"{image.name} ground truth"]
    qc.run()
    _wait(qc, timeout=600)
    if qc.report is None:
        print("segqc: quality control failed (see the message above)")
        return 1
    shots["2_qc_error_map.png"] = viewer.screenshot(canvas_only=False, flash=False)
    for layer in viewer.layers:
        if layer.name.startswith("Error map"):
            layer.visible = False
        if layer.name.startswith("Object IoU"):
            layer.visible = True
    _settle()
    shots["3_qc_object_iou.png"] = viewer.screenshot(canvas_only=False, flash=False)
    for name, shot in shots.items():
        imsave(out / name, shot, check_contrast=False)
    obj = qc.report["objects"]["0.50"]
    print(
        f"{image.name}: {int(labels.data.max())} objects; F1@0.50 {obj['f1']:.3f}, "
        f"accuracy {obj['accuracy']:.3f}"
    )
    print(f"wrote {', '.join(str(out / n) for n in shots)}")
    viewer.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_segqc", description=__doc__)
    parser.add_argument("--screenshots", metavar="DIR", help="no window: run, save screenshots")
    parser.add_argument("--model", default="nuclei", help="for --screenshots (default: nuclei)")
    parser.add_argument("--device", default="auto", help="for --screenshots")
    args = parser.parse_args(argv)
    if args.screenshots:
        return take_screenshots(Path(args.screenshots), args.model, args.device)
    import napari

    _viewer(show=True)
    napari.run()
    return 0
