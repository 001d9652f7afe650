"""Phone numbers to E.164, repairing the damage spreadsheets do where it is unambiguous.

Repairs: numeric cells (`14155551234.0`), a lost `+` (only for numbers long
enough to carry a country code), `00` and `tel:` prefixes, spaces, dots,
dashes, slashes and brackets, digits of any script and full-width forms (as
a Japanese keyboard types them), and the invisible characters a copy brings along that cannot
change what the cell shows (zero-width spaces and joiners, word joiners, BOMs,
soft hyphens, left-to-right marks). Scientific notation is never repaired: the
digits it dropped are gone, and a "repair" would reach a different person.
Invisible characters that can reorder what a spreadsheet shows (right-to-left
marks, embeddings, overrides) are refused: the number sent would not be the
number the person reading the sheet sees.

A refused number's message fits what the cell holds: an extension, an email
address, two numbers joined by "and", an invisible character, by name. Those
hints are worked out only for refused numbers, so good ones cost nothing more.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import unicodedata
import zipfile
from collections import deque
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import phonenumbers

# phonenumbers compiles its metadata's patterns through re.compile on every match, and
# re's cache lookup was 14 % of normalizing a number: keep them compiled instead (a few
# hundred patterns). normalize_phone 17 % faster, the same verdicts.
phonenumbers.enable_pattern_cache()

# What separates the numbers of one recipients cell: ; , | newlines (and their
# full-width forms, and the ideographic comma).
_RECIPIENT_SEPARATORS = re.compile(r"[;,|\r\n\uff1b\uff0c\uff5c\u3001]+")
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+")
_NUMERIC_CELL = re.compile(r"(\d+)\.0+")
_PUNCTUATION = re.compile(r"[\s().\-/\u00a0\u2010-\u2015]+")
_DIGITS = re.compile(r"\+?\d+")
# A national number never has more than 10 digits in the regions people mean by default;
# 11 or more digits without a "+" is a number that lost it.
_MIN_DIGITS_WITH_COUNTRY_CODE = 11

# Invisible characters (Unicode category Cf) that copying a number from a web page, a
# chat or a phone's contacts brings along, and that cannot change the order in which a
# spreadsheet shows the digits: dropped. Any other Cf character is refused, by name.
_DROPPED_INVISIBLE = frozenset(
    "\u00ad"  # soft hyphen
    "\u200b\u200c\u200d"  # zero width space, non-joiner, joiner
    "\u200e\u202a\u202d\u2066"  # left-to-right mark, embedding, override, isolate
    "\u202c\u2069"  # pop directional formatting, pop directional isolate
    "\u2060\ufeff"  # word joiner, zero width no-break space (BOM)
)
# Of the refused ones, those that can make a spreadsheet show the digits in another order.
_REORDERING = frozenset("\u061c\u200f\u202b\u202e\u2067\u2068")
_FULL_WIDTH = range(0xFF01, 0xFF5F)  # full-width forms of ASCII "!" to "~"
_EMAIL = re.compile(r"(?:mailto:)?[^@\s]+@[^@\s]+\.[^@\s]+", re.IGNORECASE)
_JOINED = re.compile(r"\s*&\s*|\s+and\s+", re.IGNORECASE)
_EXTENSION = re.compile(r"(?<=[\d\s).])\s*(?:(?:ext(?:ension)?|x)\.?:?|#)\s*\d{1,7}$", re.I)


class Phone(NamedTuple):
    """A normalized number, or the reason it is not one (exactly one of the two is set)."""

    e164: str
    problem: str


RETYPE = "Format the column as Text and type the number again."


def scientific_problem(shown: str) -> str:
    """Why a number written in scientific notation cannot be used, and the fix."""
    return (
        f"{shown} is in scientific notation: the spreadsheet has already rounded away "
        f"digits, so the real number cannot be recovered. {RETYPE}"
    )


@lru_cache(maxsize=1 << 17)
def normalize_phone(raw: str, region: str, *, sender: bool = False) -> Phone:
    """E.164 for a cell's text; recipients must be valid numbers, senders possible ones."""
    text = raw.strip()
    if not text.isascii():
        text = _plain(text)
        refused = [ch for ch in text if unicodedata.category(ch) == "Cf"]
        if refused:
            return Phone("", _invisible_problem(raw, refused))
    if _SCIENTIFIC.fullmatch(text):
        return Phone("", scientific_problem(text))
    if text[:4].lower() == "tel:":
        text = text[4:]
    text = text.lstrip("'")  # a typed apostrophe forces text in Excel and survives in CSV
    numeric = _NUMERIC_CELL.fullmatch(text)
    if numeric:
        text = numeric.group(1)
    compact = _PUNCTUATION.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _DIGITS.fullmatch(compact):
        return Phone(
            "", _refusal(raw, text, "a phone number", _hint(region), region=region, sender=sender)
        )
    candidates = [compact]
    if not compact.startswith("+") and len(compact) >= _MIN_DIGITS_WITH_COUNTRY_CODE:
        candidates.append("+" + compact)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        usable = (
            phonenumbers.is_possible_number(number)
            if sender
            else phonenumbers.is_valid_number(number)
        )
        if usable:
            return Phone(
                phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), ""
            )
    kind = "a possible phone number" if sender else "a valid phone number"
    hint = " Check its digits." if compact.startswith("+") else _hint(region)
    return Phone("", _refusal(raw, text, kind, hint, region=region, sender=sender))


