"""What every SegQC dock shares: a scroll area, the status line, Run/Stop on a worker, pickers.

A dock subclasses :class:`DockWidget`, adds its own controls with :meth:`DockWidget.add`
(placing :attr:`DockWidget.run_panel` - Run/Stop, progress bar and status line - where it
wants it), and fills in the hooks:

- :meth:`DockWidget.prepare` checks the inputs (raising :class:`SegQCError`, shown in the
  status line and as a notification) and returns the generator function for the worker;
- :meth:`DockWidget.on_yielded`, :meth:`DockWidget.on_returned`, :meth:`DockWidget.on_aborted`
  and :meth:`DockWidget.on_errored` receive what the worker sends back;
- :meth:`DockWidget.on_layers_changed` runs after the layer pickers followed a layer event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from typing import Any

from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
    Widget,
)
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy, QWidget

from ..core.errors import SegQCError
from .pickers import LayerPickers, narrow

#: The docks share the window's height: each keeps this much, its content scrolls.
MIN_HEIGHT = 180
ERROR_STYLE = "color: #f0606d;"  # readable on napari's dark and light themes
ZERO_WIDTH_SPACE = "\u200b"
#: A run of this many characters with no break opportunity gets one (display only).
LONGEST_RUN = 24
_AFTER_SEPARATOR = re.compile(rf"([/\\_])(?=[^\s{ZERO_WIDTH_SPACE}])")
_LONG_RUN = re.compile(rf"[^\s{ZERO_WIDTH_SPACE}]{{{LONGEST_RUN}}}(?=[^\s{ZERO_WIDTH_SPACE}])")


def breakable(text: str) -> str:
    """``text`` with zero-width spaces after ``/``, ``\\`` and ``_`` and inside long unbroken
    runs, so that a wrapping label can break a long path (the text itself is unchanged)."""
    text = _AFTER_SEPARATOR.sub(rf"\1{ZERO_WIDTH_SPACE}", text)
    return _LONG_RUN.sub(lambda m: m.group(0) + ZERO_WIDTH_SPACE, text)


def wrapping(label: Label) -> Label:
    """Make a label wrap its text to the dock's width instead of widening the dock."""
    native = label.native
    native.setWordWrap(True)
    native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
    policy.setHeightForWidth(True)
    native.setSizePolicy(policy)
    native.setMinimumWidth(0)
    return label


class StatusLine(Label):
    """The dock's status line: plain text that wraps, errors in red.

    ``value`` is the message itself; the label shows it with break opportunities added.
    """

    def __init__(self) -> None:
        self._text = ""
        self.is_error = False
        super().__init__(value="")
        self.native.setTextFormat(Qt.TextFormat.PlainText)
        self.native.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        wrapping(self)

    def get_value(self) -> str:
        return self._text

    def set_value(self, value: Any) -> None:
        self.show_text(str(value))

    def show_text(self, text: str = "", *, error: bool = False) -> None:
        """Show ``text`` (as an error: in red), replacing what was there."""
        self._text, self.is_error = text, error
        super().set_value(breakable(text))
        self.native.setStyleSheet(ERROR_STYLE if error else "")
        self.native.setVisible(bool(text))


