"""The napari manifest: valid, and the packaged manifest is the top-level file."""

from pathlib import Path

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
    assert "Quality control" in widgets
    keys = {s["key"] for s in data["contributions"]["sample_data"]}
    assert {"nuclei", "nuclei_dense"} <= keys


def test_sample_data_is_packaged_with_attribution():
    folder = PACKAGE / "sample_data"
    images = sorted(p.name for p in (folder / "images").glob("*.tif"))
    masks = sorted(p.name for p in (folder / "masks").glob("*.tif"))
    assert len(images) >= 3 and images == masks
    assert "BBBC038v1" in (folder / "README.md").read_text()
