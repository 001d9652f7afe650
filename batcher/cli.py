"""The command line: parse options, call one orchestration function, render, map exit codes."""

from __future__ import annotations

import json
import os
import select
import shlex
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

import click
import phonenumbers
from click.core import ParameterSource
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from batcher import __version__
from batcher.client import DEFAULT_BASE_URL, AuthMode, Credentials, check_base_url
from batcher.errors import BatchError, InputError, UsageError
from batcher.logs import adopt_library_loggers, logging_to
from batcher.phones import normalize_phone
from batcher.pipeline import JobOptions, validate_file
from batcher.preview import PREVIEW_COUNT
from batcher.proofing import PROOF_COUNT, ProofOptions, ProofPlan, proof_file, proof_number
from batcher.quiet import Window, WindowError, parse_window
from batcher.render import confirmation, plural, run_summary, validate_summary, waiting
from batcher.results import default_output
from batcher.running import PULL_EVERY, Preview, RunOptions, Target, run_file
from batcher.secret import SECRET_VARIABLE, check_secret
from batcher.sending import SendConfig, Tally

if TYPE_CHECKING:  # the sandbox (starlette, uvicorn) is imported only when it is used
    from batcher.sandbox import RunningSandbox

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


class WindowType(click.ParamType[Window]):
    """A daily window of local time, HH:MM-HH:MM, that may wrap past midnight."""

    name = "window"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Window:
        if isinstance(value, Window):
            return value
        try:
            return parse_window(str(value))
        except WindowError as error:
            self.fail(str(error))