class BadNumber(NamedTuple):
    """The first piece of a recipients cell that is not a usable number, and why."""

    text: str
    problem: str


# A recipients cell's verdict: its numbers, sorted and without repeats, or its first bad one.
CellVerdict = tuple[str, ...] | BadNumber


def cell_verdict(texts: Iterable[str], phone: Callable[[str], Phone]) -> CellVerdict:
    """The verdict on a recipients cell cut into `texts`, given each text's Phone."""
    found: set[str] = set()
    for text in texts:
        verdict = phone(text)
        if verdict.problem:
            return BadNumber(text, verdict.problem)
        found.add(verdict.e164)
    return tuple(sorted(found))


def split_recipients(cell: str) -> list[str]:
    """The numbers written in one recipients cell, in order (separators: ; , | newlines)."""
    return [text for text in (raw.strip() for raw in _RECIPIENT_SEPARATORS.split(cell)) if text]


def _plain(text: str) -> str:
    """Digits of any script and full-width forms as ASCII, without harmless invisibles."""
    plain = []
    for ch in text:
        if ch.isascii():
            plain.append(ch)
        elif ch in _DROPPED_INVISIBLE:
            continue
        elif (digit := unicodedata.decimal(ch, None)) is not None:
            plain.append(str(digit))  # Arabic-Indic, full-width: a digit all the same
        elif ord(ch) in _FULL_WIDTH:
            plain.append(chr(ord(ch) - 0xFEE0))
        else:
            plain.append(ch)
    return "".join(plain).strip()


def _invisible_problem(raw: str, refused: list[str]) -> str:
    names = ", ".join(dict.fromkeys(_character_name(ch) for ch in refused))
    why = (
        "which can make a spreadsheet show the digits in another order than they are sent"
        if any(ch in _REORDERING for ch in refused)
        else "which has no place in a phone number"
    )
    return (
        f"{raw.strip()!r} holds an invisible character, {names}, {why}. Type the number "
        "again rather than copying it."
    )


