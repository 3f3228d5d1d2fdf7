"""The Train dock's learning-rate finder: an LR range test (Smith 2017) on the dock's data and
settings, in a worker with Stop; the loss-against-LR curve, and a button that puts the
suggested rate into the Learning rate box. It never writes a run folder (the work is
:func:`napari_segqc.core.train.lr_find.iter_lr_find`, which keeps everything in memory)."""

from __future__ import annotations

import threading

from magicgui.widgets import Container, PushButton
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.qt.threading import GeneratorWorker, create_worker

from ..core.errors import SegQCError
from .curves import theme_axes

FIND_TEXT, STOP_TEXT = "Find learning rate", "Stop LR test"


def _lr_find_job(load, config, steps: int, stop):
    """Worker body: load the samples (off the GUI thread), then the range test (None when
    stopped)."""
    from ..core.errors import Stopped
    from ..core.train.lr_find import iter_lr_find

    samples = load()
    try:
        return (yield from iter_lr_find(config, samples, steps=steps, stop=stop))
    except Stopped:
        return None


class LRFindPlot(FigureCanvasQTAgg):
    """Loss against learning rate of the last test (hidden until there is one)."""

    def __init__(self, theme: str = "dark") -> None:
        self.figure = Figure(figsize=(4.2, 2.6), layout="constrained")
        super().__init__(self.figure)
        self.theme = theme
        self.setMinimumHeight(220)
        self.setVisible(False)

    def show_result(self, result) -> None:
        from ..core.explain.plots import draw_lr_find

        self.figure.clear()
        draw_lr_find(self.figure, result)
        theme_axes(self.figure, self.figure.axes, self.theme)
        self.setVisible(True)
        self.draw_idle()


class LRFindRow(Container):
    """ "Find learning rate" / "Use <rate>" buttons for the Train dock (``dock``: its
    ``_loader()``, ``config()``, ``lr`` box, status line and Start button)."""

    def __init__(self, dock) -> None:
        self.dock = dock
        self.find_button = PushButton(
            text=FIND_TEXT,
            tooltip="LR range test: a few hundred steps with the rate rising exponentially on "
            "your data and settings; plots loss against rate and suggests one. Writes nothing.",
        )
        self.use_button = PushButton(text="Use suggested", enabled=False)
        super().__init__(
            widgets=[self.find_button, self.use_button], layout="horizontal", labels=False
        )
        self.margins = (0, 0, 0, 0)
        self.plot = LRFindPlot(getattr(dock.viewer, "theme", "dark"))
        self.result = None
        #: Steps of the range test (the rate rises from 1e-7 to 1 over them).
        self.steps = 200
        self.worker: GeneratorWorker | None = None
        self._stop = threading.Event()
        self.find_button.changed.connect(lambda: self.find())
        self.use_button.changed.connect(lambda: self.use_suggested())

    @property
    def running(self) -> bool:
        return self.worker is not None

    def find(self):
        """Start the range test (or stop the one running); returns the worker."""
        from ..core.train.config import check_training

        if self.running:
            self._stop.set()
            self.dock.set_status("stopping the LR test...")
            return self.worker
        if self.dock.running:
            self.dock.show_error("training is running: find the learning rate before Start")
            return None
        try:
            load, config = self.dock._loader(), self.dock.config()
            check_training(config)
        except SegQCError as exc:
            self.dock.show_error(str(exc))
            return None
        self._stop.clear()
        self.find_button.text = STOP_TEXT
        self.dock.run_button.enabled = False
        self.dock.set_status("LR test: loading data...")
        self.worker = create_worker(
            _lr_find_job,
            load,
            config,
            self.steps,
            self._stop.is_set,
            _worker_class=GeneratorWorker,
            _connect={
                "yielded": self._progress,
                "returned": self._done,
                "errored": lambda exc: self.dock.show_error(f"SegQC LR test failed: {exc}"),
                "finished": self._finished,
            },
            _start_thread=False,
        )
        self.worker.start()
        return self.worker

    def _progress(self, done_total) -> None:
        done, total = done_total
        self.dock.set_status(f"LR test: step {done} of {total}")

    def _done(self, result) -> None:
        if result is None:
            self.dock.set_status("LR test stopped")
            return
        self.result = result
        self.plot.show_result(result)
        self.use_button.text = f"Use {result.suggested:.1e}"
        self.use_button.enabled = True
        ended = " (stopped when the loss blew up)" if result.diverged else ""
        self.dock.set_status(
            f"LR test: {len(result.lrs)} steps in {result.seconds:.0f} s{ended}; suggested "
            f"learning rate {result.suggested:.1e}"
        )

    def _finished(self) -> None:
        self.worker = None
        self.find_button.text = FIND_TEXT
        self.dock.run_button.enabled = True

    def use_suggested(self) -> None:
        """Put the suggested rate into the dock's Learning rate box."""
        if self.result is not None:
            self.dock.lr.value = float(f"{self.result.suggested:.1e}")
            self.dock.set_status(f"learning rate set to {self.dock.lr.value:.1e}")
