"""The README documents every command and every option a person can type."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from batcher.cli import main

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(main.commands)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_documented(name: str) -> None:
    """Each command is in the README's table of commands."""
    assert f"`chert-batch {name}" in README


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (name, option)
        for name in COMMANDS
        for param in main.commands[name].params
        if isinstance(param, click.Option) and not param.hidden
        for option in param.opts
        if option.startswith("--") and option != "--help"
    ],
)
def test_option_documented(command: str, option: str) -> None:
    """Each long option of each command is named in the README."""
    assert f"`{option}" in README, f"{command} {option} is not in the README"
