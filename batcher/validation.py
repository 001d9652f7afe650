"""Normalizing and validating one row: a pure function from sheet cells to a message or a problem.

The checks here are the ones that depend on the row alone. Rules that depend on
the row's place in its chat (a DM's first message may not carry a URL in its
text, a group must start with text) are applied by `batcher.planning`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from batcher.columns import ColumnMap
from batcher.loading import SheetRow
from batcher.model import Part, Problem
from batcher.phones import RETYPE, normalize_phone

MAX_RECIPIENTS = 31
_RECIPIENT_SEPARATORS = re.compile(r"[;,|\r\n]+")
_WEB_ADDRESS = re.compile(r"https?://[^\s/?#]+\.[^\s/?#]+\S*", re.IGNORECASE)
_ATTACHMENT_ID = re.compile(r"\S+")
# Keys chert-batch derives itself: a version prefix and 32 hex digits (see batcher.planning).
DERIVED_KEY = re.compile(r"cb1-[0-9a-f]{32}")
# What a results CSV prefixed with "'" so that a spreadsheet would not run it as a formula.
_ESCAPED_CELL = re.compile(r"'[=+\-@\t\r]")


@dataclass(frozen=True, slots=True)
class Rules:
    """What validation needs from the options: region, fallback sender, duplicates policy."""

    region: str = "US"
    default_sender: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    """A row that passed validation: normalized sender, sorted recipients and ordered parts."""

    row: int
    sender: str
    recipients: tuple[str, ...]
    subject: str
    parts: tuple[Part, ...]
    chat_id: str
    keys: tuple[str, ...]
    # Column names, so that planning can say where a problem is.
    part_columns: tuple[str, ...] = ()
    text_column: str = "Text"
    key_column: str = "idempotency_key"

    @property
    def is_group(self) -> bool:
        """Whether the message goes to a group chat (2-31 recipients)."""
        return len(self.recipients) > 1


class _Reader:
    """Reads one row's cells, remembering the sheet facts each check needs."""

    def __init__(
        self, row: SheetRow, columns: ColumnMap, scientific: frozenset[tuple[int, int]]
    ) -> None:
        self.row = row
        self.columns = columns
        self.scientific = scientific
        self.unescape = columns.is_results_sheet

    def text(self, index: int | None) -> str:
        if index is None:
            return ""
        value = self.row.cell(index).strip()
        if self.unescape and _ESCAPED_CELL.match(value):
            return value[1:]
        return value

    def problem(self, index: int | None, value: str, code: int, message: str) -> Problem:
        return Problem(self.row.number, self.columns.name(index), value, code, message)

    def is_scientific(self, index: int) -> bool:
        return (self.row.number, index) in self.scientific


def validate_row(
    row: SheetRow,
    columns: ColumnMap,
    rules: Rules,
    scientific: frozenset[tuple[int, int]] = frozenset(),
) -> Message | Problem:
    """Normalize a row's numbers and parts; the first problem found, with the API's code."""
    cells = _Reader(row, columns, scientific)
    chat_id = cells.text(columns.chat_id)
    sender = _sender(cells, rules, chat_id)
    if isinstance(sender, Problem):
        return sender
    recipients = _recipients(cells, rules, chat_id)
    if isinstance(recipients, Problem):
        return recipients
    found = _parts(cells)
    if isinstance(found, Problem):
        return found
    parts, part_columns = found
    keys = tuple(cells.text(columns.idempotency_key).split())
    if columns.is_results_sheet and all(DERIVED_KEY.fullmatch(key) for key in keys):
        keys = ()  # written by an earlier run: derive again, so a fixed row gets a fresh key
    return Message(
        row=row.number,
        sender=sender,
        recipients=recipients,
        subject=cells.text(columns.subject),
        parts=parts,
        chat_id=chat_id,
        keys=keys,
        part_columns=part_columns,
        text_column=next((columns.name(i) for kind, i in columns.parts if kind == "text"), "Text"),
        key_column=columns.name(columns.idempotency_key)
        if columns.idempotency_key is not None
        else "idempotency_key",
    )


def _sender(cells: _Reader, rules: Rules, chat_id: str) -> str | Problem:
    index = cells.columns.sender
    raw = cells.text(index) or rules.default_sender
    if not raw:
        if chat_id:
            return ""  # a follow-up into an existing chat needs no sender
        return cells.problem(
            index, "", 1001, "no sender. Fill in the sending line, or pass --from for all rows."
        )
    if index is not None and cells.is_scientific(index):
        return cells.problem(index, raw, 1003, _scientific_cell(raw))
    phone = normalize_phone(raw, rules.region, sender=True)
    if phone.problem:
        return cells.problem(index, raw, 1003, phone.problem)
    return phone.e164


def _recipients(cells: _Reader, rules: Rules, chat_id: str) -> tuple[str, ...] | Problem:
    found: set[str] = set()
    for index in cells.columns.recipients:
        raw_cell = cells.text(index)
        if raw_cell and cells.is_scientific(index):
            return cells.problem(index, raw_cell, 1003, _scientific_cell(raw_cell))
        for raw in _RECIPIENT_SEPARATORS.split(raw_cell):
            if not raw.strip():
                continue
            phone = normalize_phone(raw, rules.region)
            if phone.problem:
                return cells.problem(index, raw.strip(), 1003, phone.problem)
            found.add(phone.e164)
    first = cells.columns.recipients[0] if cells.columns.recipients else None
    if not found and not chat_id:
        return cells.problem(first, "", 1001, "no recipient. Fill in at least one phone number.")
    if len(found) > MAX_RECIPIENTS:
        return cells.problem(
            first,
            f"{len(found)} numbers",
            1006,
            f"{len(found)} recipients; a chat takes at most {MAX_RECIPIENTS}. "
            "Split them over several rows.",
        )
    return tuple(sorted(found))


def _parts(cells: _Reader) -> tuple[tuple[Part, ...], tuple[str, ...]] | Problem:
    parts: list[Part] = []
    names: list[str] = []
    for kind, index in cells.columns.parts:
        value = cells.text(index)
        if not value:
            continue
        if kind == "rich_link" and not _WEB_ADDRESS.fullmatch(value):
            return cells.problem(
                index, value, 1002, f"{value!r} is not a web address. Start it with https://."
            )
        if kind == "media" and not _ATTACHMENT_ID.fullmatch(value):
            return cells.problem(
                index, value, 1002, f"{value!r} is not an attachment id (it has spaces)."
            )
        parts.append(Part(kind, value))
        names.append(cells.columns.name(index))
    if not parts:
        listed = ", ".join(cells.columns.name(index) for _, index in cells.columns.parts)
        return cells.problem(
            cells.columns.parts[0][1],
            "",
            1001,
            f"nothing to send: {listed} {'is' if len(cells.columns.parts) == 1 else 'are all'} "
            "empty. Write the message, or delete the row.",
        )
    return tuple(parts), tuple(names)


def _scientific_cell(stored: str) -> str:
    return (
        "the cell is formatted as scientific (shown like 1.41555E+10), so the spreadsheet "
        f"has already rounded the number to {stored} and the real number cannot be "
        f"recovered. {RETYPE}"
    )
