"""Placeholders: `{{Column}}` and `{{Column|fallback}}` in a cell, filled from the row.

Parsing and rendering are pure functions of text. A placeholder names a column the
way headers are matched (`batcher.columns.header_key`: case, spaces, dashes and
underscores do not count). A `{{` or `}}` that is not part of a whole placeholder
is a mistake the row is refused for, never text sent as it is: "Hi {{First Name}"
would otherwise reach every recipient with its braces.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from batcher.columns import ColumnMap, column_name, header_key
from batcher.errors import UsageError

_PLACEHOLDER = re.compile(r"\{\{([^{}|]*)(?:\|([^{}]*))?\}\}")
# Where a placeholder's name starts, for a cheap scan of a whole sheet's names.
_NAMES = re.compile(r"\{\{([^{}|]*)(?=(?:\|[^{}]*)?\}\})")
# What a column's cells are joined with, for one search of them all: a lone brace, which
# no placeholder can hold or share, so that no placeholder found spans two cells.
_CELL_BREAK = "\n{\n"
# Invisible characters a copy brings along, never meant: zero-width space, word joiner,
# BOM. Zero-width (non-)joiners shape Persian and Indic words and join emoji, so they
# go only at the ends of a value, where they join nothing.
_INVISIBLE = re.compile("[\u200b\u2060\ufeff]")
_EDGE_JOINERS = "\u200c\u200d"
# Non-breaking spaces of every width become plain spaces.
_NO_BREAK = str.maketrans({"\u00a0": " ", "\u2007": " ", "\u202f": " "})


class Placeholder(NamedTuple):
    """One `{{name|fallback}}`: the name as written, the fallback (None: none given), and
    the name as headers are matched (`key`)."""

    name: str
    fallback: str | None
    key: str

    def shown(self) -> str:
        """The placeholder as a message quotes it."""
        tail = "" if self.fallback is None else f"|{self.fallback}"
        return f"{{{{{self.name}{tail}}}}}"


class Template(NamedTuple):
    """A cell's text cut into literal pieces and placeholders (`str` or `Placeholder`)."""

    pieces: tuple[str | Placeholder, ...]
    placeholders: tuple[Placeholder, ...]


class TemplateError(ValueError):
    """A cell's braces do not form whole placeholders: says where, and what to write."""


# A placeholder name's match key: a sheet names the same few columns in every row, and a
# row's text is parsed anew whenever it differs from the others (a number in it, say).
_name_key = lru_cache(maxsize=1024)(header_key)


def has_braces(text: str) -> bool:
    """Whether a text may hold placeholders (or stray braces): the cheap test first."""
    return "{{" in text or "}}" in text


@lru_cache(maxsize=4096)
def parse(text: str) -> Template:
    """A cell's text as literal pieces and placeholders; TemplateError for stray braces.

    Cached: a template column usually holds the same text in every row.
    """
    pieces: list[str | Placeholder] = []
    starts: set[int] = set()
    ends: set[int] = set()
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        name = match.group(1).strip()
        if not name:
            raise TemplateError(
                f"{match.group()!r} at character {match.start() + 1} names no column. "
                "Write {{Column}} with a column's header inside, or remove the braces."
            )
        fallback = match.group(2)
        if match.start() > position:
            pieces.append(text[position : match.start()])
        pieces.append(
            Placeholder(name, None if fallback is None else fallback.strip(), _name_key(name))
        )
        starts.add(match.start())
        ends.add(match.end() - 2)
        position = match.end()
    if position < len(text):
        pieces.append(text[position:])
    # Names and fallbacks hold no brace: when every brace is a placeholder's own, no pair
    # can be a stray, and the search for them is skipped (the common case, every row).
    braces = 2 * len(starts)
    if text.count("{") != braces or text.count("}") != braces:
        _check_strays(text, starts, ends)
    return Template(
        tuple(pieces), tuple(piece for piece in pieces if isinstance(piece, Placeholder))
    )


def _check_strays(text: str, starts: set[int], ends: set[int]) -> None:
    """Every `{{` must open a placeholder and every `}}` close one; else say where."""
    for pair, allowed in (("{{", starts), ("}}", ends)):
        index = text.find(pair)
        while index != -1:
            if index not in allowed:
                raise TemplateError(
                    f"a stray {pair!r} at character {index + 1} is not part of a whole "
                    "placeholder. Write {{Column}} or {{Column|fallback}}, or remove the braces."
                )
            index = text.find(pair, index + 1)


