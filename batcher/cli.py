"""The command line: parse options, call one orchestration function, render, map exit codes."""

from __future__ import annotations

import click

from batcher import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chert-batch")
def main() -> None:
    """Send a spreadsheet of messages through Chert, exactly once."""
