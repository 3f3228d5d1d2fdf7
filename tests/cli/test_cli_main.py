"""The `segqc` entry point: version, help text of every option, `python -m napari_segqc.cli`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import version

import pytest

from napari_segqc.cli import main
from napari_segqc.cli.main import build_parser


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_version_comes_from_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"segqc {version('napari-segqc')}"


def test_every_command_is_listed():
    assert {"qc", "train", "predict", "demo"} <= set(_commands())


@pytest.mark.parametrize("command", ["qc", "train", "predict", "demo"])
def test_every_option_has_help_and_shows_its_default(command):
    parser = _commands()[command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[-1]
        assert action.help, f"segqc {command} {name} has no help text"
        takes_value = action.nargs != 0
        if takes_value and not action.required:
            shown = parser.formatter_class("x")._get_help_string(action) % {
                "default": action.default
            }
            assert "default" in shown, f"segqc {command} {name}: help shows no default"


def test_help_appends_defaults_once(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 1024)" in text and "(default: 64)" in text
    assert "(default: the model's)" in text  # said by the help itself, not appended again
    assert "(default: None)" not in text


def test_python_dash_m_runs_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "napari_segqc.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"segqc {version('napari-segqc')}"
