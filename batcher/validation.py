"""Normalizing and validating one row: a pure function from sheet cells to a message or a problem.

The checks here are the ones that depend on the row alone. Rules that depend on
the row's place in its chat (a DM's first message may not carry a URL in its
text, a group must start with text) are applied by `batcher.planning`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from batcher.cells import unescape_csv_cell
from batcher.columns import ColumnMap
from batcher.loading import SheetRow
from batcher.media import Media, MediaKind, MediaProblem, check_media
from batcher.model import Part, PartType, Problem
from batcher.phones import RETYPE, BadNumber, CellVerdict, PhoneBook, cell_verdict, split_recipients
from batcher.templates import Empty, Filler, TemplateError, Unknown, column_keys, has_braces

MAX_RECIPIENTS = 31
# The longest text chert-batch sends in one part (a text, a link, a group's subject), in
# characters (code points). Neither Chert's docs nor Apple's give a limit (third-party
# copies of Chert's error table list 1009, "text too long", without a number): this is a
# conservative one, far beyond any message a person reads, and a longer cell is refused,
# never cut (README, "The handoff file").
MAX_PART_CHARS = 10_000
# What a text may not hold: C0 controls but tab, new line and CR; DEL; the C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs"}
_WEB_ADDRESS = re.compile(r"https?://[^\s/?#]+\.[^\s/?#]+\S*", re.IGNORECASE)
# Keys chert-batch derives itself: a version prefix and 32 hex digits (see batcher.planning).
DERIVED_KEY = re.compile(r"cb1-[0-9a-f]{32}")
# The column index the --template text stands in for: no cell of the sheet holds it.
TEMPLATE = -1


@dataclass(frozen=True, slots=True)
class Rules:
    """What validation needs from the options: region, fallback sender, where media lives."""

    region: str = "US"
    default_sender: str = ""
    # Media files are named relative to the sheet's folder, and may not leave it.
    folder: Path = Path()
    # Test-only: let media URLs be plain http on this machine (the tests' own servers).
    allow_loopback_media: bool = False
    # Media files may be hard links (which could be any file on the disk, linked in).
    allow_hardlinks: bool = False
    # --template: every row's text (placeholders allowed), named as problems name it; it
    # takes the place of the text column `template_replaces`, else it is the first part.
    template: str = ""
    template_name: str = "--template"
    template_replaces: int | None = None


class Message(NamedTuple):
    """A row that passed validation: normalized sender, sorted recipients and ordered parts.

    A NamedTuple, as there is one per row: immutable, and cheap to build.
    """

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


def validate_row(
    row: SheetRow,
    columns: ColumnMap,
    rules: Rules,
    scientific: frozenset[tuple[int, int]] = frozenset(),
    *,
    escaped: bool = False,
    delimiter: str = "",
) -> Message | Problem:
    """Normalize a row's numbers and parts; the first problem found, with the API's code."""
    return RowValidator(columns, rules, scientific, escaped=escaped, delimiter=delimiter)(row)


class RowValidator:
    """`validate_row` for every row of one sheet, with what the rows share worked out once.

    Column names are resolved once per sheet, and each distinct phone cell is split and
    normalized once: a sheet of 100,000 rows repeats many of its numbers. Close it (or
    use it as a context manager) when done, to stop a helper process `prefetch` started.
    `escaped` says the cells are a results CSV's (see `batcher.cells.holds_escaped_cells`);
    `delimiter` is a CSV file's ("" for a workbook), for what a row too wide says.
    """

    def __init__(
        self,
        columns: ColumnMap,
        rules: Rules,
        scientific: frozenset[tuple[int, int]] = frozenset(),
        *,
        escaped: bool = False,
        delimiter: str = "",
        formats_problem: str = "",
        recipients: PhoneBook | None = None,
    ) -> None:
        self.columns = columns
        self.rules = rules
        # Numeric cells not to be trusted: shown in scientific notation, or (when the
        # workbook's number formats cannot be read, `formats_problem`) every one.
        self.scientific = scientific
        self.formats_problem = formats_problem
        self.unescape = escaped
        self.delimiter = delimiter
        self.width = len(columns.headers)
        # The columns the header names: up to its last non-empty cell.
        self.named = max((i + 1 for i, header in enumerate(columns.headers) if header), default=0)
        self.parts = _part_columns(columns, rules)
        self.text_column = next((name for kind, _, name in self.parts if kind == "text"), "Text")
        # Cells that may hold placeholders (text, link and subject), and what they name.
        self.templated = tuple(index for kind, index, _ in self.parts if kind != "media") + (
            () if columns.subject is None else (columns.subject,)
        )
        self.keys = column_keys(columns.headers)
        self.filler = Filler(self.keys, self.clean)
        self.key_column = (
            "idempotency_key"
            if columns.idempotency_key is None
            else columns.name(columns.idempotency_key)
        )
        # Verdicts by text (after clean): senders' and recipients' numbers, and each
        # recipients cell's sorted distinct numbers or its first bad number.
        self.senders = PhoneBook(rules.region, sender=True)
        # Given, it may be reading the numbers ahead already (PhoneBook.read_ahead).
        self.recipients = recipients or PhoneBook(rules.region)
        self.recipient_cells: dict[str, CellVerdict] = {}
        # Each distinct media cell checked once; what files and URLs need uploading, by ref.
        self.media_cells: dict[str, Media | MediaProblem] = {}
        self.media: dict[str, Media] = {}
        self._pieces: dict[str, list[str]] = {}  # cells prefetch split, until validated

    def __enter__(self) -> RowValidator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop any helper process; the verdicts worked out so far stay usable."""
        self.senders.close()
        self.recipients.close()

    def prefetch(self, rows: Iterable[SheetRow]) -> None:
        """Get the numbers of `rows` worked out before the rows are validated, in order.

        Optional: a row's numbers not prefetched are worked out when it is validated. Given
        all of them, in the order of the rows, batcher.phones can share them with a helper
        process (see PhoneBook).
        """
        rows = list(rows)
        columns = self.columns
        if columns.sender is not None:
            senders = self._distinct(rows, (columns.sender,))
            self.senders.expect(text for text in (*senders, self.rules.default_sender) if text)
        if self.recipients.reading_ahead:
            return  # its helper found them already
        cells = self._distinct(rows, columns.recipients)
        self._pieces = {cell: split_recipients(cell) for cell in cells}
        self.recipients.expect(text for texts in self._pieces.values() for text in texts)

    def _distinct(self, rows: list[SheetRow], indexes: tuple[int, ...]) -> list[str]:
        """The distinct texts of some columns, as _text reads them, in row order."""
        raw = dict.fromkeys(
            row.cells[index] if index < len(row.cells) else "" for row in rows for index in indexes
        )
        return list(dict.fromkeys(self.clean(value) for value in raw))

    def __call__(self, row: SheetRow) -> Message | Problem:
        """Normalize a row's numbers and parts; the first problem found, with the API's code."""
        cells = row.cells
        if len(cells) > self.named:
            wide = self._beyond_header(row.number, cells)
            if wide is not None:
                return wide
        # One search over the whole row for every character a text may not hold (NUL among
        # them): a row with none (nearly every one) needs no per-part search for them.
        controlled = _CONTROL.search("".join(cells)) is not None
        if controlled and "\x00" in "".join(cells):
            return self._nul(row.number, cells)
        if len(cells) < self.width:  # a short CSV line: the cells it lacks are empty
            cells += ("",) * (self.width - len(cells))
        columns = self.columns
        chat_id = self._text(cells, columns.chat_id)
        sender = self._sender(row.number, cells, chat_id)
        if isinstance(sender, Problem):
            return sender
        recipients = self._recipients(row.number, cells, chat_id)
        if isinstance(recipients, Problem):
            return recipients
        rendered = self._render(row.number, cells)
        if isinstance(rendered, Problem):
            return rendered
        found = self._parts(row.number, cells, rendered, controlled)
        if isinstance(found, Problem):
            return found
        parts, part_columns = found
        subject = (
            rendered[columns.subject]
            if columns.subject is not None and columns.subject in rendered
            else self._text(cells, columns.subject)
        )
        if subject:
            unsendable = self._unsendable(
                row.number, columns.subject, subject, "subject", controlled
            )
            if unsendable is not None:
                return unsendable
        keys = (
            ()
            if columns.idempotency_key is None
            else tuple(self._text(cells, columns.idempotency_key).split())
        )
        if keys and columns.is_results_sheet and all(DERIVED_KEY.fullmatch(key) for key in keys):
            keys = ()  # written by an earlier run: derive again, so a fixed row gets a fresh key
        return Message(
            row.number,
            sender,
            recipients,
            subject,
            parts,
            chat_id,
            keys,
            part_columns,
            self.text_column,
            self.key_column,
        )

    def clean(self, value: str) -> str:
        """A cell's text: without the escape a results CSV gave it, then stripped.

        In that order: the escape goes before everything the writer was given, white
        space included ("\t=x" is written "'\t=x"), so it comes off first.
        """
        if self.unescape and value[:1] == "'":
            value = unescape_csv_cell(value)
        return value.strip()

    def _text(self, cells: tuple[str, ...], index: int | None) -> str:
        """`clean` of a cell, "" for a column the sheet lacks (clean inlined: every cell)."""
        if index is None:
            return ""
        value = cells[index]
        if self.unescape and value[:1] == "'":
            value = unescape_csv_cell(value)
        return value.strip()

    def _problem(
        self, number: int, index: int | None, value: str, code: int, message: str
    ) -> Problem:
        name = self.rules.template_name if index == TEMPLATE else self.columns.name(index)
        return Problem(number, name, value, code, message)

    def _render(self, number: int, cells: tuple[str, ...]) -> dict[int, str] | Problem:
        """The row's cells that hold placeholders, filled from its other cells.

        Only cells with braces are rendered (and the --template text, always); the others
        are read as they are. Substituted values are read as every cell is (`clean`),
        then cleaned as batcher.templates.clean_value says.
        """
        rendered: dict[int, str] = {}
        for index in self.templated:
            if index == TEMPLATE:
                raw = self.rules.template
            elif has_braces(cells[index]):  # cleaning changes no brace: test the cell first
                raw = self.clean(cells[index])
            else:
                continue
            try:
                text = self.filler.fill(raw, cells)
            except TemplateError as error:
                return self._problem(number, index, raw, 1002, str(error))
            if isinstance(text, Unknown):
                shown = text.placeholder.shown()
                return self._problem(number, index, raw, 1002, f"{shown} names no column.")
            if isinstance(text, Empty):
                return self._empty(number, index, raw, text)
            rendered[index] = text.strip()
        return rendered

    def _empty(self, number: int, index: int, raw: str, empty: Empty) -> Problem:
        """A placeholder without a fallback whose cell is empty: the row is not sent."""
        shown, name = empty.placeholder.shown(), empty.placeholder.name
        column = self.columns.name(self.keys[empty.placeholder.key])
        return self._problem(
            number,
            index,
            raw,
            1002,
            f"{shown} has nothing to fill it: column {column!r} is empty in this row. Fill "
            f"it in, or give the placeholder a fallback: {{{{{name}|there}}}}.",
        )

    def _beyond_header(self, number: int, cells: tuple[str, ...]) -> Problem | None:
        """A row with text under no header: in a CSV, most often text with unquoted commas.

        Read as it stands, the text would be sent cut at its first comma. Empty cells
        past the header (a spreadsheet pads rows with them) do not count.
        """
        filled = [i for i in range(self.named, len(cells)) if cells[i].strip()]
        if not filled:
            return None
        first, count = filled[0], filled[-1] + 1
        if self.delimiter:
            what = _DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))
            fix = (
                f'Text with {what} must be quoted ("Hello{self.delimiter} world"): save the '
                "file from a spreadsheet, which quotes it, or put quotes around such text."
            )
        else:
            fix = "Give the column a header, or clear the cell."
        return self._problem(
            number,
            first,
            cells[first],
            1002,
            f"the row has {count} cells but the header names {self.named} columns, and "
            f"{_excerpt(cells[first])!r} is under no header. {fix}",
        )

    def _nul(self, number: int, cells: tuple[str, ...]) -> Problem:
        """A row with a NUL character: it would be sent inside the message, or cut it short."""
        index = next(i for i, cell in enumerate(cells) if "\x00" in cell)
        position = cells[index].index("\x00") + 1
        return self._problem(
            number,
            index,
            cells[index],
            1002,
            f"contains a NUL character (U+0000, at character {position}), which would be "
            "sent inside the message. Delete it (retype the text around it), or save the "
            "file again from the program that made it.",
        )

    def _unsendable(
        self, number: int, index: int | None, value: str, kind: str, controlled: bool = True
    ) -> Problem | None:
        """A text that must not be sent as it is: a control character in it, or too long.

        `controlled` False says the row's cells hold no control character, so that a value
        taken from them cannot either.
        """
        control = _CONTROL.search(value) if controlled else None
        if control is not None:
            return self._problem(
                number,
                index,
                value,
                1002,
                f"contains the control character U+{ord(control.group()):04X} (at character "
                f"{control.start() + 1}), which no one can see and a phone may show as a box. "
                "Delete it (retype the text around it).",
            )
        if len(value) > MAX_PART_CHARS:
            fix = "Shorten it" + (
                ", or split it over several text columns (Text, Text 2)." if kind == "text" else "."
            )
            return self._problem(
                number,
                index,
                f"{len(value):,} characters",
                1009,
                f"the {kind.replace('_', ' ')} is {len(value):,} characters long; chert-batch "
                f"sends at most {MAX_PART_CHARS:,} in one part, and never cuts one. {fix}",
            )
        return None

    def _sender(self, number: int, cells: tuple[str, ...], chat_id: str) -> str | Problem:
        index = self.columns.sender
        raw = self._text(cells, index) or self.rules.default_sender
        if not raw:
            if chat_id:
                return ""  # a follow-up into an existing chat needs no sender
            return self._problem(
                number,
                index,
                "",
                1001,
                "no sender. Fill in the sending line, or pass --from for all rows.",
            )
        if self.scientific and index is not None and (number, index) in self.scientific:
            return self._problem(number, index, raw, 1003, self._untrusted_number(raw))
        phone = self.senders[raw]
        if phone.problem:
            return self._problem(number, index, raw, 1003, phone.problem)
        return phone.e164

    def _untrusted_number(self, shown: str) -> str:
        """Why a numeric cell in `scientific` is refused."""
        if self.formats_problem:
            return _unreadable_format(self.formats_problem)
        return _scientific_cell(shown)

    def _recipients(
        self, number: int, cells: tuple[str, ...], chat_id: str
    ) -> tuple[str, ...] | Problem:
        found: tuple[str, ...] | set[str] = ()
        for index in self.columns.recipients:
            cell = self._text(cells, index)
            if not cell:
                continue
            if self.scientific and (number, index) in self.scientific:
                return self._problem(number, index, cell, 1003, self._untrusted_number(cell))
            verdict = self.recipient_cells.get(cell)
            if verdict is None:
                verdict = self.recipients.cell(cell)  # a helper may have read it ahead
                if verdict is None:
                    verdict = self._recipient_cell(cell)
                self.recipient_cells[cell] = verdict
            if isinstance(verdict, BadNumber):
                return self._problem(number, index, verdict.text, 1003, verdict.problem)
            # The common case, one recipients column, needs no merging: the cell's verdict
            # is already sorted and without repeats.
            found = verdict if not found else {*found, *verdict}
        if isinstance(found, set):
            found = tuple(sorted(found))
        first = self.columns.recipients[0] if self.columns.recipients else None
        if not found and not chat_id:
            return self._problem(
                number, first, "", 1001, "no recipient. Fill in at least one phone number."
            )
        if len(found) > MAX_RECIPIENTS:
            return self._problem(
                number,
                first,
                f"{len(found)} numbers",
                1006,
                f"{len(found)} recipients; a chat takes at most {MAX_RECIPIENTS}. "
                "Split them over several rows.",
            )
        return found

    def _recipient_cell(self, cell: str) -> CellVerdict:
        """The cell's numbers, sorted and without repeats, or the first bad one."""
        texts = self._pieces.pop(cell, None)
        if texts is None:
            texts = split_recipients(cell)
        return cell_verdict(texts, self.recipients.__getitem__)

    def _parts(
        self, number: int, cells: tuple[str, ...], rendered: dict[int, str], controlled: bool
    ) -> tuple[tuple[Part, ...], tuple[str, ...]] | Problem:
        parts: list[Part] = []
        names: list[str] = []
        for kind, index, name in self.parts:
            if index in rendered:  # only the --template's own text comes from no cell
                value, checked = rendered[index], controlled or index == TEMPLATE
            else:
                value, checked = self._text(cells, index), controlled
            if not value:
                continue
            unsendable = self._unsendable(number, index, value, kind, checked)
            if unsendable is not None:
                return unsendable
            if kind == "rich_link" and not _WEB_ADDRESS.fullmatch(value):
                return self._problem(
                    number,
                    index,
                    value,
                    1002,
                    f"{value!r} is not a web address. Start it with https://.",
                )
            if kind == "media":
                media = self._media(value)
                if isinstance(media, MediaProblem):
                    shown = media.shown or value  # a URL's password is not shown back
                    return self._problem(number, index, shown, 1002, str(media))
                value = media.ref
            parts.append(Part(kind, value))
            names.append(name)
        if not parts:
            listed = ", ".join(name for _, _, name in self.parts)
            return self._problem(
                number,
                self.parts[0][1],
                "",
                1001,
                f"nothing to send: {listed} {'is' if len(self.parts) == 1 else 'are all'} "
                "empty. Write the message, or delete the row.",
            )
        return tuple(parts), tuple(names)

    def _media(self, value: str) -> Media | MediaProblem:
        """A media cell's check, once per distinct cell: the media, or why it must not go.

        URLs are checked without looking up their host names: validate sends nothing, and
        run checks every hop, resolved, right before it downloads.
        """
        verdict = self.media_cells.get(value)
        if verdict is None:
            try:
                verdict = check_media(
                    value,
                    self.rules.folder,
                    allow_loopback=self.rules.allow_loopback_media,
                    allow_hardlinks=self.rules.allow_hardlinks,
                    resolve_names=False,
                )
            except MediaProblem as problem:
                verdict = problem.with_traceback(None)  # no frames kept alive in the cache
            else:
                if verdict.kind is not MediaKind.ATTACHMENT:
                    self.media[verdict.ref] = verdict
            self.media_cells[value] = verdict
        return verdict


def _part_columns(columns: ColumnMap, rules: Rules) -> tuple[tuple[PartType, int, str], ...]:
    """Each part's kind, column and name, left to right, with the --template text in place."""
    parts = [(kind, index, columns.name(index)) for kind, index in columns.parts]
    if not rules.template:
        return tuple(parts)
    template: tuple[PartType, int, str] = ("text", TEMPLATE, rules.template_name)
    at = next((i for i, (_, index, _) in enumerate(parts) if index == rules.template_replaces), -1)
    if at < 0:
        return (template, *parts)
    parts[at] = template
    return tuple(parts)


def _excerpt(text: str, limit: int = 40) -> str:
    """A text as a message quotes it: whole if short, else its start and an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unreadable_format(problem: str) -> str:
    return (
        f"the cell is a number, and {problem}, so whether the spreadsheet shows it in "
        "scientific notation (which has already rounded away digits) cannot be told. "
        "Format the column as Text and type the numbers again, or save the sheet as CSV UTF-8."
    )


def _scientific_cell(shown: str) -> str:
    return (
        f"the cell is formatted as scientific ({shown}), so the spreadsheet has already "
        f"rounded away digits and the real number cannot be recovered. {RETYPE}"
    )
