"""The command line: parse options, call one orchestration function, render, map exit codes."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import click
import phonenumbers
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from batcher import __version__
from batcher.client import DEFAULT_BASE_URL, AuthMode, Credentials, check_base_url
from batcher.errors import BatchError, UsageError
from batcher.phones import normalize_phone
from batcher.pipeline import JobOptions, validate_file
from batcher.render import confirmation, run_summary, validate_summary
from batcher.running import Preview, RunOptions, Target, run_file
from batcher.sending import SendConfig, Tally

F = TypeVar("F", bound=Callable[..., Any])


class RegionType(click.ParamType[str]):
    """A two-letter region phonenumbers knows, such as US or GB."""

    name = "region"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        region = str(value).strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            self.fail(f"{value!r} is not a region code; use two letters such as US, GB or DE.")
        return region


class SenderType(click.ParamType[str]):
    """A sender line, normalized to E.164 (a possible number is enough)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        phone = normalize_phone(str(value), "US", sender=True)
        if phone.problem:
            self.fail(f"{phone.problem} Give the sending line as +1XXXXXXXXXX.")
        return phone.e164


def job_options(command: F) -> F:
    """The options every command that reads a handoff file shares."""
    decorators = [
        click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
        click.option(
            "--out",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Results sheet (.xlsx or .csv). Default: <input>.results.<ext> beside it.",
        ),
        click.option(
            "--region",
            type=RegionType(),
            default="US",
            show_default=True,
            help="Country of numbers written without a country code.",
        ),
        click.option(
            "--from",
            "default_sender",
            type=SenderType(),
            help="Sending line for rows without one.",
        ),
        click.option("--sheet", help="Sheet to read from an XLSX file (default: the first)."),
        click.option(
            "--campaign",
            default="",
            help="Namespace for idempotency keys: the same rows in another campaign "
            "are sent again.",
        ),
        click.option(
            "--allow-duplicates",
            is_flag=True,
            help="Send rows that repeat an earlier row exactly, instead of skipping them.",
        ),
        click.option(
            "--allow-hardlinks",
            is_flag=True,
            help="Send media files that are hard links (by default refused: a hard link can "
            "bring in a private file from anywhere on the disk).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
        click.option(
            "--allow-loopback-media",
            is_flag=True,
            hidden=True,
            help="For tests only: media URLs may be plain http to this machine.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _fail(error: BatchError) -> None:
    click.echo(f"Error: {error}", err=True)
    raise SystemExit(error.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chert-batch")
def main() -> None:
    """Send a spreadsheet of messages through Chert, exactly once."""


@main.command()
@job_options
def validate(
    file: Path,
    out: Path | None,
    region: str,
    default_sender: str | None,
    sheet: str | None,
    campaign: str,
    allow_duplicates: bool,
    allow_hardlinks: bool,
    as_json: bool,
    allow_loopback_media: bool,
) -> None:
    """Check a handoff file and write its results sheet; send nothing.

    Rows that would be sent end `pending` with their idempotency key; the
    others `invalid` (with the API's error code and the fix) or `duplicate`.
    Exit 0 when every row can be sent, 1 when some rows are invalid.
    """
    options = JobOptions(
        path=file,
        out=out,
        sheet=sheet,
        region=region,
        default_sender=default_sender or "",
        campaign=campaign,
        allow_duplicates=allow_duplicates,
        allow_hardlinks=allow_hardlinks,
        allow_loopback_media=allow_loopback_media,
    )
    try:
        report = validate_file(options)
    except BatchError as error:
        _fail(error)
        return
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else validate_summary(report))
    raise SystemExit(report.exit_code)


class _LiveProgress:
    """A rich progress bar with sent / failed / pending counts, rate and ETA."""

    def __init__(self, enabled: bool) -> None:
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.started = False
        if enabled:
            self.progress = Progress(
                TextColumn("[bold]Sending"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "[green]{task.fields[sent]} sent[/] · [red]{task.fields[failed]} failed[/]"
                    " · [yellow]{task.fields[pending]} pending[/]"
                ),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )

    def __enter__(self) -> _LiveProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None and self.started:
            self.progress.stop()

    def update(self, tally: Tally) -> None:
        if self.progress is None:
            return
        if not self.started:
            # Started with the first count, after the confirmation prompt is answered.
            self.progress.start()
            self.started = True
        if self.task is None:
            self.task = self.progress.add_task(
                "send", total=tally.total, sent=0, failed=0, pending=0, rate=""
            )
        speed = self.progress.tasks[0].speed
        self.progress.update(
            self.task,
            total=tally.total,
            completed=tally.done,
            sent=tally.sent,
            failed=tally.failed,
            pending=tally.pending,
            rate=f"{speed:.1f}/s" if speed else "",
        )


def _credentials(auth: str, tenant: str | None) -> Credentials:
    secret = os.environ.get("CHERT_SIGNING_SECRET", "")
    if not secret:
        raise UsageError(
            "CHERT_SIGNING_SECRET is not set.",
            hint="Export your tenant's signing secret as CHERT_SIGNING_SECRET, or try the "
            "whole job against a local sandbox with --sandbox.",
        )
    if auth == "hmac" and not tenant:
        raise UsageError(
            "--auth hmac needs the tenant slug.",
            hint="Pass --tenant SLUG or set CHERT_TENANT.",
        )
    return Credentials(secret, "hmac" if auth == "hmac" else "bearer", tenant or "")


@main.command()
@job_options
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Journal file. Default: <results stem>.journal.sqlite beside the results.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Requests per second overall (0: no limit).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Requests in flight at once.",
)
@click.option(
    "--max-wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Longest wait (s) for a line out of capacity; longer defers its new chats.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for each answer.",
)
@click.option(
    "--auth",
    type=click.Choice(["bearer", "hmac"]),
    default="bearer",
    show_default=True,
    help="How to authenticate with CHERT_SIGNING_SECRET.",
)
@click.option("--tenant", envvar="CHERT_TENANT", help="Tenant slug for --auth hmac.")
@click.option(
    "--base-url",
    envvar="CHERT_BASE_URL",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="Chert API base URL (plain http:// only to this machine).",
)
@click.option(
    "--sandbox",
    "use_sandbox",
    is_flag=True,
    help="Send to a local sandbox started for this run: no account, no network.",
)
@click.option("--yes", "-y", is_flag=True, help="Send without asking first.")
@click.option("--verbose", "-v", count=True, help="Log retries and waits (-vv: every request).")
def run(
    file: Path,
    out: Path | None,
    region: str,
    default_sender: str | None,
    sheet: str | None,
    campaign: str,
    allow_duplicates: bool,
    allow_hardlinks: bool,
    as_json: bool,
    allow_loopback_media: bool,
    journal: Path | None,
    rate: float,
    concurrency: int,
    max_wait: float,
    timeout: float,
    auth: str,
    tenant: str | None,
    base_url: str,
    use_sandbox: bool,
    yes: bool,
    verbose: int,
) -> None:
    """Send a handoff file through Chert: exactly once, paced, resumable.

    Loads and checks the file as `validate` does, skips what the journal says
    is already sent, sends the rest, and writes the results sheet. Run it again
    after any failure or interruption: it sends only what is not yet settled.
    Exit 0 when every row is sent or a duplicate, 1 when some rows are invalid,
    failed or pending, 2 on wrong usage, 3 when stopped early.
    """
    _configure_logging(verbose)
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    if not yes and not interactive:
        _fail(UsageError("there is no terminal to confirm on.", hint="Pass --yes to send."))
    job = JobOptions(
        path=file,
        # Sandbox results and journal never sit where a real run would look for them:
        # a real run must not take the demo's "sent" for its own.
        out=out
        or (file.with_name(f"{file.stem}.sandbox.results{file.suffix}") if use_sandbox else None),
        sheet=sheet,
        region=region,
        default_sender=default_sender or "",
        campaign=campaign,
        allow_duplicates=allow_duplicates,
        allow_hardlinks=allow_hardlinks,
        allow_loopback_media=allow_loopback_media,
    )
    options = RunOptions(
        job=job,
        send=SendConfig(rate=rate, concurrency=concurrency, max_wait=max_wait, timeout=timeout),
        journal=journal,
    )
    rerun = shlex.join(["chert-batch", *sys.argv[1:]]) if sys.argv[1:] else "chert-batch run"
    try:
        with ExitStack() as stack:
            if use_sandbox:
                from batcher.sandbox import running_sandbox

                box = stack.enter_context(running_sandbox())
                mode: AuthMode = "hmac" if auth == "hmac" else "bearer"
                target = Target(
                    box.base_url, Credentials(box.secret, mode, box.tenant), label="sandbox"
                )
            else:
                url = check_base_url(base_url)
                target = Target(url, _credentials(auth, tenant), label=url)

            def confirm(preview: Preview) -> bool:
                if yes:
                    return True
                click.echo(confirmation(preview, target.label), err=True)
                return click.confirm("Send them?", default=False, err=True)

            display = stack.enter_context(_LiveProgress(interactive and not as_json))
            report = run_file(options, target, confirm=confirm, on_progress=display.update)
    except BatchError as error:
        _fail(error)
        return
    except KeyboardInterrupt:
        # Only before or after sending: while sending, Ctrl-C stops the run gracefully.
        click.echo(f"Interrupted. The journal has everything sent so far; rerun: {rerun}", err=True)
        raise SystemExit(3) from None
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else run_summary(report, rerun))
    raise SystemExit(report.exit_code)


def _configure_logging(verbose: int) -> None:
    if not verbose:
        return
    logging.basicConfig(
        level=logging.DEBUG if verbose > 1 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs each request line (never headers) at INFO: only with -vv.
    logging.getLogger("httpx").setLevel(logging.INFO if verbose > 1 else logging.WARNING)


def _sender_lines(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    """Split repeated and comma-separated --lines values and check each is E.164."""
    from batcher.sandbox.rules import is_possible_sender

    numbers = tuple(n.strip() for value in values for n in value.split(",") if n.strip())
    for number in numbers:
        if not is_possible_sender(number):
            raise click.BadParameter(f"{number!r} is not an E.164 number such as +15555550100")
    return numbers


_PROBABILITY = click.FloatRange(0.0, 1.0)


@main.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    help="Port on 127.0.0.1 (0 picks a free one).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Requests per second for the tenant; more get 429 / 1007.  [default: no limit]",
)
@click.option(
    "--line-gap",
    type=click.FloatRange(min=0),
    help="Seconds between two first touches of one line; sooner gets 4002.  [default: none]",
)
@click.option(
    "--line-daily",
    type=click.IntRange(min=1),
    help="First touches per line per rolling 24 h; more get 4002.  [default: no cap]",
)
@click.option(
    "--lines",
    multiple=True,
    callback=_sender_lines,
    help="The tenant's sender numbers (repeat or comma-separate); others get 403 / 2006.  "
    "[default: every sender]",
)
@click.option("--seed", type=int, help="Seed for the fault generator, for repeatable faults.")
@click.option(
    "--p503",
    type=_PROBABILITY,
    default=0.0,
    show_default=True,
    help="Probability of answering 503 / 3001 before doing anything.",
)
@click.option(
    "--pdrop",
    type=_PROBABILITY,
    default=0.0,
    show_default=True,
    help="Probability of sending, then dropping the connection without an answer.",
)
@click.option(
    "--pslow",
    type=_PROBABILITY,
    default=0.0,
    show_default=True,
    help="Probability of sending, then answering only after --slow-seconds.",
)
@click.option(
    "--slow-seconds",
    type=click.FloatRange(min=0),
    default=40.0,
    show_default=True,
    help="How long a slow answer takes.",
)
def sandbox(
    port: int,
    rate: float | None,
    line_gap: float | None,
    line_daily: int | None,
    lines: tuple[str, ...],
    seed: int | None,
    p503: float,
    pdrop: float,
    pslow: float,
    slow_seconds: float,
) -> None:
    """Serve a local Chert-compatible API on 127.0.0.1 for trying things out and for tests.

    Takes the secret from CHERT_SIGNING_SECRET and the tenant from CHERT_TENANT
    (default "sandbox"); without a secret it makes up a throwaway one and
    prints it. Ctrl-C stops it.
    """
    # Imported here so the other commands never pay for starlette and uvicorn.
    import os
    import secrets

    from batcher.sandbox import SandboxConfig, serve

    given_secret = os.environ.get("CHERT_SIGNING_SECRET")
    config = SandboxConfig(
        secret=given_secret or secrets.token_urlsafe(32),
        tenant=os.environ.get("CHERT_TENANT") or "sandbox",
        rate=rate,
        line_gap=line_gap,
        line_daily=line_daily,
        lines=lines,
        seed=seed,
        p503=p503,
        pdrop=pdrop,
        pslow=pslow,
        slow_seconds=slow_seconds,
    )

    def announce(root_url: str) -> None:
        base_url = f"{root_url}/api/v1"
        click.echo(f"Chert sandbox listening on {base_url} (tenant {config.tenant!r})")
        if given_secret:
            click.echo("Using CHERT_SIGNING_SECRET from the environment.")
        else:
            # The one place a secret is printed: the sandbox's own throwaway.
            click.echo("No CHERT_SIGNING_SECRET set; this sandbox made one up. Use it with:")
            click.echo(f"  export CHERT_SIGNING_SECRET={config.secret}")
        click.echo("Point chert-batch at it (with CHERT_SIGNING_SECRET set):")
        click.echo(f"  CHERT_BASE_URL={base_url} chert-batch run FILE")
        click.echo(f"Ledger: {root_url}/_sandbox/messages   Stats: {root_url}/_sandbox/stats")
        click.echo("Press Ctrl-C to stop.")

    try:
        serve(config, port, on_ready=announce)
    except OSError as error:
        raise click.ClickException(
            f"cannot listen on 127.0.0.1:{port}: {error.strerror or error}. "
            "Try another --port, or --port 0 for a free one."
        ) from None
    click.echo("Sandbox stopped.")
