"""The "Explain" dock: what the network looks at, what its filters are, where its loss is low.

Three tabs share the model picker and the Run/Stop panel (:class:`.base.DockWidget`):

- **Attribution** (:mod:`.explain_attribution`): an attribution map of an output over a
  rectangle (Shapes layer) or an object (click in a Labels layer), as a diverging Image layer;
- **Filters** (:mod:`.explain_filters`): a conv layer's kernels and their Fourier spectra as
  image grids, and the layer's feature maps for the picked image as a stack;
- **Landscape** (:mod:`.explain_landscape`): loss surfaces around the trained weights on a QC
  batch, as a contour plot and Image layers.

Every job runs in the dock's worker with progress and Stop; the work is in
:mod:`napari_segqc.core.explain`. Models run on torch (gradients): ONNX files are refused with
a message, built-in models use their torch weights.
"""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import ComboBox, Container, FileEdit
from qtpy.QtWidgets import QTabWidget

from ..core.errors import SegQCError
from ..core.models.builtin import BUILTIN_MODELS, BUILTIN_TITLES
from ..core.models.formats import MODEL_FILE_FILTER
from .base import DockWidget
from .explain_attribution import AttributionPanel
from .explain_filters import FiltersPanel
from .explain_landscape import LandscapePanel
from .layers import EXPLAIN_METADATA_KEY
from .session import TRAINED_MODELS

FILE_CHOICE = "run folder or file..."
TRAINED_PREFIX = "trained: "
BUILTIN_NAMES = {title: name for name, title in BUILTIN_TITLES.items()}


class ExplainWidget(DockWidget):
    """Attribution maps, filters and loss landscapes of a model (one tab each)."""

    task = "explain"
    busy_text = "explaining..."

    def __init__(self, napari_viewer) -> None:
        super().__init__(napari_viewer)
        self.model_combo = ComboBox(label="Model", choices=self._model_choices)
        self.model_path = FileEdit(
            label="Model file", mode="r", visible=False, filter=MODEL_FILE_FILTER
        )
        self.device = ComboBox(label="Device", choices=["auto", "cpu", "cuda", "mps"])
        form = Container(widgets=[self.model_combo, self.model_path, self.device], labels=True)
        self.attribution = AttributionPanel(self)
        self.filters = FiltersPanel(self)
        self.landscape = LandscapePanel(self)
        self.panels = (self.attribution, self.filters, self.landscape)
        self.tabs = QTabWidget()
        for panel in self.panels:
            self.tabs.addTab(panel.native, panel.title)
        self.tabs.currentChanged.connect(self._on_tab)
        self.add(form, self.tabs, self.run_panel, self.landscape.plot_box)
        self.model_combo.changed.connect(self._on_model_choice)
        self.model_path.changed.connect(lambda _v: self.filters.refresh_layers())
        self._job_panel = self.attribution
        self._on_model_choice(self.model_combo.value)
        self._on_tab(0)

    # --- model ---------------------------------------------------------------------------------
    def _model_choices(self, _w=None):
        names = [BUILTIN_TITLES.get(n, n) for n, p in BUILTIN_MODELS.items() if p.is_file()]
        names += [f"{TRAINED_PREFIX}{p}" for p in reversed(TRAINED_MODELS)]
        return [*names, FILE_CHOICE]

    def _on_model_choice(self, value) -> None:
        self.model_path.visible = value == FILE_CHOICE
        self.filters.refresh_layers()

    def model_source(self) -> str:
        """The picked model: a built-in name, a run folder or a file."""
        value = self.model_combo.value
        if value == FILE_CHOICE:
            path = Path(self.model_path.value)
            if str(path) in ("", ".") or not path.exists():
                raise SegQCError(f"choose a run folder or a model file ({path})")
            return str(path)
        if value.startswith(TRAINED_PREFIX):
            return value[len(TRAINED_PREFIX) :]
        return BUILTIN_NAMES.get(value, value)

    def model_config(self):
        """The picked model's config, read from its header (fast; no weights loaded)."""
        from ..core.predict.loading import read_config

        return read_config(self.model_source())

    def reset_choices(self, *_) -> None:
        """Refresh every choice list, the tabs' too (they live in a QTabWidget, outside the
        dock's body), keeping the picks."""
        if not hasattr(self, "panels"):  # magicgui calls this while the dock is being built
            return
        with self.pickers.keeping_picks():
            self.body.reset_choices()
            for panel in self.panels:
                panel.reset_choices()

    # --- tabs and the worker -------------------------------------------------------------------
    @property
    def current_panel(self):
        return self.panels[self.tabs.currentIndex()]

    def _on_tab(self, index: int) -> None:
        panel = self.panels[index]
        self.run_button.text = panel.run_text
        self.landscape.plot_box.visible = panel is self.landscape

    def prepare(self):
        """The current tab's job, its inputs checked (a message if they will not do)."""
        panel = self.current_panel
        job = panel.job(self.model_source(), self.device.value)
        self._job_panel = panel
        self.busy_text = panel.busy_text
        return job

    def on_yielded(self, done_total) -> None:
        self.set_progress(*done_total)

    def on_returned(self, result) -> None:
        self._job_panel.show(result)

    def on_aborted(self) -> None:
        self.set_status(f"{self._job_panel.title.lower()} stopped")

    def add_or_update(self, name: str, data, kind: str = "image", **options):
        """Put ``data`` in the layer ``name`` (replaced if this dock made it), else add it."""
        layers = self.viewer.layers
        if name in layers and layers[name].metadata.get(EXPLAIN_METADATA_KEY):
            layer = layers[name]
            layer.data = data
            for key in ("colormap", "contrast_limits", "scale", "translate"):
                if key in options:
                    setattr(layer, key, options[key])
            return layer
        add = self.viewer.add_image if kind == "image" else self.viewer.add_labels
        return add(data, name=name, metadata={EXPLAIN_METADATA_KEY: True}, **options)
