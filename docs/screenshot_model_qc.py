"""Screenshot of the Model QC dock for the README: ``docs/images/model_qc_widget.png``.

Opens a hidden napari viewer, evaluates two models on a QC set (folders of images and ground
truth paired by name) in the Model QC dock, shows the A-vs-B plot, opens the image where the
models disagree most and saves the whole window::

    xvfb-run -a python docs/screenshot_model_qc.py --images DIR --gt DIR --model nuclei \\
        --model RUN
"""

from __future__ import annotations

import argparse
from pathlib import Path

from screenshot_qc import _wait, save_window

OUT = Path(__file__).parent / "images" / "model_qc_widget.png"


def main(images, gt, models, out: Path = OUT, size=(1600, 1000), dock_width=600) -> Path:
    import napari

    viewer = napari.Viewer(title="napari-segqc", show=False)
    _, widget = viewer.window.add_plugin_dock_widget("napari-segqc", "Model QC")
    viewer.window._qt_window.resize(*size)
    widget.images_dir.value, widget.gt_dir.value = images, gt
    for model in models:
        widget.add_model(str(model))
    widget.run()
    _wait(lambda: widget.run_button.enabled, timeout=1800)
    if widget.evaluation is None:
        raise RuntimeError(f"evaluation failed: {widget.status.value}")
    widget.plot_choice.value = "A vs B" if len(models) > 1 else "per image"
    rows = widget.evaluation.rows
    first = [r for r in rows if r["model"] == rows[0]["model"]]
    worst = min(first, key=lambda r: r["accuracy"])
    widget.open_image(worst["model"], worst["image"])
    save_window(viewer, widget, out, dock_width)
    viewer.close()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--gt", type=Path, required=True)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--out", type=Path, default=OUT, help=f"PNG file (default {OUT})")
    args = parser.parse_args()
    print(f"wrote {main(args.images, args.gt, args.model, args.out)}")
