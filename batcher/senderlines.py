"""The account's sender lines: `GET /phone-numbers`, read once, and the rows it rules out.

A row from a line the account does not list would get 2006 from every send: it
fails without a request. A row from a listed line that is not active waits
(`pending`) until the line is active again. A list that cannot be read (no such
route, an error, no answer, a shape not understood) rules nothing out: the run
goes on as it would without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from batcher.client import Answer, ChertClient, Unanswered
from batcher.model import RowOutcome, Status
from batcher.phones import normalize_phone

PHONE_NUMBERS = "/phone-numbers"
NOT_THE_ACCOUNTS = 2006


class Barred(StrEnum):
    """Why nothing is sent from a line."""

    UNKNOWN = "unknown"  # not among the account's lines
    INACTIVE = "inactive"  # the account's, but not active


def listed_lines(payload: Mapping[str, Any]) -> dict[str, bool] | None:
    """The account's lines (E.164 → is_active) from the documented answer; None if not that.

    A line without `is_active` is taken as active: only an explicit false holds rows back.
    """
    entries = payload.get("phone_numbers")
    if not isinstance(entries, list):
        return None
    lines: dict[str, bool] = {}
    for entry in entries:
        number = entry.get("phone_number") if isinstance(entry, dict) else None
        if not isinstance(number, str):
            return None
        phone = normalize_phone(number, "US", sender=True)
        lines[phone.e164 or number] = entry.get("is_active") is not False
    return lines


def lines_or_why(result: Answer | Unanswered) -> dict[str, bool] | str:
    """The account's lines from the answer to GET /phone-numbers, or why there are none."""
    if isinstance(result, Unanswered):
        return result.reason
    if not result.ok:
        code = f" / {result.code}" if result.code else ""
        return f"HTTP {result.status}{code}: {result.message}"
    lines = listed_lines(result.payload)
    return "an answer without a phone_numbers list" if lines is None else lines


async def read_lines(client: ChertClient) -> dict[str, bool] | str:
    """GET /phone-numbers once: the account's lines, or why they could not be read."""
    return lines_or_why(await client.get(PHONE_NUMBERS))


def barred_lines(senders: Iterable[str], lines: Mapping[str, bool]) -> dict[str, Barred]:
    """The senders nothing may be sent from, and why."""
    barred: dict[str, Barred] = {}
    for sender in senders:
        if sender not in lines:
            barred[sender] = Barred.UNKNOWN
        elif not lines[sender]:
            barred[sender] = Barred.INACTIVE
    return barred


def barred_outcome(outcome: RowOutcome, line: str, why: Barred) -> RowOutcome:
    """A row from a barred line: failed with 2006 (unknown) or pending (inactive), unsent."""
    if why is Barred.UNKNOWN:
        return outcome._replace(
            status=Status.FAILED,
            error_code=str(NOT_THE_ACCOUNTS),
            error_message=f"the account has no line {line} (Chert does not list it among the "
            "account's lines); not sent. Check --from or the From column",
        )
    return outcome._replace(
        status=Status.PENDING,
        error_code="",
        error_message=f"line {line} is not active in the account; not sent. Activate it "
        "(or send the row from another line), then run again",
    )
