"""The README's main job without a display: `segqc demo` (built-in model, QC, screenshots)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from skimage.io import imread

from napari_segqc._sample_data import sample_names
from napari_segqc.cli.demo import screenshots_in_child
from napari_segqc.core.errors import SegQCError


def test_demo_segments_checks_and_takes_screenshots(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "xcb")}
    done = subprocess.run(
        [sys.executable, "-m", "napari_segqc.cli", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=480,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in sample_names():
        labels = tifffile.imread(tmp_path / "labels" / f"{name}.tif")
        assert labels.dtype == np.uint16 and labels.max() >= 3
    report = json.loads((tmp_path / "qc_report.json").read_text())
    assert len(report["images"]) == 4
    # the built-in model on the samples (they are DSB 2018 training images, so this checks
    # that the bundled weights load and work, not how well they generalise)
    assert report["summary"]["objects"]["0.50"]["accuracy"] > 0.6
    assert "all samples" in done.stdout
    assert (tmp_path / "qc_scores.csv").read_text().startswith("name,f1")
    shots = sorted((tmp_path / "screenshots").glob("*.png"))
    assert [p.name for p in shots] == [
        "1_segment.png",
        "2_qc_error_map.png",
        "3_qc_object_iou.png",
    ]
    previous = None
    for path in shots:
        shot = np.asarray(imread(path))[..., :3]
        assert shot.shape[0] > 500 and shot.std() > 10  # a real picture, not a blank frame
        assert previous is None or np.abs(shot.astype(int) - previous).mean() > 1  # changed
        previous = shot.astype(int)


def test_demo_without_display_or_xvfb_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("shutil.which", lambda _name: None)
    if not sys.platform.startswith("linux"):
        pytest.skip("the display check is for Linux")
    with pytest.raises(SegQCError, match=r"apt install xvfb.*--no-screenshots"):
        screenshots_in_child(tmp_path, "nuclei", "cpu")
    assert not (tmp_path / "1_segment.png").exists()