def clean_value(value: str) -> str:
    """A substituted value as a person expects it: trimmed, without invisible characters.

    Non-breaking spaces become plain ones; zero-width spaces, word joiners and BOMs
    go; zero-width joiners go only at the ends. Nothing else changes.
    """
    if value.isascii():  # none of those characters: the common case, at a strip's cost
        return value.strip()
    value = _INVISIBLE.sub("", value.translate(_NO_BREAK))
    return value.strip().strip(_EDGE_JOINERS).strip()


class Empty(NamedTuple):
    """A placeholder with no fallback whose column is empty in this row."""

    placeholder: Placeholder
    column: str


def render(template: Template, value: Callable[[str], str]) -> str | Empty:
    """The text with every placeholder filled by `value(key)` (cleaned), or the first Empty.

    `value` gives the raw cell of the column a placeholder's key names; a name that no
    column has is for the caller to have refused first (see `missing_placeholders`).
    """
    out: list[str] = []
    for piece in template.pieces:
        if isinstance(piece, str):
            out.append(piece)
            continue
        filled = clean_value(value(piece.key))
        if not filled:
            if piece.fallback is None:
                return Empty(piece, piece.name)
            filled = piece.fallback
        out.append(filled)
    return "".join(out)


class Unknown(NamedTuple):
    """A placeholder whose name no column of the sheet has."""

    placeholder: Placeholder


