"""`chert-batch status`: delivery, reads and replies back into a results sheet, and the funnel.

Kept apart from batcher/cli.py, whose helpers (account options, credentials, signals,
errors) it uses, and which imports it at its end: the command adds itself to `main`.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from batcher.cli import (
    _fail,
    _sandbox_from,
    _sandbox_wins_over,
    _say_stopped,
    _Stop,
    _stop_signals_raise,
    _width,
    _Worded,
    account_options,
    account_target,
    main,
    sandbox_target,
)
from batcher.errors import BatchError, UsageError
from batcher.journal import default_journal
from batcher.render import plural
from batcher.status import Stage, StatusOptions, StatusReport, percent, status_file

FUNNEL = (
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("read", "Read"),
    ("replied", "Replied"),
    ("opted_out", "Opted out"),
)


@main.command(
    short_help="Read delivery, reads and replies back into a results sheet.",
    epilog="""Examples:

\b
  chert-batch run contacts.xlsx --sandbox --yes
  chert-batch status contacts.sandbox.results.xlsx --sandbox
      the demo: what the sandbox says happened to the messages just sent
  chert-batch status contacts.results.xlsx --json
""",
)
@click.argument(
    "results", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="RESULTS"
)
@account_options
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="PER_SECOND",
    cls=_Worded,
    default=10,
    show_default=True,
    help="Requests per second at most.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=64),
    metavar="N",
    cls=_Worded,
    default=4,
    show_default=True,
    help="Chats read at once.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    cls=_Worded,
    default=30,
    show_default=True,
    help="Seconds to wait for one answer.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the funnel and what was read as JSON.")
def status(
    results: Path,
    auth: str,
    tenant: str | None,
    base_url: str,
    use_sandbox: bool,
    rate: float,
    concurrency: int,
    timeout: float,
    as_json: bool,
) -> None:
    """Read what happened to a results sheet's sent rows and write it into the sheet.

    For each chat of the rows whose status is `sent`, reads its history (never sends)
    and fills `delivery` (sent / delivered / read), `delivered_at`, `read_at`,
    `replied_at` and `reply` (the first reply after the row's message). A reply
    that opts out (STOP, UNSUBSCRIBE and the like) goes on the opt-out list, and
    the reply cell says "[opted out]". Run it any number of times: rows only move
    forward. With --sandbox it reads the sandbox state `run --sandbox` kept beside
    the sheet's journal. Exit 1 when some chats could not be read.
    """
    if use_sandbox:
        _sandbox_wins_over(click.get_current_context(), base_url)
    options = StatusOptions(path=results, rate=rate, concurrency=concurrency, timeout=timeout)
    try:
        with _stop_signals_raise():
            if use_sandbox:
                from batcher.sandbox import sandbox_state_path

                kept = sandbox_state_path(default_journal(results))
                if not kept.exists():
                    raise UsageError(
                        f"no sandbox state beside {results} ({kept.name}): it was not "
                        "written by run --sandbox.",
                        hint="Run it with `chert-batch run FILE --sandbox` first, or drop "
                        "--sandbox to read from the account.",
                    )
                with _sandbox_from(kept) as box:
                    report = status_file(options, sandbox_target(box, auth))
            else:
                report = status_file(options, account_target(base_url, auth, tenant))
    except BatchError as error:
        _fail(error)
        return
    except (KeyboardInterrupt, _Stop) as stop:
        _say_stopped(stop, "the sheet is unchanged", "To read it")
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(status_summary(report, width=_width()))
    raise SystemExit(report.exit_code)


def funnel_table(report: StatusReport, *, width: int = 0) -> str:
    """The funnel as a rich table: a row for all lines, then one per line; count and %."""
    table = Table(title="Funnel of the sent rows", title_justify="left")
    table.add_column("Line")
    for _, heading in FUNNEL:
        table.add_column(heading, justify="right")

    def cells(stage: Stage) -> list[str]:
        counts = stage.to_json()
        return [
            f"{counts[name]} ({percent(counts[name], stage.sent):g} %)"
            if name != "sent"
            else str(stage.sent)
            for name, _ in FUNNEL
        ]

    table.add_row("All lines", *cells(report.overall), style="bold")
    for line, stage in sorted(report.lines.items()):
        table.add_row(line, *cells(stage))
    buffer = io.StringIO()
    Console(file=buffer, width=width or 100, color_system=None).print(table)
    return buffer.getvalue().rstrip("\n")


def status_summary(report: StatusReport, *, width: int = 0) -> str:
    """What `status` read and wrote, then the funnel."""
    lines = [
        f"{report.path}: {plural(report.rows, 'sent row')} in "
        f"{plural(report.chats, 'chat')}; {plural(report.updated, 'row')} updated.",
    ]
    if report.opt_outs:
        numbers = ", ".join(entry.number for entry in report.opt_outs)
        lines.append(f"Put on the opt-out list, having replied STOP or alike: {numbers}.")
    if report.not_recorded:
        rows = ", ".join(str(number) for number in report.not_recorded)
        lines.append(
            f"Opt-out replies whose sender is unknown (group chats), not recorded: rows {rows}. "
            "Add them with `chert-batch optouts add NUMBER`."
        )
    if report.gone:
        lines.append(
            f"{plural(len(report.gone), 'chat')} the API no longer has (404): "
            "their rows are left as they were."
        )
    for chat_id, reason in sorted(report.unread.items()):
        lines.append(f"Chat {chat_id} could not be read: {reason}.")
    if report.unread:
        lines.append("Their rows are left as they were; run status again later.")
    if report.stopped:
        lines.append(f"Stopped early: {report.stopped}. The rows read so far are written.")
    lines += ["", funnel_table(report, width=width)]
    return "\n".join(lines)
