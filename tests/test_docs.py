"""The README documents every command and every option a person can type."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

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


def help_text(*args: str) -> str:
    """`chert-batch ARGS --help` as an 80-column terminal shows it."""
    result = CliRunner().invoke(main, [*args, "--help"], prog_name="chert-batch", terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("args", [(), *((name,) for name in COMMANDS)])
def test_help_fits_80_columns_and_names_values_in_words(args: tuple[str, ...]) -> None:
    """No help line is cut or wider than 80 columns; values are words, not click's types."""
    text = help_text(*args)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert not [line for line in text.splitlines()[1:] if "..." in line]  # nothing cut short
    for jargon in ("FLOAT", "INTEGER", "TEXT", "RANGE", "PATH", "x>=", "<=x", "x>0"):
        assert jargon not in text, f"{jargon!r} in chert-batch {' '.join(args)} --help"


def test_command_list_in_order_of_use_with_whole_descriptions() -> None:
    """The top-level list: validate, run, sandbox, each with its whole description."""
    text = help_text()
    listed = text.split("Commands:\n")[1].splitlines()
    assert listed[:3] == [
        "  validate  Check a handoff file and write its results sheet; send nothing.",
        "  run       Send a handoff file: exactly once, paced, resumable.",
        "  sandbox   Serve a local Chert-compatible API, for trying things out.",
    ]
    assert "chert-batch run samples/contacts.xlsx --sandbox" in text


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("run", "--rate PER_SECOND"),
        ("run", "--timeout SECONDS"),
        ("run", "--max-wait SECONDS"),
        ("run", "--concurrency N"),
        ("run", "--journal FILE"),
        ("run", "--tenant SLUG"),
        ("run", "--base-url URL"),
        ("validate", "--region CODE"),
        ("validate", "--from NUMBER"),
        ("validate", "--out FILE"),
        ("validate", "--sheet NAME"),
        ("validate", "--campaign NAME"),
        ("sandbox", "--port PORT"),
        ("sandbox", "--line-gap SECONDS"),
        ("sandbox", "--lines NUMBERS"),
        ("sandbox", "--p503 P"),
    ],
)
def test_option_values_read_as_words(command: str, shown: str) -> None:
    """Each option shows what it takes: --rate PER_SECOND, --timeout SECONDS, ..."""
    assert f"  {shown}  " in help_text(command)


@pytest.mark.parametrize("command", ["run", "validate", "sandbox"])
def test_help_ends_with_examples(command: str) -> None:
    """run, validate and sandbox --help end with two or three examples to copy."""
    examples = help_text(command).split("Examples:\n")[1]
    commands = [line.strip() for line in examples.splitlines() if line.startswith("    chert")]
    assert 2 <= len(commands) <= 3
    assert all(line.startswith(f"chert-batch {command} ") for line in commands)
