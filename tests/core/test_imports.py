"""Import hygiene: the core never loads napari or Qt; the package import stays light."""

import subprocess
import sys
from pathlib import Path

import napari_segqc

#: Every module of the core (found on disk, so new ones are checked too).
CORE = Path(napari_segqc.__file__).resolve().parent / "core"
CORE_MODULES = sorted(
    ".".join(p.relative_to(CORE).with_suffix("").parts).removesuffix(".__init__")
    for p in CORE.rglob("*.py")
    if p.name != "__init__.py"
)


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


GUI = {"napari", "qtpy", "PyQt6", "PyQt5", "PySide6", "PySide2", "magicgui", "superqt", "vispy"}


def test_core_modules_load_no_napari_or_qt():
    """All core modules imported in one fresh process (the static rule is in test_layout)."""
    statement = "; ".join(f"import napari_segqc.core.{m}" for m in CORE_MODULES)
    loaded = _loaded_after(statement)
    assert {f"napari_segqc.core.{m}" for m in CORE_MODULES} <= loaded
    gui = {m for m in loaded if m.split(".")[0] in GUI}
    assert not gui, f"the core imported GUI modules: {sorted(gui)[:5]}"


def test_cli_loads_no_napari_or_qt():
    loaded = _loaded_after("import napari_segqc.cli.main")
    assert not {m for m in loaded if m.split(".")[0] in GUI}


def test_package_import_is_light():
    loaded = _loaded_after("import napari_segqc")
    assert "napari_segqc" in loaded
    heavy = {"torch", "napari", "qtpy", "skimage", "segmentation_models_pytorch"} & {
        m.split(".")[0] for m in loaded
    }
    assert not heavy, f"import napari_segqc loaded {sorted(heavy)}"


def test_public_import_paths_of_version_0_1_keep_working():
    """Users' scripts import these as the README of 0.1 showed; they are the new homes' names."""
    from napari_segqc.core import qc
    from napari_segqc.core.instances import decoding
    from napari_segqc.core.metrics import dataset_report, match_objects, qc_report, ssim
    from napari_segqc.core.predict import decode_labels, load_model, loading, segment, segmentation

    assert (qc_report, ssim, match_objects, dataset_report) == (
        qc.qc_report,
        qc.ssim,
        qc.match_objects,
        qc.dataset_report,
    )
    assert load_model is loading.load_model and decode_labels is decoding.decode_labels
    assert segment is segmentation.segment
