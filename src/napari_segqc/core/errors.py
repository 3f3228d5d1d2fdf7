"""Errors that carry a message meant for the user (shown in napari or on the command line)."""


class SegQCError(ValueError):
    """Bad input or settings; the message says what was wrong and what to do."""


class Stopped(RuntimeError):
    """Raised inside long work when the user asked it to stop."""