class Filler:
    """`parse` then `render` for every row of one sheet, without their cost per row.

    A row's text differs from the others' (a number in it, say), so nothing is cached by
    text: each is cut by one `_PLACEHOLDER.split` (literal, name, fallback, literal, ...),
    and only the placeholders, which repeat, are worked out once each: their Placeholder
    and column. What it gives is what parse and render give, which stay the rule it is
    held to (tests/test_templates.py): parse's TemplateError, else the first placeholder
    naming no column (Unknown), else render's text or Empty.
    """

    def __init__(self, keys: Mapping[str, int], read: Callable[[str], str]) -> None:
        """`keys`: each column's match key → its index in a row's cells (`column_keys`);
        `read`: how the caller reads a cell (a pure function), before clean_value."""
        self._keys = keys
        self._read = read
        # (name, fallback) as written → the placeholder and its column (-1: none has it).
        self._slots: dict[tuple[str, str | None], tuple[Placeholder, int]] = {}
        # A cell as it is → the value it fills a placeholder with: names repeat.
        self._values: dict[str, str] = {}

    def fill(self, text: str, cells: Sequence[str]) -> str | Empty | Unknown:
        """`text` filled from a row's `cells`; TemplateError for stray braces."""
        pieces = _PLACEHOLDER.split(text)
        braces = 2 * (len(pieces) // 3)
        if text.count("{") != braces or text.count("}") != braces:
            parse(text)  # a brace of no placeholder: parse says which, if it is a stray
        # One pass: a blank name anywhere is parse's error, then the first placeholder
        # naming no column is the answer, then the first empty one without a fallback.
        outcome: Empty | Unknown | None = None
        slots, values = self._slots, self._values
        for index in range(1, len(pieces), 3):
            slot = slots.get((pieces[index], pieces[index + 1]))
            if slot is None:
                slot = self._slot(text, pieces[index], pieces[index + 1])
            placeholder, column = slot
            if column < 0:
                if not isinstance(outcome, Unknown):
                    outcome = Unknown(placeholder)
                continue
            if outcome is not None:
                continue
            cell = cells[column]
            filled = values.get(cell)
            if filled is None:
                filled = values[cell] = clean_value(self._read(cell))
            if not filled:
                if placeholder.fallback is None:
                    outcome = Empty(placeholder, placeholder.name)
                    continue
                filled = placeholder.fallback
            pieces[index] = filled
            pieces[index + 1] = ""
        return "".join(pieces) if outcome is None else outcome

    def _slot(self, text: str, name: str, fallback: str | None) -> tuple[Placeholder, int]:
        """A placeholder as written, worked out and kept; a blank name is parse's error."""
        shown = name.strip()
        if not shown:
            parse(text)  # raises: the text's first placeholder that names no column
        key = _name_key(shown)
        placeholder = Placeholder(shown, None if fallback is None else fallback.strip(), key)
        slot = self._slots[name, fallback] = (placeholder, self._keys.get(key, -1))
        return slot


def placeholder_names(text: str) -> list[str]:
    """The names of a text's placeholders, found cheaply (stray braces are not checked)."""
    return [name.strip() for name in _NAMES.findall(text) if name.strip()]


def column_keys(headers: tuple[str, ...]) -> dict[str, int]:
    """Each header's match key → its column (the first, if two headers match alike)."""
    keys: dict[str, int] = {}
    for index, header in enumerate(headers):
        key = header_key(header)
        if key:
            keys.setdefault(key, index)
    return keys


def all_placeholders_known(texts: Iterable[str], headers: tuple[str, ...]) -> bool:
    """Whether every placeholder in `texts` names a column: one search of them all.

    The quick answer, for the sheet where they all do; `missing_placeholders` says which
    do not and where (the two agree: tests/test_templates.py).
    """
    keys = column_keys(headers)
    names = {name.strip() for name in set(_NAMES.findall(_CELL_BREAK.join(texts)))}
    return all(_name_key(name) in keys for name in names if name)


def missing_placeholders(
    cells: Iterable[tuple[int, str]], headers: tuple[str, ...]
) -> dict[str, list[int]]:
    """Placeholders that name no column: each name as first written → the rows it is in.

    `cells` are (row number, text) of every cell that may hold placeholders; row 0
    stands for the --template text.
    """
    keys = column_keys(headers)
    missing: dict[str, list[int]] = {}
    by_key: dict[str, str] = {}
    names: dict[str, str] = {}  # name → its key: a sheet repeats a few names in every row
    for row, text in cells:
        if not has_braces(text):
            continue
        for name in placeholder_names(text):
            key = names.get(name)
            if key is None:
                key = names[name] = _name_key(name)
            if key in keys:
                continue
            rows = missing.setdefault(by_key.setdefault(key, name), [])
            if not rows or rows[-1] != row:
                rows.append(row)
    return missing


def missing_error(
    where: str, missing: Mapping[str, list[int]], headers: tuple[str, ...]
) -> UsageError:
    """The usage error for placeholders naming no column: every one, and the sheet's columns."""
    listed = "; ".join(f"{{{{{name}}}}} ({_rows(rows)})" for name, rows in missing.items())
    columns = ", ".join(repr(column_name(headers, i)) for i, h in enumerate(headers) if h)
    count = "a placeholder names" if len(missing) == 1 else f"{len(missing)} placeholders name"
    return UsageError(
        f"{where}: {count} no column: {listed}. The sheet's columns are: {columns}.",
        hint="Write each placeholder as one of those columns (case, spaces, dashes and "
        "underscores do not matter), or add the column. Nothing was sent.",
    )


def _rows(rows: list[int], shown: int = 5) -> str:
    if rows == [0]:
        return "in --template"
    rows = [row for row in rows if row]
    head = ", ".join(str(row) for row in rows[:shown])
    more = f" and {len(rows) - shown} more" if len(rows) > shown else ""
    return f"row{'s' if len(rows) > 1 else ''} {head}{more}"


def read_template(path: Path) -> str:
    """A --template file's text: UTF-8 (a BOM is allowed), without the line end editors add."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(
            f"--template {path}: cannot be read ({error.strerror or error}).",
            hint="Give the path of a UTF-8 text file holding the message.",
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageError(
            f"--template {path}: byte {error.start + 1} is not UTF-8 text "
            f"({data[error.start : error.start + 1]!r}).",
            hint="Save the file as UTF-8 (in most editors: Save As, encoding UTF-8).",
        ) from None
    text = text.rstrip("\r\n")
    if not text.strip():
        raise UsageError(f"--template {path} is empty.", hint="Write the message text in the file.")
    return text


def replaced_column(
    columns: ColumnMap, *, where: str, template: Path, replaces: str | None
) -> int | None:
    """The text column the --template text takes the place of (None: the sheet has none).

    A sheet with a text column and a template is ambiguous unless `replaces` (the
    --template-replaces option) names that column: which text is meant?
    """
    texts = [index for kind, index in columns.parts if kind == "text"]
    names = ", ".join(repr(columns.name(index)) for index in texts)
    if replaces is None:
        if not texts:
            return None
        first = columns.name(texts[0])
        raise UsageError(
            f"{where} has a text column ({names}), and --template {template} gives every "
            "row's text too.",
            hint=f"To send the template instead of the column, add --template-replaces "
            f"{shlex.quote(first)}; to send the column, drop --template.",
        )
    wanted = header_key(replaces)
    found = next((index for index in texts if header_key(columns.headers[index]) == wanted), None)
    if found is None:
        has = f"its text columns are {names}" if texts else "it has no text column"
        raise UsageError(
            f"--template-replaces {replaces!r} names no text column of {where}: {has}.",
            hint="Name the text column the template replaces, or drop --template-replaces.",
        )
    return found