class _Worded(click.Option):
    """An option whose help gives its limits in words, not as click's `x>=0`."""

    def get_help_extra(self, ctx: click.Context) -> click.types.OptionHelpExtra:
        extra = super().get_help_extra(ctx)
        extra.pop("range", None)
        return extra


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
            metavar="CODE",
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
        click.option(
            "--sheet",
            metavar="NAME",
            help="Sheet to read from an XLSX file, hidden or not (default: the first visible).",
        ),
        click.option(
            "--include-hidden",
            is_flag=True,
            help="Send the rows hidden in an XLSX sheet (by hand or by a filter) too, "
            "instead of skipping them.",
        ),
        click.option(
            "--campaign",
            metavar="NAME",
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
        click.option(
            "--line-gap",
            type=click.FloatRange(min=0),
            metavar="SECONDS",
            cls=_Worded,
            default=None,
            help="Least seconds between two new chats of one line (Chert documents 600). "
            "run paces each line by it; not given, run learns the gap from the API's "
            "capacity answers and the plan's finish times assume 600.",
        ),
        click.option(
            "--line-daily",
            type=click.IntRange(min=1),
            metavar="N",
            cls=_Worded,
            default=None,
            help="Most new chats of one line in any 24 hours (Chert documents 30). "
            "run paces each line by it; not given, run learns it from the API and the "
            "plan's finish times assume 30.",
        ),
        click.option(
            "--template",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="UTF-8 text file with every row's message text ({{Column}} placeholders).",
        ),
        click.option(
            "--template-replaces",
            metavar="COLUMN",
            help="The sheet's text column --template is sent instead of.",
        ),
        click.option(
            "--suppress",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            multiple=True,
            metavar="FILE",
            help="Do-not-contact list (CSV/XLSX with a phone column, or one number a line): "
            "rows to its numbers end suppressed. Repeatable.",
        ),
        click.option(
            "--preview",
            type=click.IntRange(min=0),
            metavar="N",
            cls=_Worded,
            default=PREVIEW_COUNT,
            show_default=True,
            help="Show the first N messages as recipients will see them (0: none).",
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


def account_options(command: F) -> F:
    """The options that say which account a command talks to: `run`, `optouts pull`."""
    decorators = [
        click.option(
            "--auth",
            type=click.Choice(["bearer", "hmac"]),
            default="bearer",
            show_default=True,
            help="How to authenticate with CHERT_SIGNING_SECRET.",
        ),
        click.option(
            "--tenant", envvar="CHERT_TENANT", metavar="SLUG", help="Tenant slug for --auth hmac."
        ),
        click.option(
            "--base-url",
            envvar="CHERT_BASE_URL",
            metavar="URL",
            default=DEFAULT_BASE_URL,
            show_default=True,
            help="Chert API base URL (plain http:// only to this machine).",
        ),
        click.option(
            "--sandbox",
            "use_sandbox",
            is_flag=True,
            help="Use a local sandbox started for this command: no account, no network.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _fail(error: BatchError) -> None:
    click.echo(f"Error: {error}", err=True)
    raise SystemExit(error.exit_code)


class _InOrder(click.Group):
    """Lists its commands in the order a person uses them, not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(
    cls=_InOrder,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Try it with no account: chert-batch run samples/contacts.xlsx --sandbox",
)
@click.version_option(__version__, prog_name="chert-batch")
def main() -> None:
    """Send a spreadsheet of messages through Chert, exactly once.

    Check a sheet with `validate`, send it with `run`, and run it again after any
    failure: it sends only what is not settled yet. See COMMAND --help.
    """


@main.command(
    short_help="Check a handoff file and write its results sheet; send nothing.",
    epilog="""Examples:

\b
  chert-batch validate leads.xlsx
  chert-batch validate leads.xlsx --sheet March --region GB
      read the sheet named March; numbers without a country code are British
  chert-batch validate leads.csv --from +14155550100 --out checked.csv
      rows without a sender go from that line; results in checked.csv
""",
)
@job_options
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Journal to show what was sent from (read only). Default: <results stem>.journal.sqlite.",
)
def validate(
    file: Path,
    out: Path | None,
    region: str,
    default_sender: str | None,
    sheet: str | None,
    include_hidden: bool,
    campaign: str,
    allow_duplicates: bool,
    allow_hardlinks: bool,
    line_gap: float | None,
    line_daily: int | None,
    template: Path | None,
    template_replaces: str | None,
    suppress: tuple[Path, ...],
    preview: int,
    as_json: bool,
    allow_loopback_media: bool,
    journal: Path | None,
) -> None:
    """Check a handoff file and write its results sheet; send nothing.

    Rows that would be sent end `pending` with their idempotency key; the
    others `invalid` (with the API's error code and the fix) or `duplicate`.
    Exit 0 when every row can be sent, 1 when some rows are invalid (or there
    are no rows under the header).
    """
    options = JobOptions(
        path=file,
        out=out,
        sheet=sheet,
        region=region,
        default_sender=default_sender or "",
        campaign=campaign,
        allow_duplicates=allow_duplicates,
        include_hidden=include_hidden,
        allow_hardlinks=allow_hardlinks,
        allow_loopback_media=allow_loopback_media,
        line_gap=line_gap,
        line_daily=line_daily,
        template=template,
        template_replaces=template_replaces,
        preview=preview,
        suppress=suppress,
    )
    try:
        with _stop_signals_raise():
            report = validate_file(options, journal)
    except BatchError as error:
        _fail(error)
        return
    except (KeyboardInterrupt, _Stop) as stop:
        _say_stopped(stop, "nothing was sent, and no results sheet was written", "Run again")
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        run_options = _options_for_run(click.get_current_context())
        click.echo(validate_summary(report, run_options=run_options, width=_width()))
    raise SystemExit(report.exit_code)


# validate's options that change nothing `run` would send: the rest are repeated.
_NOT_FOR_RUN = frozenset({"as_json", "preview"})


def _options_for_run(ctx: click.Context) -> list[str]:
    """The options given to this command that `run` takes too, as `run` would take them.

    Every option both commands share changes what is planned, so it is repeated unless
    `_NOT_FOR_RUN` names it: an option added later is carried over without being listed.
    """
    shared = {param.name for param in run.params}
    args: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if not isinstance(param, click.Option) or name not in shared or name in _NOT_FOR_RUN:
            continue
        assert name is not None
        if ctx.get_parameter_source(name) in (None, ParameterSource.DEFAULT):
            continue
        value = ctx.params[name]
        if param.is_flag:
            args += [param.opts[0]] if value else []
            continue
        for one in value if param.multiple else [value]:
            args += [param.opts[0], _as_typed(one)]
    return args


def _as_typed(value: object) -> str:
    """An option's value as a person would type it: 600, not click's float 600.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _LiveProgress:
    """A rich progress bar with sent / failed / pending counts, rate and ETA.

    It counts messages (API requests), as the summary's "messages sent" does: a group
    row with media or a link is two of them.
    """

    def __init__(self, enabled: bool) -> None:
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.started = False
        if enabled:
            self.progress = Progress(
                TextColumn("[bold]Sending"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.fields[messages]}"),
                TextColumn(
                    "[green]{task.fields[sent]} sent[/] · [red]{task.fields[failed]} failed[/]"
                    " · [yellow]{task.fields[pending]} pending[/]"
                ),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                TextColumn("[cyan]{task.fields[waiting]}"),
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
                "send",
                total=tally.total,
                sent=0,
                failed=0,
                pending=0,
                rate="",
                messages="",
                waiting="",
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
            messages=plural(tally.total, "message"),
            waiting=waiting(tally.waiting, tally.outside),
        )


def _credentials(auth: str, tenant: str | None) -> Credentials:
    secret = os.environ.get(SECRET_VARIABLE, "")
    if not secret:
        raise UsageError(
            f"{SECRET_VARIABLE} is not set.",
            hint=f"Export your tenant's signing secret as {SECRET_VARIABLE}, or try the "
            "whole job against a local sandbox with --sandbox.",
        )
    mode: AuthMode = "hmac" if auth == "hmac" else "bearer"
    check_secret(secret, mode)
    if mode == "hmac" and not tenant:
        raise UsageError(
            "--auth hmac needs the tenant slug.",
            hint="Pass --tenant SLUG or set CHERT_TENANT.",
        )
    return Credentials(secret, mode, tenant or "")


@main.command(
    short_help="Send a handoff file: exactly once, paced, resumable.",
    epilog="""Examples:

\b
  chert-batch run leads.xlsx --sandbox
      the whole job against a local sandbox: no account, no network
  chert-batch run leads.xlsx --from +14155550100 --rate 2
      rows without a sender go from that line; at most 2 messages a second
  chert-batch run leads.csv --yes --json > summary.json
      no question asked (for scripts), the summary as JSON
""",
)
@job_options
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Journal file. Default: <results stem>.journal.sqlite beside the results.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    metavar="PER_SECOND",
    cls=_Worded,
    default=10,
    show_default=True,
    help="Requests per second overall (0: no limit).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    metavar="N",
    cls=_Worded,
    default=8,
    show_default=True,
    help="Requests in flight at once (1 to 64).",
)
@click.option(
    "--max-wait",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    cls=_Worded,
    default=60,
    show_default=True,
    help="Longest wait (s) for a line out of capacity; longer defers its new chats.",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Wait for lines whose next slot is beyond --max-wait, instead of deferring "
    "their rows: keep running until every row is settled (stop and rerun any time).",
)
@click.option(
    "--window",
    type=WindowType(),
    metavar="HH:MM-HH:MM",
    help="Quiet hours: send only inside this window of each recipient's local time "
    "(e.g. 09:00-20:00; it may wrap past midnight). Outside it, wait (--wait) or leave "
    "the message pending.  [default: any hour]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    cls=_Worded,
    default=30,
    show_default=True,
    help="Seconds to wait for each answer.",
)
@account_options
@click.option("--yes", "-y", is_flag=True, help="Send without asking first.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    cls=_Worded,
    help="A canary: send only the first N rows to send (a chat's rows go together).",
)
@click.option(
    "--skip-contacted",
    type=click.FloatRange(min=0, min_open=True),
    metavar="DAYS",
    cls=_Worded,
    help="Skip rows whose recipients had a new chat from this account in the last DAYS "
    "days, in any campaign (from the send history).",
)
@click.option(
    "--proof",
    metavar="NUMBER",
    help="Send the first messages to this number only (your phone), each as a direct "
    "chat from its row's line; the rows stay unsent and no results sheet is written.",
)
@click.option(
    "--proof-count",
    type=click.IntRange(min=1),
    metavar="K",
    cls=_Worded,
    help=f"How many distinct messages --proof sends.  [default: {PROOF_COUNT}]",
)
@click.option(
    "--resend-changed",
    is_flag=True,
    help="Send rows edited since they were sent as new messages (a second message each).",
)
@click.option(
    "--no-pull",
    is_flag=True,
    help="Do not read the account's replies for new opt-outs (at the start and every 10 "
    "minutes while sending); the opt-out list is applied as it is.",
)
@click.option(
    "--pull-every",
    type=click.FloatRange(min=0, min_open=True),
    hidden=True,
    default=PULL_EVERY,
    help="For tests only: seconds between the pulls made while sending.",
)
@click.option("--verbose", "-v", count=True, help="Log retries and waits (-vv: every request).")
@click.option(
    "--journal-max-pages",
    type=click.IntRange(min=1),
    hidden=True,
    help="For tests only: cap the journal's size in pages, so that it fills up like a disk.",
)
def run(
    file: Path,
    out: Path | None,
    region: str,
    default_sender: str | None,
    sheet: str | None,
    include_hidden: bool,
    campaign: str,
    allow_duplicates: bool,
    allow_hardlinks: bool,
    line_gap: float | None,
    line_daily: int | None,
    template: Path | None,
    template_replaces: str | None,
    suppress: tuple[Path, ...],
    preview: int,
    as_json: bool,
    allow_loopback_media: bool,
    journal: Path | None,
    rate: float,
    concurrency: int,
    max_wait: float,
    wait: bool,
    window: Window | None,
    timeout: float,
    auth: str,
    tenant: str | None,
    base_url: str,
    use_sandbox: bool,
    yes: bool,
    limit: int | None,
    skip_contacted: float | None,
    proof: str | None,
    proof_count: int | None,
    resend_changed: bool,
    no_pull: bool,
    pull_every: float,
    verbose: int,
    journal_max_pages: int | None,
) -> None:
    """Send a handoff file through Chert: exactly once, paced, resumable.

    Loads and checks the file as `validate` does, skips what the journal says
    is already sent, sends the rest, and writes the results sheet. Run it again
    after any failure or interruption: it sends only what is not yet settled.
    Exit 0 when every row is sent, a duplicate, skipped or suppressed, 1 when some rows are invalid,
    failed or pending (or there are none), 2 on wrong usage, 3 when stopped early.
    """
    interactive = _is_terminal(sys.stdin) and _is_terminal(sys.stderr)
    if not yes and not interactive:
        _fail(UsageError("there is no terminal to confirm on.", hint="Pass --yes to send."))
    if use_sandbox:
        _sandbox_wins_over(click.get_current_context(), base_url)
    _check_proof_options(proof, proof_count, limit)
    job = JobOptions(
        path=file,
        # Sandbox results and journal never sit where a real run would look for them:
        # a real run must not take the demo's "sent" for its own.
        out=out or (default_output(file, None, tag="sandbox.results") if use_sandbox else None),
        sheet=sheet,
        region=region,
        default_sender=default_sender or "",
        campaign=campaign,
        allow_duplicates=allow_duplicates,
        include_hidden=include_hidden,
        resend_changed=resend_changed,
        allow_hardlinks=allow_hardlinks,
        allow_loopback_media=allow_loopback_media,
        line_gap=line_gap,
        line_daily=line_daily,
        template=template,
        template_replaces=template_replaces,
        preview=preview,
        suppress=suppress,
    )
    options = RunOptions(
        job=job,
        send=SendConfig(
            rate=rate,
            concurrency=concurrency,
            max_wait=max_wait,
            timeout=timeout,
            wait=wait,
            window=window,
        ),
        journal=journal,
        skip_contacted=skip_contacted,
        journal_max_pages=journal_max_pages,
        limit=limit,
        pull=not no_pull,
        pull_every=pull_every,
    )
    rerun = _this_command()
    sending = False
    try:
        with _stop_signals_raise(), ExitStack() as stack:
            secret = os.environ.get(SECRET_VARIABLE, "")
            redactor = stack.enter_context(logging_to(sys.stderr, verbose, [secret]))
            if use_sandbox:
                from batcher.sandbox import sandbox_state_path

                # Kept beside the journal, so `status --sandbox` sees these messages.
                kept = sandbox_state_path(options.journal_path)
                box = stack.enter_context(_sandbox_from(kept))
                redactor.hide(box.secret)
                adopt_library_loggers()  # uvicorn has just given its loggers handlers
                target = sandbox_target(box, auth)
            else:
                target = account_target(base_url, auth, tenant)

            def confirm(preview: Preview) -> bool:
                nonlocal sending
                if not yes:
                    click.echo(confirmation(preview, target.label, rate), err=True)
                sending = yes or _ask("Send them?")
                return sending

            if proof is not None:
                proofs = ProofOptions(proof_number(proof, region), proof_count or PROOF_COUNT)

                def confirm_proof(plan: ProofPlan) -> bool:
                    nonlocal sending
                    if not yes:
                        click.echo(plan.describe(), err=True)
                    sending = yes or _ask(plan.question())
                    return sending

                done = proof_file(options, target, proofs, confirm=confirm_proof)
                click.echo(json.dumps(done.to_json(), indent=2) if as_json else done.summary(rerun))
                raise SystemExit(done.exit_code)
            display = stack.enter_context(_LiveProgress(interactive and not as_json))
            report = run_file(options, target, confirm=confirm, on_progress=display.update)
    except BatchError as error:
        _fail(error)
        return
    except (KeyboardInterrupt, _Stop) as stop:
        # Only before or after sending: while sending, the sender stops gracefully itself.
        if sending:
            _say_stopped(
                stop,
                "nothing is lost: the journal has every message sent so far",
                "The same command sends the rest and writes the results sheet",
            )
        _say_stopped(stop, "nothing was sent", "To start again")
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(run_summary(report, rerun, width=_width()))
    raise SystemExit(report.exit_code)


def _check_proof_options(proof: str | None, count: int | None, limit: int | None) -> None:
    """--proof-count needs --proof; --proof sends no real row, so --limit cannot go with it."""
    if proof is None and count is not None:
        _fail(UsageError("--proof-count needs --proof NUMBER.", hint="Add --proof YOUR_NUMBER."))
    if proof is not None and limit is not None:
        _fail(
            UsageError(
                "--proof and --limit cannot be used together: --proof sends to your number "
                "only, --limit sends the first real rows.",
                hint="Send the proof first, then run with --limit (or without --proof).",
            )
        )


def sandbox_target(box: RunningSandbox, auth: str) -> Target:
    """The account of a sandbox this command started: its secret and tenant, `--auth`'s mode."""
    mode: AuthMode = "hmac" if auth == "hmac" else "bearer"
    return Target(box.base_url, Credentials(box.secret, mode, box.tenant), label="sandbox")


def account_target(base_url: str, auth: str, tenant: str | None) -> Target:
    """The account the options name: the base URL checked, the secret from the environment."""
    url = check_base_url(base_url)
    return Target(url, _credentials(auth, tenant), label=url)


def _sandbox_from(state_file: Path) -> AbstractContextManager[RunningSandbox]:
    """An in-process sandbox that starts from a state file, and saves back to it."""
    from batcher.sandbox import SandboxConfig, State, running_sandbox

    config = SandboxConfig()
    state = State(config)
    try:
        state.load(state_file)
    except ValueError as error:
        raise InputError(
            f"the sandbox state: {error}.", hint=f"Delete {state_file} to start afresh."
        ) from None
    return running_sandbox(config, state=state, save_to=state_file)


class _Stop(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread as Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """For the whole command, SIGTERM and SIGHUP raise _Stop, so every `finally` runs.

    Unhandled, they would end the process on the spot (exit 143, no message), and the
    results writer's temporary file would stay behind. While sending, the sender
    listens for them itself (anyio takes these signals over while it listens) and stops
    gracefully instead. A second signal during the cleanup the first started is ignored:
    cutting it short is what the first one must not do.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; an embedding program has its own
        return
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise _Stop(signum)

    previous = {signum: signal.signal(signum, stop) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _say_stopped(stop: BaseException, what_happened: str, next_step: str) -> NoReturn:
    """Say why and where the command stopped, and how to go on; exit 3."""
    why = signal.Signals(stop.signum).name if isinstance(stop, _Stop) else "Ctrl-C"
    if _is_terminal(sys.stderr):
        click.echo(err=True)  # past the ^C, or the prompt the signal interrupted
    click.echo(f"Stopped ({why}): {what_happened}. {next_step}: {_this_command()}", err=True)
    raise SystemExit(3)


def _this_command() -> str:
    """The command line as typed, to run again."""
    return shlex.join(["chert-batch", *sys.argv[1:]])


def _sandbox_wins_over(ctx: click.Context, base_url: str) -> None:
    """--sandbox with --base-url typed is a contradiction; with CHERT_BASE_URL, say which wins.

    The command line is what the person asked for just now: two destinations there
    cannot both be meant. The environment is ambient (set once, perhaps by following
    the sandbox's own advice), so it gives way, but not silently.
    """
    source = ctx.get_parameter_source("base_url")
    if source is ParameterSource.COMMANDLINE:
        _fail(
            UsageError(
                "--sandbox and --base-url cannot be used together: --sandbox sends to a "
                "sandbox it starts on this machine.",
                hint="Drop --base-url to try the sandbox, or --sandbox to send to that URL.",
            )
        )
    if source is ParameterSource.ENVIRONMENT:
        click.echo(
            f"--sandbox: ignoring CHERT_BASE_URL={base_url}; sending to a local sandbox.",
            err=True,
        )


def _ask(question: str) -> bool:
    """Ask a yes-or-no question on the terminal; no (or an empty line, or Ctrl-D) is False.

    Ctrl-C raises KeyboardInterrupt (and SIGTERM what its handler raises), at once.
    """
    while True:
        click.echo(f"{question} [y/N]: ", nl=False, err=True)
        try:
            answer = _read_line().strip().lower()
        except EOFError:
            click.echo(err=True)
            return False
        if answer in {"y", "yes"}:
            return True
        if answer in {"", "n", "no"}:
            return False
        click.echo("Please answer y or n.", err=True)


def _read_line() -> str:
    """A line from standard input that a signal can interrupt; EOFError at its end.

    Python runs signal handlers in the main thread only, and a wait for the terminal
    (readline's, input()'s) wakes for a signal only if the kernel delivered it to that
    thread. With the threads of polars and of an in-process sandbox around, Ctrl-C
    often lands elsewhere and the prompt never ends. Waiting in short selects gives
    the handlers a turn after each, wherever the signal landed.
    """
    if os.name == "posix":
        while not select.select([sys.stdin], [], [], 0.1)[0]:
            pass
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line


def _width() -> int:
    """The terminal's width for wrapping the summary, or 0 when stdout is no terminal."""
    return shutil.get_terminal_size().columns if _is_terminal(sys.stdout) else 0


def _is_terminal(stream: TextIO | None) -> bool:
    """Whether a standard stream is a terminal; a closed one (`<&-`: None) is not."""
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # a stream whose file was closed
        return False


def _sender_lines(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    """Split repeated and comma-separated --lines (or --inactive) values and check each is E.164."""
    from batcher.sandbox.rules import is_possible_sender

    numbers = tuple(n.strip() for value in values for n in value.split(",") if n.strip())
    for number in numbers:
        if not is_possible_sender(number):
            raise click.BadParameter(f"{number!r} is not an E.164 number such as +15555550100")
    return numbers


_PROBABILITY = click.FloatRange(0.0, 1.0)


@main.command(
    short_help="Serve a local Chert-compatible API, for trying things out.",
    epilog="""Examples:

\b
  chert-batch sandbox --line-gap 600 --line-daily 30
      a line's first touches 10 minutes apart and 30 a day, as Chert's are
  chert-batch sandbox --lines +15555550100 --inactive +15555550101
      the tenant has two lines, one of them not active; other senders get 2006
  chert-batch sandbox --p503 0.1 --pdrop 0.05 --seed 1
      answer 1 in 10 with 503 and drop 1 in 20, the same way every time
""",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    cls=_Worded,
    default=8787,
    show_default=True,
    help="Port on 127.0.0.1 (0 picks a free one).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="PER_SECOND",
    cls=_Worded,
    help="Requests per second for the tenant; more get 429 / 1007.  [default: no limit]",
)
@click.option(
    "--line-gap",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    cls=_Worded,
    help="Seconds between two first touches of one line; sooner gets 4002.  [default: none]",
)
@click.option(
    "--line-daily",
    type=click.IntRange(min=1),
    metavar="N",
    cls=_Worded,
    help="First touches per line per rolling 24 h; more get 4002.  [default: no cap]",
)
@click.option(
    "--lines",
    multiple=True,
    metavar="NUMBERS",
    callback=_sender_lines,
    help="The tenant's sender numbers (repeat or comma-separate), listed by GET "
    "/phone-numbers; others get 403 / 2006.  [default: any sender, and none listed (404)]",
)
@click.option(
    "--inactive",
    multiple=True,
    metavar="NUMBERS",
    callback=_sender_lines,
    help="The tenant's lines that are not active (repeat or comma-separate): listed with "
    "is_active false, and a send from one gets 403 / 2006.",
)
@click.option(
    "--seed", type=int, metavar="N", help="Seed for the fault generator, for repeatable faults."
)
@click.option(
    "--p503",
    type=_PROBABILITY,
    metavar="P",
    cls=_Worded,
    default=0,
    show_default=True,
    help="Probability of answering 503 / 3001 before doing anything.",
)
@click.option(
    "--pdrop",
    type=_PROBABILITY,
    metavar="P",
    cls=_Worded,
    default=0,
    show_default=True,
    help="Probability of sending, then dropping the connection without an answer.",
)
@click.option(
    "--pslow",
    type=_PROBABILITY,
    metavar="P",
    cls=_Worded,
    default=0,
    show_default=True,
    help="Probability of sending, then answering only after --slow-seconds.",
)
@click.option(
    "--deliver-after",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    cls=_Worded,
    default=2,
    show_default=True,
    help="Seconds after it is sent that a message shows as delivered.",
)
@click.option(
    "--read-after",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    cls=_Worded,
    default=3,
    show_default=True,
    help="Seconds after its delivery that a message that is read shows as read.",
)
@click.option(
    "--read-share",
    type=_PROBABILITY,
    metavar="SHARE",
    cls=_Worded,
    default=0.5,
    show_default=True,
    help="Share of messages that are read (the same ones every time: fixed by message id).",
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Start from the chats and messages this file holds, and save them to it on exit "
    "(as run --sandbox does beside its journal).",
)
@click.option(
    "--slow-seconds",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    cls=_Worded,
    default=40,
    show_default=True,
    help="How long a slow answer takes.",
)
def sandbox(
    port: int,
    rate: float | None,
    line_gap: float | None,
    line_daily: int | None,
    lines: tuple[str, ...],
    inactive: tuple[str, ...],
    seed: int | None,
    p503: float,
    pdrop: float,
    pslow: float,
    deliver_after: float,
    read_after: float,
    read_share: float,
    state_file: Path | None,
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

    given_secret = os.environ.get(SECRET_VARIABLE)
    if given_secret:
        try:
            # The sandbox answers both modes: a secret HMAC can use is one it may serve.
            check_secret(given_secret, "hmac")
        except BatchError as error:
            _fail(error)
    config = SandboxConfig(
        secret=given_secret or secrets.token_urlsafe(32),
        tenant=os.environ.get("CHERT_TENANT") or "sandbox",
        rate=rate,
        line_gap=line_gap,
        line_daily=line_daily,
        lines=lines,
        inactive=inactive,
        seed=seed,
        p503=p503,
        pdrop=pdrop,
        pslow=pslow,
        slow_seconds=slow_seconds,
        deliver_after=deliver_after,
        read_after=read_after,
        read_share=read_share,
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
        serve(config, port, on_ready=announce, state_file=state_file)
    except ValueError as error:
        raise click.ClickException(
            f"--state: {error}. Give another file, or delete this one to start afresh."
        ) from None
    except OSError as error:
        raise click.ClickException(
            f"cannot listen on 127.0.0.1:{port}: {error.strerror or error}. "
            "Try another --port, or --port 0 for a free one."
        ) from None
    click.echo("Sandbox stopped.")


# Last, since the opt-out commands use the helpers above: the module adds them to `main`.
import batcher.cli_optouts  # noqa: E402
import batcher.cli_status  # noqa: E402, F401
