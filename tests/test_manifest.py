"""The napari manifest: valid, and the packaged manifest is the top-level file."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

import napari_segqc

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(napari_segqc.__file__).parent


def test_packaged_manifest_is_the_top_level_file():
    packaged = PACKAGE / "napari.yaml"
    assert packaged.is_symlink()
    assert packaged.resolve() == (ROOT / "napari.yaml").resolve()


def test_manifest_validates_and_commands_import():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-segqc")
    assert manifest.name == "napari-segqc"
    assert manifest.display_name == "SegQC"
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        obj = __import__(module, fromlist=[attr])
        assert callable(getattr(obj, attr)), command.python_name


def test_manifest_declares_widget_and_samples():
    data = yaml.safe_load((ROOT / "napari.yaml").read_text())
    widgets = {w["display_name"] for w in data["contributions"]["widgets"]}
    assert {"Quality control", "Train U-Net", "Segment", "Model QC", "Explain"} <= widgets
    keys = {s["key"] for s in data["contributions"]["sample_data"]}
    assert {"nuclei", "nuclei_dense"} <= keys


def test_sample_data_is_packaged_with_attribution():
    folder = PACKAGE / "sample_data"
    images = sorted(p.name for p in (folder / "images").glob("*.tif"))
    masks = sorted(p.name for p in (folder / "masks").glob("*.tif"))
    assert len(images) >= 3 and images == masks
    assert "BBBC038v1" in (folder / "README.md").read_text()


@pytest.mark.slow
def test_wheel_holds_the_manifest_sample_data_and_model(tmp_path):
    """Symlinks are resolved into real files in the wheel a user installs from the hub."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("napari_segqc-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert z.read("napari_segqc/napari.yaml") == (ROOT / "napari.yaml").read_bytes()
        names = z.namelist()
        model = ROOT / "src" / "napari_segqc" / "core" / "models" / "nuclei.safetensors"
        assert z.read("napari_segqc/core/models/nuclei.safetensors") == model.read_bytes()
        assert z.getinfo("napari_segqc/core/models/nuclei.safetensors").file_size <= 25_000_000
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "napari-segqc = napari_segqc:napari.yaml" in entry_points
    assert "segqc = napari_segqc.cli:main" in entry_points
    for name in ("images/nuclei_01.tif", "masks/nuclei_01.tif", "LICENSE-DATA.txt"):
        assert f"napari_segqc/sample_data/{name}" in names