class DockWidget(Container):
    """Base of the SegQC docks; see the module's docstring for what a dock fills in."""

    #: What the dock's worker does, for messages: "SegQC <task> failed: ...".
    task = "run"
    #: The status while the worker runs.
    busy_text = "running..."

    def __init__(self, napari_viewer, *, run_text: str = "Run", stop_text: str = "Stop") -> None:
        super().__init__(labels=False)
        self.margins = (0, 0, 0, 0)
        self.viewer = napari_viewer
        self._worker: GeneratorWorker | None = None
        self.pickers = LayerPickers(napari_viewer, self.reset_choices, self.on_layers_changed)

        #: The dock's content; it scrolls when the dock is short (docks share the height).
        self.body = Container(labels=False, scrollable=True)
        scroll = self.body.root_native_widget
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setMinimumHeight(MIN_HEIGHT)
        self._fit_width = _FitWidth(scroll)
        self.body.native.layout().addStretch(1)  # spare height at the bottom, not in between
        self.native.layout().addWidget(scroll)

        self.run_button = PushButton(text=run_text)
        self.stop_button = PushButton(text=stop_text, enabled=False)
        self.progress = ProgressBar(value=0, max=1, visible=False)
        self.status = StatusLine()
        buttons = Container(
            widgets=[self.run_button, self.stop_button], layout="horizontal", labels=False
        )
        buttons.margins = (0, 0, 0, 0)
        #: Run/Stop, progress bar and status line: the dock puts it where it wants.
        self.run_panel = Container(widgets=[buttons, self.progress, self.status], labels=False)
        self.run_panel.margins = (0, 0, 0, 0)
        self.run_button.changed.connect(self.run)
        self.stop_button.changed.connect(self.stop)

    # --- layout ----------------------------------------------------------------------------
    def add(self, *parts: Widget | QWidget) -> None:
        """Append magicgui widgets (a labelled Container for a form) or Qt widgets to the dock.

        Combo boxes in them are made narrow-able, so that a long item never widens the dock, and
        file pickers get a short "Browse..." button, so that the path gets the room.
        """
        for part in parts:
            if not isinstance(part, Widget):
                box = Container(labels=False)
                box.margins = (0, 0, 0, 0)
                box.native.layout().addWidget(part)
                part = box
            self.body.append(part)
            for widget in _leaves(part):
                if isinstance(widget, ComboBox):
                    narrow(widget)
                elif isinstance(widget, FileEdit):
                    widget.choose_btn.text = "Browse..."

    def layer_picker(self, label: str, *kinds: type, exact: bool = False, **kwargs):
        """A ComboBox of the viewer's layers of ``kinds`` that keeps its layer on renames."""
        return self.pickers.picker(label, kinds, exact=exact, **kwargs)

    def reset_choices(self, *_: Any) -> None:
        """Refresh every choice list (napari calls this on layer events too), keeping picks."""
        if not hasattr(self, "body"):  # magicgui calls this while the dock is being built
            return
        with self.pickers.keeping_picks():
            self.body.reset_choices()

    def on_layers_changed(self, event) -> None:
        """Hook: a layer was inserted, removed, reordered or renamed (pickers refreshed)."""

    # --- messages --------------------------------------------------------------------------
    def set_status(self, text: str) -> None:
        """Replace the status line (an error shown there is cleared)."""
        self.status.show_text(text)

    def show_error(self, message: str) -> None:
        """An error: in the status line (red) and as a napari notification."""
        self.status.show_text(message, error=True)
        _notify(show_error, message)

    def show_warning(self, message: str) -> None:
        """A warning: in the status line and as a napari warning notification."""
        self.status.show_text(message.removeprefix("SegQC: "))
        _notify(show_warning, message)

    def show_info(self, message: str, status: str | None = None) -> None:
        """A notification, also in the status line (or ``status`` there instead)."""
        self.status.show_text(message.removeprefix("SegQC: ") if status is None else status)
        _notify(show_info, message)

    # --- the worker ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return not self.run_button.enabled

    def prepare(self) -> Callable[[], Generator]:
        """Hook: check the inputs (raise :class:`SegQCError`), return the worker's generator
        function (arguments bound, e.g. with :func:`functools.partial`)."""
        raise NotImplementedError

    def run(self) -> None:
        """Check the inputs (a message if they will not do), then run the job in a worker."""
        if self.running:
            return
        try:
            job = self.prepare()
        except SegQCError as exc:
            self.show_error(str(exc))
            return
        self.start_job(job)

    def start_job(self, job: Callable[[], Generator], busy_text: str | None = None) -> None:
        """Run ``job`` (a generator function) in the dock's worker: Run/Stop, progress, the
        hooks; :meth:`run` starts the job :meth:`prepare` returns, a dock may start others."""
        if self.running:
            return
        self.set_progress(0, 1)
        self.progress.visible = True
        self.set_status(busy_text or self.busy_text)
        self.set_running(True)
        self._worker = create_worker(
            job,
            _worker_class=GeneratorWorker,
            _progress={"desc": f"SegQC {self.task}"},
            _connect={
                "yielded": self.on_yielded,
                "returned": self.on_returned,
                "errored": self.on_errored,  # handled here: not re-raised in the GUI thread
                "aborted": self.on_aborted,
                "warned": self.on_warned,
                "finished": self._on_finished,
            },
            _start_thread=False,
        )
        self._worker.start()

    def stop(self) -> None:
        """Ask the worker to quit at its next yield (it then sends ``aborted``)."""
        if self._worker is not None and self.running:
            self._worker.quit()

    def set_running(self, running: bool) -> None:
        self.run_button.enabled = not running
        self.stop_button.enabled = running
        if not running:
            self.progress.visible = False

    def set_progress(self, done: int, total: int) -> None:
        self.progress.max = max(int(total), 1)
        self.progress.value = int(done)

    def on_yielded(self, value: Any) -> None:
        """Hook: a value the worker yielded (progress)."""

    def on_returned(self, result: Any) -> None:
        """Hook: what the worker returned."""

    def on_aborted(self) -> None:
        """Hook: the worker stopped before it was done (Stop)."""
        self.set_status(f"{self.task} stopped")

    def on_errored(self, exc: Exception) -> None:
        """The worker raised: the message in the status line and as a notification."""
        self.show_error(f"SegQC {self.task} failed: {exc}")

    def on_warned(self, warning) -> None:
        """A warning the worker raised (e.g. smaller tiles after running out of memory)."""
        _notify(show_warning, f"SegQC: {warning.message}")

    def on_finished(self) -> None:
        """Hook: the worker ended (done, stopped or failed); Run is enabled again."""

    def _on_finished(self) -> None:
        self.set_running(False)
        self.on_finished()


