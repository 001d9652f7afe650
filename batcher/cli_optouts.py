"""`chert-batch optouts`: the opt-out list's commands, a part of the command line.

Kept apart from batcher/cli.py, whose helpers (account options, credentials,
signals, errors) it uses, and which imports it at its end: the group adds itself to
`main` here, so either module may be imported first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click

from batcher.audience import bad_numbers, read_numbers
from batcher.cli import (
    RegionType,
    _fail,
    _InOrder,
    _sandbox_wins_over,
    _say_stopped,
    _Stop,
    _stop_signals_raise,
    account_options,
    account_target,
    main,
    sandbox_target,
)
from batcher.errors import BatchError, InputError, UsageError
from batcher.optouts import BY_HAND, OptOut, OptOuts, PullReport, now_iso, pull_account
from batcher.phones import normalize_phone
from batcher.render import plural

_REGION = click.option(
    "--region",
    type=RegionType(),
    metavar="CODE",
    default="US",
    show_default=True,
    help="Country of numbers written without a country code.",
)


@click.group(
    cls=_InOrder,
    short_help="The opt-out list: who must not get a message.",
    epilog="""Examples:

\b
  chert-batch optouts pull
      record the senders of STOP-like replies from the account's event log
  chert-batch optouts import dnc.csv
      put every number of a do-not-contact list on the opt-out list
  chert-batch optouts list --json
""",
)
def optouts() -> None:
    """The opt-out list, one for every account of this user: who must not get a message.

    It lives in the chert-batch home (CHERT_BATCH_HOME, else the user data folder).
    `pull` feeds it with the senders whose whole reply is STOP, STOPALL, UNSUBSCRIBE,
    CANCEL, END, QUIT, OPTOUT, OPT OUT or REVOKE; `add` and `import` by hand.
    """


@optouts.command(short_help="Put numbers on the opt-out list.")
@click.argument("numbers", nargs=-1, required=True, metavar="NUMBER...")
@_REGION
def add(numbers: tuple[str, ...], region: str) -> None:
    """Put numbers on the opt-out list, as opted out now, "added by hand"."""
    phones = _numbers(numbers, region, sender=False)
    at = now_iso()
    with _store() as store:
        added = store.add(OptOut(number, at, BY_HAND) for number in phones)
    already = len(phones) - len(added)
    click.echo(
        f"Added {plural(len(added), 'number')} to the opt-out list"
        + (f"; {already} {'was' if already == 1 else 'were'} on it already." if already else ".")
    )


@optouts.command(short_help="Take numbers off the opt-out list.")
@click.argument("numbers", nargs=-1, required=True, metavar="NUMBER...")
@_REGION
def remove(numbers: tuple[str, ...], region: str) -> None:
    """Take numbers off the opt-out list: they may be messaged again.

    A reply already pulled is not pulled again, so the number stays off.
    """
    # A reply's sender need only be a possible number to be on the list.
    phones = _numbers(numbers, region, sender=True)
    with _store() as store:
        removed = store.remove(phones)
    missing = [number for number in phones if number not in removed]
    click.echo(
        f"Removed {plural(len(removed), 'number')} from the opt-out list"
        + (f"; not on it: {', '.join(missing)}." if missing else ".")
    )


@optouts.command(name="list", short_help="Print the opt-out list.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print number, time and source of each, as JSON."
)
def list_(as_json: bool) -> None:
    """Print the opt-out list, one E.164 number a line."""
    with _store() as store:
        entries = store.entries()
    if as_json:
        click.echo(json.dumps([entry.to_json() for entry in entries], indent=2))
        return
    for entry in entries:
        click.echo(entry.number)


@optouts.command(name="import", short_help="Put a suppression file's numbers on the list.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_REGION
def import_(file: Path, region: str) -> None:
    """Put every number of a suppression file on the opt-out list.

    FILE is a CSV or XLSX file with a phone column (Phone, Mobile, Number, To, ...),
    or numbers alone, one a line. If any number cannot be used, nothing is imported.
    """
    try:
        found = read_numbers(file, region)
        if found.bad:
            raise bad_numbers(
                found,
                where=str(file),
                nothing="imported",
                hint="Fix them (or delete those lines) and import again.",
            )
        if not found.numbers:
            raise InputError(f"{file} holds no phone numbers.")
    except BatchError as error:
        _fail(error)
        return
    at = now_iso()
    with _store() as store:
        added = store.add(OptOut(n, at, f"imported from {file.name}") for n in found.numbers)
    already = len(found.numbers) - len(added)
    click.echo(
        f"Imported {plural(len(found.numbers), 'number')} from {file.name}: "
        f"{len(added)} new, {already} on the list already."
    )


@optouts.command(short_help="Record the opt-outs in the account's new replies.")
@account_options
@click.option("--json", "as_json", is_flag=True, help="Print what was read and added as JSON.")
def pull(auth: str, tenant: str | None, base_url: str, use_sandbox: bool, as_json: bool) -> None:
    """Read the account's new replies from its event log; record the STOP-like ones.

    Only events since the last pull of this account are read. A reply opts out when
    all of it, trimmed of spaces and punctuation, is one opt-out word: "Stop!" does,
    "stop by tomorrow" does not. Exit 1 when the event log cannot be read.
    """
    if use_sandbox:
        _sandbox_wins_over(click.get_current_context(), base_url)
    try:
        with _stop_signals_raise(), ExitStack() as stack:
            if use_sandbox:
                from batcher.sandbox import running_sandbox

                target = sandbox_target(stack.enter_context(running_sandbox()), auth)
            else:
                target = account_target(base_url, auth, tenant)
            report = pull_account(target.base_url, target.credentials)
    except BatchError as error:
        _fail(error)
        return
    except (KeyboardInterrupt, _Stop) as stop:
        _say_stopped(stop, "every opt-out found so far is kept", "To read the rest")
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(pull_summary(report))


def pull_summary(report: PullReport) -> str:
    """What a pull did, for a person: "3 new opt-outs from 120 replies." and any caveats."""
    replies = plural(report.replies, "reply", "replies")
    lines = [f"{plural(len(report.added), 'new opt-out')} from {replies}."]
    already = report.opt_outs - len(report.added) - len(report.not_numbers)
    if already > 0:
        lines.append(f"{plural(already, 'opt-out')} from numbers already on the list.")
    if report.not_numbers:
        lines.append(
            f"Not recorded, not being phone numbers: {', '.join(report.not_numbers)} "
            "(chert-batch sends to phone numbers only)."
        )
    if report.unreadable:
        lines.append(
            f"{plural(report.unreadable, 'event')} without a sender, id or time "
            "could not be read and were skipped."
        )
    return "\n".join(lines)


def _numbers(values: tuple[str, ...], region: str, *, sender: bool) -> list[str]:
    """The numbers typed, E.164; a bad one is a usage error naming it (exit 2)."""
    phones: list[str] = []
    for value in values:
        phone = normalize_phone(value, region, sender=sender)
        if phone.problem:
            _fail(UsageError(phone.problem, hint="Nothing was changed."))
        phones.append(phone.e164)
    return list(dict.fromkeys(phones))


@contextmanager
def _store() -> Iterator[OptOuts]:
    """The home's opt-out list; a home or file that cannot be used is the CLI's error."""
    try:
        with OptOuts() as store:
            yield store
    except BatchError as error:
        _fail(error)


main.add_command(optouts)