def _refusal(raw: str, text: str, kind: str, hint: str, *, region: str, sender: bool) -> str:
    """Why a cell is not a usable number, with the hint that fits what it holds."""
    joined = [piece for piece in _JOINED.split(text) if sum(map(str.isdigit, piece)) >= 5]
    joiner = _JOINED.search(text)
    extension = _EXTENSION.search(text)
    if _EMAIL.fullmatch(text):
        hint = " It is an email address: Chert sends to phone numbers only. " + (
            "Write the line's number, such as +15555550100."
            if sender
            else "Write the person's mobile number."
        )
    elif len(joined) > 1 and joiner:
        hint = f" It looks like two numbers joined by {joiner.group().strip()!r}. " + (
            "A row is sent from one line: keep one of them."
            if sender
            else f"To send to all of them in one chat, put ; between them ({'; '.join(joined)}); "
            "to message each on their own, give each a row."
        )
    elif extension:
        base = normalize_phone(text[: extension.start()], region, sender=sender).e164
        hint = (
            f" It ends with an extension ({extension.group().strip()}): remove it. Chert sends "
            + ("from" if sender else "to")
            + " the line itself"
            + (f"; without the extension it reads as {base}." if base else ".")
        )
    dropped = [ch for ch in raw if ch in _DROPPED_INVISIBLE]
    if dropped:
        names = ", ".join(dict.fromkeys(_character_name(ch) for ch in dropped))
        hint += (
            f" It also holds an invisible character, {names}, which was left out; if it "
            "stood between two numbers, put ; there instead."
        )
    return f"{raw.strip()!r} is not {kind}.{hint}"


def _character_name(ch: str) -> str:
    """'a zero width space (U+200B)': what an invisible character is, for a person."""
    name = unicodedata.name(ch, "invisible character").lower()
    article = "an" if name[0] in "aeiou" else "a"
    return f"{article} {name} (U+{ord(ch):04X})"


# Below this many distinct numbers, a helper process saves too little to be worth
# starting: it takes about 50 ms to start, and a number about 25 µs to normalize.
PARALLEL_FROM = 10_000
# The helper's part of the numbers, the first ones the rows need: all of them. This
# process goes straight on to validate, plan and write out the rows while the answers come
# in, and works out at once any number the helper has not answered yet (the first few
# thousand, while the helper starts): never a wait, only work done twice. A part kept back
# to work out here first (0.8 once) put all of it on this process's path before the first
# row: 0.4-0.5 s slower on the bench's 100,000-row sheet than letting the rows catch up.
HELPER_SHARE = 1.0
# Numbers per line of the helper's answer: it is read line by line as it comes.
_ANSWER_LINE = 500
# Run by the helper: take the parent's import path first, so that it runs the same code.
_HELPER_CODE = (
    "import json, sys; sys.path[:] = json.loads(sys.stdin.readline()); "
    "from batcher.phones import _serve_helper; _serve_helper()"
)
# A workbook whose sheets' XML declares at least this much (about 10,000 rows) has its
# numbers read ahead: a helper finds them in the XML itself and works them out while
# this process still checks and reads the sheet, a second earlier than `expect` could.
READ_AHEAD_FROM = 4 * 1024 * 1024
_READER_CODE = (
    "import json, sys; sys.path[:] = json.loads(sys.stdin.readline()); "
    "from batcher.phones import _serve_reader; _serve_reader()"
)


