"""``segqc demo``: the whole loop on the bundled samples, without a display.

1. Segment every sample image with a model (the built-in ``nuclei`` by default) and write the
   labels as ``labels/<name>.tif``.
2. Score them against the samples' ground truth: ``qc_report.json`` and ``qc_scores.csv``.
3. Screenshots of napari doing the same with the dock widgets (Segment, then Quality control,
   error and object-IoU maps): ``screenshots/*.png``. They are made by ``python -m
   napari_segqc --screenshots`` in a child process, under ``xvfb-run`` when there is no display.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from .common import add_device_options, output_folder


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="segment the sample images, check them against ground truth, take screenshots",
        description="End to end on the bundled DSB 2018 samples: labels, QC report, and "
        "screenshots of the napari widgets with the error maps (works without a display).",
    )
    p.add_argument(
        "--out", default="segqc_demo", metavar="DIR", help="folder for labels, report, screenshots"
    )
    p.add_argument("--model", default="nuclei", help="built-in name, run folder or file")
    add_device_options(p, precision=False)
    p.add_argument("--no-screenshots", action="store_true", help="skip the napari part")
    p.set_defaults(func=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    from .._sample_data import load_sample, sample_names
    from ..core.device import pick_device
    from ..core.io import write_text, write_tiff
    from ..core.predict.loading import load_model
    from ..core.predict.segmentation import segment
    from ..core.qc.report import dataset_report, scores_csv, to_json
    from ..core.qc.run import run_qc
    from .qc import summary_line

    out = output_folder(args.out)
    device = pick_device(args.device)
    loaded = load_model(args.model, device)
    print(f"model: {loaded.path} ({loaded.config.model.encoder} {loaded.config.model.arch})")
    entries = []
    for name in sample_names():
        image, gt = load_sample(name)
        labels, _ = segment(loaded, image)  # bf16 autocast on the CPU
        write_tiff(out / "labels" / f"{name}.tif", labels.astype(np.uint16))
        report = run_qc(gt, labels, name=name, maps=False).report
        entries.append(report)
        print(summary_line(report, 0.5), flush=True)
    report = dataset_report(entries)
    write_text(out / "qc_report.json", to_json(report, indent=2) + "\n")
    write_text(out / "qc_scores.csv", scores_csv(report, 0.5))
    print(summary_line({"name": "all samples", **report["summary"]}, 0.5))
    print(f"wrote {out}/labels/*.tif, qc_report.json, qc_scores.csv")
    if args.no_screenshots:
        return 0
    return screenshots_in_child(out / "screenshots", args.model, args.device)


def screenshots_in_child(out: Path, model: str, device: str) -> int:
    """Run the napari part in a child process (under Xvfb when there is no display)."""
    from ..core.errors import SegQCError

    command = [sys.executable, "-m", "napari_segqc", "--screenshots", str(out)]
    command += ["--model", model, "--device", device]
    no_display = (
        sys.platform.startswith("linux")
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
    )
    if no_display:
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            raise SegQCError(
                "no display for the screenshots: install xvfb (apt install xvfb) or pass "
                "--no-screenshots (labels and the QC report are written)"
            )
        command = [xvfb, "-a", *command]
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise SegQCError(f"the napari screenshots failed (exit code {done.returncode})")
    return 0
