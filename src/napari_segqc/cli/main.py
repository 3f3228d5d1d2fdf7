"""The ``segqc`` command line: one module per command, a thin layer over
:mod:`napari_segqc.core`.

Bad input ends with a one-line message on stderr and a non-zero exit code, never a traceback.
Every option says what it does and shows its default in ``--help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import demo, evaluate, explain, export, landscape, lr_find, predict, qc, train, tune

EXIT_ERROR = 1
#: The commands, in the order ``segqc --help`` lists them.
COMMANDS = (qc, train, lr_find, predict, evaluate, tune, export, explain, landscape, demo)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help already says its default
    (options without a value, such as flags, have none to show)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        no_value = action.default is None or action.default is argparse.SUPPRESS
        no_value = no_value or action.nargs == 0  # flags
        if no_value or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An argument parser whose help shows the defaults (commands get it too)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def version() -> str:
    """The installed package's version (its metadata: the one in pyproject.toml)."""
    from .. import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="segqc",
        description="Nuclei segmentation and quality control (napari-segqc): train, segment, "
        "and score segmentations against ground truth.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version()}", help="print the version"
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``segqc``; returns the exit code."""
    from ..core.errors import SegQCError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SegQCError, OSError, ValueError) as exc:
        print(f"segqc {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"segqc {args.command}: interrupted", file=sys.stderr)
        return 130