class PhoneBook:
    """normalize_phone's verdicts for many texts, worked out ahead of need.

    `expect(texts)` names the texts that will be looked up, in the order they will be.
    With many of them and a second CPU, a helper process (a fresh interpreter) works them
    out (HELPER_SHARE of them, the first ones; this process the rest, at once); lookups
    then take the helper's answers as they arrive. A text the helper has not answered
    yet is worked out here, so nothing ever waits for the helper, and a helper that
    fails costs time, never a different verdict. Close the book (or use it as a context
    manager) to stop the helper.

    `read_ahead(path)`, called before a large XLSX file is read, starts the helper at
    once on the cells it finds in the workbook's XML (workbook.likely_numbers); it
    answers a verdict on each recipients cell (`cell`), and `expect` then does nothing:
    a text looked up is worked out here.
    """

    def __init__(self, region: str, *, sender: bool = False) -> None:
        self.region = region
        self.sender = sender
        self._known: dict[str, Phone] = {}
        self._helper: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._asked: list[str] = []  # what the helper works out, in its order
        self._answered = 0  # how many of those its answers so far covered
        self._lines: deque[bytes] = deque()  # answer lines read, not yet taken in
        self.reading_ahead = False  # the helper reads the cells itself: answers name them
        self._cells: dict[str, CellVerdict] = {}  # what it answered, by cell

    def __enter__(self) -> PhoneBook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def read_ahead(self, path: Path) -> None:
        """Start working out the recipients cells of a large XLSX file before it is read.

        Nothing is started for a small file, a file that is not a zip, with one CPU, or
        once a helper runs. The file is not checked here: the helper reads its XML a
        chunk at a time, and a file it cannot read costs time, never a verdict.
        """
        if self._helper is not None or _usable_cpus() < 2:
            return
        try:
            with zipfile.ZipFile(path) as archive:
                size = sum(
                    info.file_size
                    for info in archive.infolist()
                    if info.filename.startswith("xl/worksheets/")
                )
        except (OSError, zipfile.BadZipFile, ValueError):
            return
        if size < READ_AHEAD_FROM:
            return
        request = [os.fspath(path), self.region, self.sender]
        self.reading_ahead = self._start(_READER_CODE, request)

    def cell(self, cell: str) -> CellVerdict | None:
        """The read-ahead helper's verdict on a whole recipients cell, if it gave one."""
        found = self._cells.get(cell)
        if found is None and self._helper is not None and self.reading_ahead:
            self._take_named()
            found = self._cells.get(cell)
        return found

    def expect(self, texts: Iterable[str]) -> None:
        """Work out these texts now, part of them in a helper process if there are many.

        While a helper reads ahead, nothing: it answers whole cells (`cell`), and a text
        looked up is worked out then.
        """
        if self.reading_ahead:
            return
        todo = [text for text in dict.fromkeys(texts) if text not in self._known]
        if len(todo) >= PARALLEL_FROM and self._helper is None and _usable_cpus() >= 2:
            split = int(len(todo) * HELPER_SHARE)
            if self._start_helper(todo[:split]):
                todo = todo[split:]
        for text in todo:
            self._known[text] = self._normalize(text)

    def __getitem__(self, text: str) -> Phone:
        found = self._known.get(text)
        if found is None and self._helper is not None and not self.reading_ahead:
            self._take_answers()
            found = self._known.get(text)
        if found is None:
            found = self._known[text] = self._normalize(text)
        return found

    def close(self) -> None:
        """Stop the helper if it still runs; the verdicts known so far stay."""
        helper, self._helper = self._helper, None
        if helper is None:
            return
        if helper.poll() is None:
            helper.kill()
        helper.wait()
        if self._reader is not None:
            self._reader.join()
        if helper.stdout is not None:
            helper.stdout.close()

    def _normalize(self, text: str) -> Phone:
        # Uncached: the book is the cache, for as long as its owner needs it.
        return normalize_phone.__wrapped__(text, self.region, sender=self.sender)

    def _start_helper(self, texts: list[str]) -> bool:
        if not self._start(_HELPER_CODE, [self.region, self.sender, texts]):
            return False
        self._asked = texts
        return True

    def _start(self, code: str, request: list[object]) -> bool:
        """Start a helper running `code`, given `request`, and listen to its answers."""
        path = [entry for entry in sys.path if isinstance(entry, str)]
        # The request goes through a file: feeding a pipe would take a thread writing
        # small pieces, each waiting for the GIL, and the helper would starve.
        with tempfile.TemporaryFile() as given:
            given.write(f"{json.dumps(path)}\n".encode())
            given.write(f"{json.dumps(request)}\n".encode())
            given.seek(0)
            try:
                self._helper = subprocess.Popen(
                    [sys.executable, "-c", code],
                    stdin=given,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,  # a failed helper is made up for here
                )
            except OSError:  # no interpreter to start, say: work it all out here
                return False
        # Reading the pipe as answers come keeps the helper from blocking on a full pipe;
        # the thread sleeps in read() and wakes once per line, so it barely needs the GIL.
        self._reader = threading.Thread(target=self._read, args=(self._helper,), daemon=True)
        self._reader.start()
        return True

    def _read(self, helper: subprocess.Popen[bytes]) -> None:
        assert helper.stdout is not None
        for line in helper.stdout:
            self._lines.append(line)

    def _take_answers(self) -> None:
        """Take in the answer lines read so far; on nonsense, stop listening to the helper."""
        while self._lines:
            phones = _parse_answer(self._lines.popleft())
            texts = self._asked[self._answered : self._answered + len(phones or ())]
            if phones is None or len(texts) != len(phones):
                self.close()
                return
            for text, phone in zip(texts, phones, strict=True):
                self._known.setdefault(text, phone)
            self._answered += len(phones)

    def _take_named(self) -> None:
        """Take in read-ahead answers (cell verdicts, see _serve_reader); on nonsense, stop."""
        while self._lines:
            named = _parse_named(self._lines.popleft())
            if named is None:
                self.close()
                return
            for cell, verdict in named:
                self._cells.setdefault(cell, verdict)


