"""Who a job leaves out: the home's opt-out list and its `--suppress` files, one rule.

`suppression_reason` is the one rule, for every place that asks (validate, run's plan,
the sender just before each request): a message is not sent when any of its
recipients is on the opt-out list or in a suppression file, and the reason names the
first such recipient and where it is listed. A `Screen` holds what a job is checked
against: the suppression files' numbers (read once) and an opt-out list, either as a
snapshot (validate, the plan) or looked up for every check (the sender, so that an
opt-out pulled or added while a run goes on stops that person's remaining messages;
`OptOuts.find` reads the list again only when its file changed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batcher.audience import bad_numbers, read_numbers
from batcher.model import RowOutcome, Status
from batcher.optouts import OptOut
from batcher.planning import RowPlan

# What a run may still send, and so what an opt-out or a suppression list turns into
# `suppressed`: rows not sent yet, and rows refused before (a rerun would try them again).
SUPPRESSIBLE = frozenset({Status.PENDING, Status.FAILED})

Lookup = Callable[[Sequence[str]], Mapping[str, OptOut]]


def suppression_reason(
    recipients: Iterable[str], optouts: Mapping[str, OptOut], files: Mapping[str, str]
) -> str | None:
    """Why a message to these recipients must not go, or None when it may.

    The first recipient on a list is named, with the list: the opt-out list before a
    suppression file, for that recipient.
    """
    for recipient in recipients:
        entry = optouts.get(recipient)
        if entry is not None:
            return f"opted out on {entry.at[:10]} ({entry.source}): {recipient}"
        name = files.get(recipient)
        if name is not None:
            return f"on suppression list {name}: {recipient}"
    return None


def read_suppress_files(paths: Sequence[Path], region: str) -> dict[str, str]:
    """Every number of the `--suppress` files (normalized for `region`) → the file's name.

    A number in several files is named by the first. A file with any number that cannot
    be used is an InputError listing them: a garbled line may be someone who must not be
    messaged, so nothing is sent until it is fixed.
    """
    numbers: dict[str, str] = {}
    for path in paths:
        found = read_numbers(path, region)
        if found.bad:
            raise bad_numbers(
                found,
                where=f"--suppress {path}",
                nothing="sent",
                hint=f"Fix them (or delete those lines) in {path.name}, then run again.",
            )
        for number in found.numbers:
            numbers.setdefault(number, path.name)
    return numbers


@dataclass(frozen=True)
class Screen:
    """What a job's messages are checked against before they go."""

    files: Mapping[str, str] = field(default_factory=dict)
    optouts: Mapping[str, OptOut] = field(default_factory=dict)
    # Look the opt-out list up for each check (the sender's); else `optouts` is used.
    lookup: Lookup | None = None
    # For `glance`: a lookup that may answer from what `lookup` read last (OptOuts.glance).
    glimpse: Lookup | None = None

    def __bool__(self) -> bool:
        return bool(self.files or self.optouts or self.lookup)

    def reason(self, recipients: Sequence[str]) -> str | None:
        """Why a message to these recipients must not go now, or None."""
        optouts = self.lookup(recipients) if self.lookup is not None else self.optouts
        return suppression_reason(recipients, optouts, self.files)

    def glance(self, recipients: Sequence[str]) -> str | None:
        """`reason`, as the list stood at the last `reason` (or now, without a `glimpse`).

        The sender glances before a message takes its turn, to spare a suppressed one the
        wait, and asks `reason` just before it goes: the check that counts.
        """
        if self.glimpse is None:
            return self.reason(recipients)
        return suppression_reason(recipients, self.glimpse(recipients), self.files)

    def outcome(self, row: RowPlan, outcome: RowOutcome) -> RowOutcome:
        """A row's outcome once screened: `suppressed`, with the reason, if it was to go."""
        if outcome.status not in SUPPRESSIBLE or not row.requests or not self:
            return outcome
        reason = next(filter(None, (self.reason(r.recipients) for r in row.requests)), None)
        if reason is None:
            return outcome
        # A row whose first part went out earlier keeps its ids, and says so.
        sent = "first part sent; the rest: " if outcome.message_id else ""
        return outcome._replace(
            status=Status.SUPPRESSED, error_code="", error_message=sent + reason
        )
