"""The `palette` command's help: every option of every subcommand (nested ones included) says what
it does and shows its default; `palette --version` answers."""

from __future__ import annotations

import argparse
import importlib

import pytest

import palette
from palette.cli import SUBCOMMANDS, main, subcommand_parser


def options(parser: argparse.ArgumentParser, prefix: str):
    """(command, parser, action) for every documented option, nested subcommands included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, nested in action.choices.items():
                yield from options(nested, f"{prefix} {name}")
        elif action.option_strings and action.help != argparse.SUPPRESS and \
                not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield prefix, parser, action


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_option_has_help_and_shows_its_default(name):
    parser = subcommand_parser(name, importlib.import_module(SUBCOMMANDS[name][0]))
    for command, owner, action in options(parser, name):
        flag = action.option_strings[-1]
        assert action.help, f"palette {command} {flag} has no help text"
        if action.default in (None, False, "", argparse.SUPPRESS) or action.required:
            continue  # nothing to show: unset, a flag, or required
        shown = owner._get_formatter()._get_help_string(action)  # the text --help prints for it
        assert "%(default)" in shown or "default" in shown.lower(), \
            f"palette {command} {flag}: its help does not show the default {action.default!r}"


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"palette {palette.__version__}"