def _parse_named(line: bytes) -> list[tuple[str, CellVerdict]] | None:
    """The cells and verdicts in a line of a read-ahead answer, or None if it is not one:
    [cell, [e164, ...]] for a good cell, [cell, text, problem] for a bad one."""
    try:
        entries = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entries, list):
        return None
    named: list[tuple[str, CellVerdict]] = []
    for entry in entries:
        if not isinstance(entry, list) or not entry or type(entry[0]) is not str:
            return None
        if len(entry) == 2 and isinstance(entry[1], list):
            if not all(type(e164) is str for e164 in entry[1]):
                return None
            named.append((entry[0], tuple(entry[1])))
        elif len(entry) == 3 and type(entry[1]) is str and type(entry[2]) is str:
            named.append((entry[0], BadNumber(entry[1], entry[2])))
        else:
            return None
    return named


def _parse_answer(line: bytes) -> list[Phone] | None:
    """The verdicts in a line of the helper's answer, or None if it is not one."""
    try:
        pairs = json.loads(line)
    except ValueError:
        return None
    if not isinstance(pairs, list):
        return None
    phones = [Phone(*pair) for pair in pairs if isinstance(pair, list) and len(pair) == 2]
    if len(phones) != len(pairs) or not all(type(v) is str for phone in phones for v in phone):
        return None
    return phones


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _serve_helper() -> None:
    """The helper's side: read [region, sender, texts], answer [e164, problem] pairs.

    The answers are written in lines of _ANSWER_LINE, flushed as they are ready, in ASCII
    (any locale can carry it).
    """
    region, sender, texts = json.loads(sys.stdin.readline())
    normalize = normalize_phone.__wrapped__
    for start in range(0, len(texts), _ANSWER_LINE):
        line = [
            normalize(text, region, sender=sender) for text in texts[start : start + _ANSWER_LINE]
        ]
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


def _serve_reader() -> None:
    """The read-ahead helper's side: read [path, region, sender], answer the verdict on
    each distinct cell workbook.likely_numbers finds (stripped, as a row's cells are
    read), in its order: [cell, [e164, ...]] or [cell, bad text, problem].

    Lines of _ANSWER_LINE verdicts, flushed as they are ready, in ASCII.
    """
    from batcher.workbook import likely_numbers  # only the helper reads the XML so

    path, region, sender = json.loads(sys.stdin.readline())
    normalize = normalize_phone.__wrapped__
    phones: dict[str, Phone] = {}

    def phone(text: str) -> Phone:
        found = phones.get(text)
        if found is None:
            found = phones[text] = normalize(text, region, sender=sender)
        return found

    seen: set[str] = set()
    line: list[list[object]] = []
    for found in likely_numbers(Path(path)):
        cell = found.strip()
        if cell in seen:
            continue
        seen.add(cell)
        verdict = cell_verdict(split_recipients(cell), phone)
        line.append([cell, *verdict] if isinstance(verdict, BadNumber) else [cell, [*verdict]])
        if len(line) == _ANSWER_LINE:
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
            line = []
    if line:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


def _hint(region: str) -> str:
    return (
        f" Numbers without a country code are read as {region} numbers (--region {region}); "
        "write others with + and the country code, e.g. +44 20 7946 0958."
    )
