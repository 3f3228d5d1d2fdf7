"""The README's main job headless: napari with the sample, QC run, results written."""

import json
import os
import subprocess
import sys

import numpy as np
from skimage.io import imread


def test_headless_main_job_writes_screenshot_and_report(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "xcb")}
    done = subprocess.run(
        [sys.executable, "-m", "napari_segqc", "--headless", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "qc_report.json").read_text())
    assert report["name"] == "nuclei_04 classical vs nuclei_04 ground truth"
    assert 0.5 < report["objects"]["0.50"]["f1"] < 0.95  # a classical baseline: fair, not perfect
    shot = imread(tmp_path / "qc_widget.png")
    assert shot.ndim == 3 and shot.shape[0] > 500
    assert np.asarray(shot[..., :3]).std() > 10  # a real picture, not a blank/black frame
    assert (tmp_path / "qc_scores.csv").read_text().startswith("name,f1")
