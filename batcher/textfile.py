"""A text (CSV) handoff file's bytes as text: in the one encoding it was written in, or refused.

What is sent must be what the sheet says, so no byte is guessed at: a file with a
byte-order mark is read in the encoding the mark names (UTF-8, or UTF-16 and UTF-32,
as Excel's "Unicode Text" export writes); one without is UTF-8 if it is valid UTF-8;
Windows-1252 (Excel's older "CSV") only if every byte beyond ASCII is invalid as UTF-8,
so no part of the file reads as UTF-8 text. A file that is UTF-8 but for a few bytes
is refused with where those bytes are: read as Windows-1252, every accented letter of
the rest would be sent garbled.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from batcher.errors import InputError

UTF8 = "UTF-8"
WINDOWS_1252 = "Windows-1252"

# Longest first: UTF-32 LE's mark begins with UTF-16 LE's.
_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32 LE"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32 BE"),
    (codecs.BOM_UTF8, "utf-8", UTF8),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16 LE"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16 BE"),
)
# Bytes UTF-8 cannot decode, as the surrogateescape handler keeps them: U+DC80-U+DCFF.
_UNDECODED = re.compile("[\udc80-\udcff]")
# Anything beyond ASCII that UTF-8 did decode: a valid multi-byte sequence.
_DECODED_BEYOND_ASCII = re.compile("[^\x00-\x7f\udc80-\udcff]")
_SHOWN_BAD_BYTES = 5
_CONTEXT = 20
_DELIMITERS = (",", ";", "\t")
_SAVE_AS_UTF8 = (
    "Open it in your spreadsheet and save it as 'CSV UTF-8' (or, from Excel, as "
    "'Unicode Text'), then run again."
)


class Decoded(NamedTuple):
    """A text file's content and the encoding it was read in, as a person names it."""

    text: str
    encoding: str


def decode_text(where: object, data: bytes) -> Decoded:
    """The text of a CSV file's bytes, and its encoding; InputError where bytes do not fit."""
    for mark, codec, label in _MARKS:
        if data.startswith(mark):
            if codec == "utf-8":
                return Decoded(_utf8(where, data, len(mark)), label)
            return Decoded(_marked(where, data, len(mark), codec, label), label)
    if _looks_binary(data):
        raise InputError(
            f"{where} is not a text file, so it cannot be a CSV file (its first line holds "
            "NUL bytes).",
            hint="Give chert-batch a .csv or .xlsx handoff file. " + _SAVE_AS_UTF8,
        )
    try:
        return Decoded(data.decode("utf-8"), UTF8)
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", "surrogateescape")
    if _DECODED_BEYOND_ASCII.search(text):
        raise _mostly_utf8(where, text)
    try:
        return Decoded(data.decode("cp1252"), WINDOWS_1252)
    except UnicodeDecodeError as exc:
        line, column = _line_and_byte(data, exc.start)
        raise InputError(
            f"{where} is neither UTF-8 nor Windows-1252 text: the byte 0x{data[exc.start]:02X} "
            f"at line {line}, byte {column} is neither.",
            hint=_SAVE_AS_UTF8,
        ) from None


def _utf8(where: object, data: bytes, start: int) -> str:
    """A file marked as UTF-8: every byte after the mark must be UTF-8."""
    body = data[start:]
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise _mostly_utf8(where, body.decode("utf-8", "surrogateescape")) from None


def _marked(where: object, data: bytes, start: int, codec: str, label: str) -> str:
    """A file marked as UTF-16 or UTF-32: all of it must be that."""
    try:
        return data[start:].decode(codec)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{where} starts with the byte-order mark of {label} text, but is not {label} "
            f"text: {exc.reason} at byte {start + exc.start + 1} of the file.",
            hint=_SAVE_AS_UTF8,
        ) from None


def _looks_binary(data: bytes) -> bool:
    """Whether a file without a byte-order mark is no text file at all.

    A NUL in a CSV's first line (its header) or NULs everywhere (a tenth of its start)
    mean a binary file, or UTF-16 without its mark; a NUL further on is a row's
    problem (see batcher.validation), reported with the rest of that row.
    """
    head = data[:65536]
    first = next((line for line in head.split(b"\n") if line.strip()), b"")
    return b"\x00" in first or head.count(b"\x00") > len(head) // 10


def _mostly_utf8(where: object, text: str) -> InputError:
    """The refusal of a UTF-8 file with bytes that are not UTF-8: where each of the first is.

    `text` is the file (after any byte-order mark) decoded with surrogateescape, so each
    such byte is one character; lines and bytes within a line are what an editor counts.
    """
    bad = list(_UNDECODED.finditer(text))
    shown = []
    for match in bad[:_SHOWN_BAD_BYTES]:
        start = text.rfind("\n", 0, match.start()) + 1
        before = text[start : match.start()]
        column = len(before.encode("utf-8", "surrogateescape")) + 1
        context = _UNDECODED.sub("\ufffd", before[-_CONTEXT:]).lstrip()
        after = f", after {context!r}" if context else ""
        byte = ord(match.group()) - 0xDC00
        line = text.count("\n", 0, match.start()) + 1
        shown.append(f"line {line}, byte {column} (0x{byte:02X}{after})")
    more = f"; and {len(bad) - len(shown)} more" if len(bad) > len(shown) else ""
    count = "1 byte that is" if len(bad) == 1 else f"{len(bad)} bytes that are"
    return InputError(
        f"{where} is UTF-8 text except for {count} not UTF-8: {'; '.join(shown)}{more}.",
        hint="Read any other way, its accented letters would be sent garbled. Retype the "
        "characters at those places, or save the file again as 'CSV UTF-8', then run again.",
    )


def _line_and_byte(data: bytes, position: int) -> tuple[int, int]:
    """1-based line and byte within that line of a byte offset."""
    start = data.rfind(b"\n", 0, position) + 1
    return data.count(b"\n", 0, position) + 1, position - start + 1


def sniff_delimiter(text: str) -> str:
    """The delimiter among comma, semicolon and tab that the header line uses most."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = {delimiter: header.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


@contextmanager
def whole_fields(text: str) -> Iterator[None]:
    """Let the csv module read fields as long as the whole text, then restore its limit.

    The module refuses fields over 131,072 characters by default (a process-wide
    setting, the only one it has): a long message must be read whole, and then judged
    by the limit on what is sent (batcher.validation), not cut or refused as malformed.
    """
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, len(text) + 1))
    try:
        yield
    finally:
        csv.field_size_limit(previous)