def _notify(show: Callable[[str], None], message: str) -> None:
    """Show a napari notification, then make sure its one collapsed line is not clipped."""
    show(message)
    unclip_notifications()


def unclip_notifications() -> None:
    """Give napari's collapsed notifications the height of a full line of text.

    napari (0.9) shows a notification collapsed to one line in a label whose contents are
    1-2 px shorter than a line of the font, which cuts off the lowest pixels: underscores
    vanish ("nuclei_04" reads "nuclei 04"). The text itself is left as it is (it is plain
    text, not markdown); only the notification widgets grow by the missing pixels.
    """
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification
    except ImportError:  # pragma: no cover - napari without Qt
        return
    for note in list(getattr(NapariQtNotification, "_instances", ())):
        try:
            _unclip(note)
        except (AttributeError, RuntimeError):  # another napari version; a deleted widget
            continue


def _unclip(note) -> None:
    label = note.message
    note.layout().activate()  # the label's height as the notification lays it out now
    margins = label.contentsMargins()
    missing = label.fontMetrics().height() + margins.top() + margins.bottom() - label.height()
    if missing <= 0 or note.property("expanded"):
        return
    note.setMinimumHeight(note.minimumHeight() + missing)
    geometry = note.geometry()
    geometry.setTop(geometry.top() - missing)  # grows upwards: its bottom edge stays
    note.setGeometry(geometry)
    animation = getattr(note, "geom_anim", None)
    if animation is not None and animation.state() == animation.State.Running:
        end = animation.endValue()
        end.setTop(end.top() - missing)
        animation.setEndValue(end)


class _FitWidth(QObject):
    """Keep a scroll area at least as wide as its content's minimum (plus the scroll bar), so
    that content is never clipped: it scrolls vertically only."""

    def __init__(self, scroll: QScrollArea) -> None:
        super().__init__(scroll)
        self.scroll = scroll
        scroll.widget().installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            bar = self.scroll.verticalScrollBar().sizeHint().width()
            frame = 2 * self.scroll.frameWidth()
            self.scroll.setMinimumWidth(obj.minimumSizeHint().width() + bar + frame)
        return False


def _leaves(widget: Widget):
    """The widgets in a widget (itself, or a container's, recursively; a FileEdit is one)."""
    if isinstance(widget, Container) and not isinstance(widget, FileEdit):
        for child in widget:
            yield from _leaves(child)
    else:
        yield widget
