"""Import hygiene: the core never loads napari or Qt; the package import stays light."""

import subprocess
import sys

import pytest

CORE_MODULES = [
    "baseline",
    "errors",
    "io",
    "matching",
    "metrics",
    "pixel",
    "qc",
    "report",
    "similarity",
]


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_loads_no_napari_or_qt(module):
    loaded = _loaded_after(f"import napari_segqc.core.{module}")
    gui = {
        m
        for m in loaded
        if m.split(".")[0]
        in {
            "napari",
            "qtpy",
            "PyQt6",
            "PyQt5",
            "PySide6",
            "PySide2",
            "magicgui",
            "superqt",
            "vispy",
        }
    }
    assert f"napari_segqc.core.{module}" in loaded
    assert not gui, f"core.{module} imported GUI modules: {sorted(gui)[:5]}"


def test_package_import_is_light():
    loaded = _loaded_after("import napari_segqc")
    assert "napari_segqc" in loaded
    heavy = {"torch", "napari", "qtpy", "skimage", "segmentation_models_pytorch"} & {
        m.split(".")[0] for m in loaded
    }
    assert not heavy, f"import napari_segqc loaded {sorted(heavy)}"
