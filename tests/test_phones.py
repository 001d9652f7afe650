"""Phone numbers: the repairs product.md promises, and the damage that must be refused."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from batcher import phones
from batcher.model import Problem
from batcher.phones import (
    BadNumber,
    CellVerdict,
    Phone,
    PhoneBook,
    cell_verdict,
    normalize_phone,
    split_recipients,
)
from batcher.pipeline import JobOptions, prepare, validate_file
from batcher.workbook import likely_numbers
from tests.runs import LINE_A as LINE
from tests.sheets import Cell, write_csv, write_xlsx

SAM = "+14155551234"


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+14155551234", "US", "+14155551234"),
        ("4155551234", "US", "+14155551234"),
        ("(415) 555-1234", "US", "+14155551234"),
        ("415.555.1234", "US", "+14155551234"),
        ("1-415-555-1234", "US", "+14155551234"),
        (" +1 415 555 1234 ", "US", "+14155551234"),
        ("14155551234", "US", "+14155551234"),  # numeric cell
        ("14155551234.0", "US", "+14155551234"),  # numeric cell read as a float
        ("442079460958", "US", "+442079460958"),  # numeric cell that lost its +
        ("0044 20 7946 0958", "US", "+442079460958"),  # 00 prefix
        ("tel:+1-415-555-1234", "US", "+14155551234"),
        ("TEL:4155551234", "US", "+14155551234"),
        ("'+14155551234", "US", "+14155551234"),  # apostrophe typed to force text
        ("020 7946 0958", "GB", "+442079460958"),
        ("14155551234", "GB", "+14155551234"),  # lost + under another region
        ("+34 612 345 678", "US", "+34612345678"),
    ],
)
def test_repairs(raw: str, region: str, e164: str) -> None:
    """Unambiguous damage is repaired to the same E.164 number."""
    assert normalize_phone(raw, region) == (e164, "")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("1.41555E+10", "scientific notation"),
        ("1,41555E+10", "scientific notation"),
        ("415-555-12", "is not a valid phone number"),
        ("+15555550100", "is not a valid phone number. Check its digits."),  # fictional range
        ("Sam", "is not a phone number"),
        ("415555123", "read as US numbers (--region US)"),  # too short: never a lost +
        ("", "is not a phone number"),
    ],
)
def test_refusals(raw: str, reason: str) -> None:
    """What cannot be repaired is refused, saying why."""
    phone = normalize_phone(raw, "US")
    assert phone.e164 == ""
    assert reason in phone.problem


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("\uff0b\uff11 \uff14\uff11\uff15 \uff15\uff15\uff15 \uff11\uff12\uff13\uff14", SAM),
        ("\uff08\uff14\uff11\uff15\uff09\uff15\uff15\uff15\uff0d\uff11\uff12\uff13\uff14", SAM),
        ("\u0664\u0661\u0665\u0665\u0665\u0665\u0661\u0662\u0663\u0664", SAM),  # Arabic-Indic
        ("\u06f4\u06f1\u06f5 \u06f5\u06f5\u06f5 \u06f1\u06f2\u06f3\u06f4", SAM),  # Persian
        ("\u0966\u0966\u0967 415 555 1234", SAM),  # Devanagari 001, then ASCII
        ("\uff54\uff45\uff4c\uff1a+14155551234", SAM),  # full-width tel:
        ("+1 415\u200b555 1234", SAM),  # zero width space
        ("\u200c+1 415 555 1234\u200d", SAM),  # zero width non-joiner, joiner
        ("+1\u2060415\u2060555\u20601234", SAM),  # word joiner
        ("\ufeff+1 415 555 1234", SAM),  # byte order mark
        ("+1 415 555\u00ad1234", SAM),  # soft hyphen
        ("\u200e+1 415 555 1234", SAM),  # left-to-right mark
        ("\u202a+1 (415) 555\u20111234\u202c", SAM),  # as a phone's contacts copy it
        ("\u2066+1 415 555 1234\u2069", SAM),  # left-to-right isolate
        ("\u202d+1 415 555 1234\u202c", SAM),  # left-to-right override
    ],
)
def test_unambiguous_characters_are_read(raw: str, e164: str) -> None:
    """Digits of any script, full-width forms and harmless invisible characters: accepted."""
    assert normalize_phone(raw, "US") == (e164, "")
    assert normalize_phone(raw, "US", sender=True) == (e164, "")


REGION_HINT = (
    " Numbers without a country code are read as US numbers (--region US); write others "
    "with + and the country code, e.g. +44 20 7946 0958."
)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            "+1 415 555 1234 ext 12",
            "'+1 415 555 1234 ext 12' is not a phone number. It ends with an extension "
            "(ext 12): remove it. Chert sends to the line itself; without the extension it "
            "reads as +14155551234.",
        ),
        ("+1 415 555 1234 x12", "It ends with an extension (x12): remove it."),
        ("+1 415 555 1234 #12", "It ends with an extension (#12): remove it."),
        ("(415) 555-1234 Ext. 7", "extension (Ext. 7): remove it. Chert sends to the line"),
        ("+1 415 555 1234 extension 12", "It ends with an extension (extension 12)"),
        (
            "+1 415 555 12 x3",
            "'+1 415 555 12 x3' is not a phone number. It ends with an extension (x3): remove "
            "it. Chert sends to the line itself.",
        ),
        (
            "ana@example.com",
            "'ana@example.com' is not a phone number. It is an email address: Chert sends "
            "to phone numbers only. Write the person's mobile number.",
        ),
        ("mailto:ana@example.com", "It is an email address"),
        ("\uff41\uff4e\uff41\uff20\uff45\uff58.\uff43\uff4f", "It is an email address"),
        (
            "+1 415 555 1234 and +1 415 555 2671",
            "'+1 415 555 1234 and +1 415 555 2671' is not a phone number. It looks like two "
            "numbers joined by 'and'. To send to all of them in one chat, put ; between them "
            "(+1 415 555 1234; +1 415 555 2671); to message each on their own, give each a row.",
        ),
        ("4155551234 & 4155552671", "joined by '&'. To send to all of them in one chat"),
        ("415 555 1234 AND 415 555 2671", "joined by 'AND'"),
        (
            "\u200f+1 415 555 1234",
            "'\\u200f+1 415 555 1234' holds an invisible character, a right-to-left mark "
            "(U+200F), which can make a spreadsheet show the digits in another order than "
            "they are sent. Type the number again rather than copying it.",
        ),
        ("\u202e4321 555 514", "a right-to-left override (U+202E), which can make"),
        ("\u061c+1 415 555 1234", "an arabic letter mark (U+061C), which can make"),
        (
            "+1 415 555 1234\U000e0031",
            "holds an invisible character, a tag digit one (U+E0031), which has no place in "
            "a phone number.",
        ),
        (
            "4155551234\u200b4155552671",
            f"'4155551234\\u200b4155552671' is not a valid phone number.{REGION_HINT} It "
            "also holds an invisible character, a zero width space (U+200B), which was left "
            "out; if it stood between two numbers, put ; there instead.",
        ),
        ("Sam", f"'Sam' is not a phone number.{REGION_HINT}"),
    ],
)
def test_hints_that_fit_the_input(raw: str, problem: str) -> None:
    """A refused number says what it looks like and what to do about that."""
    phone = normalize_phone(raw, "US")
    assert phone.e164 == ""
    assert problem in phone.problem


FULL_WIDTH_SAM = "\uff0b\uff11 \uff14\uff11\uff15 \uff15\uff15\uff15 \uff11\uff12\uff13\uff14"
FULL_WIDTH_PRIYA = "\uff0b\uff11 \uff14\uff11\uff15 \uff15\uff15\uff15 \uff12\uff16\uff17\uff11"


@pytest.mark.parametrize("separator", ["\uff1b", "\uff0c", "\uff5c", "\u3001", ";"])
def test_full_width_numbers_in_a_sheet(tmp_path: Path, separator: str) -> None:
    """A recipients cell typed full-width, separators too, is a chat with both numbers."""
    rows = [["From", "To", "Text"], [LINE, f"{FULL_WIDTH_SAM}{separator}{FULL_WIDTH_PRIYA}", "hi"]]
    (request,) = prepare(JobOptions(path=write_csv(tmp_path / "in.csv", rows))).plan.requests
    assert request.recipients == (SAM, "+14155552671")


def test_hint_in_the_row_problem(tmp_path: Path) -> None:
    """The row's 1003 names the column and the value, with the hint that fits."""
    rows = [["From", "Phone", "Text"], [LINE, "ana@example.com", "hi"]]
    (row,) = prepare(JobOptions(path=write_csv(tmp_path / "in.csv", rows))).plan.rows
    assert row.problem == Problem(
        2,
        "Phone",
        "ana@example.com",
        1003,
        "'ana@example.com' is not a phone number. It is an email address: Chert sends to "
        "phone numbers only. Write the person's mobile number.",
    )


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("ana@example.com", "Write the line's number, such as +15555550100."),
        ("+1 415 555 1234 & +1 415 555 2671", "A row is sent from one line: keep one of them."),
        ("+1 415 555 1234 x12", "Chert sends from the line itself; without the extension"),
    ],
)
def test_sender_hints(raw: str, hint: str) -> None:
    """A sender cell gets the hint that fits a sending line."""
    assert hint in normalize_phone(raw, "US", sender=True).problem


@pytest.mark.parametrize(
    ("raw", "e164"),
    [("+15555550100", "+15555550100"), ("5555550100", "+15555550100")],
)
def test_senders_only_need_to_be_possible(raw: str, e164: str) -> None:
    """The docs' own sender +15555550100 is possible though not valid: senders pass."""
    assert normalize_phone(raw, "US", sender=True) == (e164, "")
    assert normalize_phone(raw, "US").e164 == ""


# Enough texts for a PhoneBook to start its helper once PARALLEL_FROM is lowered to 10:
# good, bad and non-ASCII ones, so that every kind of verdict crosses the process boundary.
MANY = [
    *(f"+1 415 555 {n:04d}" for n in range(1200, 1230)),
    "415-555-12",
    "Grüße ☕",
    "1.41555E+10",
    "+44 20 7946 0958",
    "",
]
HELPERS_PART = int(len(MANY) * phones.HELPER_SHARE)


def alone(texts: list[str], sender: bool = False) -> dict[str, Phone]:
    return {text: normalize_phone(text, "US", sender=sender) for text in texts}


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A PhoneBook starts its helper for a few texts, as if there were two CPUs; the list
    is what it worked out in this process."""
    monkeypatch.setattr(phones, "PARALLEL_FROM", 10)
    monkeypatch.setattr(phones, "_usable_cpus", lambda: 2)
    here: list[str] = []
    normalize = PhoneBook._normalize

    def spy(book: PhoneBook, text: str) -> Phone:
        here.append(text)
        return normalize(book, text)

    monkeypatch.setattr(PhoneBook, "_normalize", spy)
    return here


def lookups(book: PhoneBook) -> dict[str, Phone]:
    return {text: book[text] for text in MANY}


@pytest.mark.parametrize("sender", [False, True])
def test_book_with_a_helper_process(parallel: list[str], sender: bool) -> None:
    """The helper works out the texts (here, any it is not given): the same verdicts."""
    with PhoneBook("US", sender=sender) as book:
        book.expect([*MANY, *MANY])
        assert parallel == MANY[HELPERS_PART:]  # the last ones, here
        assert book._helper is not None
        book._helper.wait()  # let it finish, so that every answer comes from it
        assert book._reader is not None
        book._reader.join()
        assert lookups(book) == alone(MANY, sender)
        assert parallel == MANY[HELPERS_PART:]  # nothing more worked out here
    assert book._helper is None


def test_book_does_not_wait_for_the_helper(parallel: list[str]) -> None:
    """A text the helper has not answered yet is worked out at once, here."""
    with PhoneBook("US") as book:
        book.expect(MANY)
        assert book[MANY[0]] == normalize_phone(MANY[0], "US")
        assert lookups(book) == alone(MANY)


@pytest.mark.parametrize(
    "code",
    [
        "import sys; sys.exit(3)",  # fails at once
        "print('not json')",  # answers nonsense
        "print('[]'); print('[1]')",  # answers nothing, then nonsense
        "print('[' + ','.join(['[\"\", \"\"]'] * 100) + ']')",  # answers too much
        "print('[[1, 2]]')",  # answers with numbers instead of text
        "print('{\"ab\": 1}')",  # answers with something else than a list
        "import time; time.sleep(60)",  # never answers
    ],
)
def test_book_when_the_helper_fails(
    parallel: list[str], monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    """Whatever goes wrong with the helper, the verdicts are the same, and nothing hangs."""
    monkeypatch.setattr(phones, "_HELPER_CODE", code)
    started = time.monotonic()
    with PhoneBook("US") as book:
        book.expect(MANY)
        helper = book._helper
        assert helper is not None
        time.sleep(0.2)  # give it time to fail
        assert lookups(book) == alone(MANY)
    assert helper.poll() is not None  # stopped
    assert time.monotonic() - started < 30


def test_book_when_no_helper_can_start(
    parallel: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No interpreter to start (an embedded Python, say): everything is done here."""
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with PhoneBook("US") as book:
        book.expect(MANY)
        assert parallel == MANY
        assert lookups(book) == alone(MANY)


def test_few_texts_stay_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below PARALLEL_FROM, or with one CPU, no process is started."""

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("a helper process was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    with PhoneBook("US") as book:
        book.expect(MANY)
        assert lookups(book) == alone(MANY)
    monkeypatch.setattr(phones, "PARALLEL_FROM", 10)
    monkeypatch.setattr(phones, "_usable_cpus", lambda: 1)
    with PhoneBook("US") as book:
        book.expect(MANY)
        assert lookups(book) == alone(MANY)


# A sheet read ahead: shared strings (openpyxl writes them), numeric cells, group cells,
# and cells that are no numbers at all.
NUMBERED: list[list[Cell]] = [
    [LINE, f"+1 415 555 {n:04d}", f"order #{n}"] for n in range(1200, 1230)
]
AHEAD_ROWS: list[list[Cell]] = [
    ["From", "To", "Text"],
    *NUMBERED,
    [LINE, "(415) 555-2671; +44 20 7946 0958", "a group"],
    [LINE, 14155553390, "a numeric cell"],
    [LINE, "415-555-12", "a bad number"],
    [LINE, "Grüße ☕", "not a number"],
    [LINE, "tel:+1-628-555-2147", "a tel: link"],
]
AHEAD_FOUND = [
    "+15555550100",
    *(f"+1 415 555 {n:04d}" for n in range(1200, 1230)),
    "(415) 555-2671",
    "+44 20 7946 0958",
    "415-555-12",
    "tel:+1-628-555-2147",
    "14155553390",
]


@pytest.fixture
def reading(monkeypatch: pytest.MonkeyPatch, parallel: list[str]) -> list[str]:
    """Any workbook is read ahead, as if it were large; the list is what this process
    worked out itself."""
    monkeypatch.setattr(phones, "READ_AHEAD_FROM", 0)
    return parallel


def finished(book: PhoneBook) -> None:
    """Wait for a book's helper to answer everything and stop."""
    assert book._helper is not None
    book._helper.wait()
    assert book._reader is not None
    book._reader.join()


def test_likely_numbers_in_a_workbook(tmp_path: Path) -> None:
    """Shared strings first, then numeric cells; the texts, not what they mean."""
    path = write_xlsx(tmp_path / "in.xlsx", AHEAD_ROWS)
    found = list(likely_numbers(path))
    assert found[0] == LINE
    assert set(found) == {
        *(text for text in AHEAD_FOUND if text not in {"(415) 555-2671", "+44 20 7946 0958"}),
        "(415) 555-2671; +44 20 7946 0958",  # a whole cell: the reader splits it
    }


# The recipients cells of AHEAD_ROWS the helper reads ahead, and their verdicts.
AHEAD_CELLS = [str(row[1]) for row in AHEAD_ROWS[1:] if row[1] != "Grüße ☕"]


def verdict_alone(cell: str) -> CellVerdict:
    return cell_verdict(split_recipients(cell), lambda text: normalize_phone(text, "US"))


def test_book_reading_ahead(tmp_path: Path, reading: list[str]) -> None:
    """The helper finds the workbook's recipients cells itself: the same verdicts, no
    number worked out here, and a cell it did not find (a non-number) is not answered."""
    path = write_xlsx(tmp_path / "in.xlsx", AHEAD_ROWS)
    with PhoneBook("US") as book:
        book.read_ahead(path)
        assert book.reading_ahead
        book.expect(AHEAD_FOUND)  # nothing to do: the helper has them
        finished(book)
        assert {cell: book.cell(cell) for cell in AHEAD_CELLS} == {
            cell: verdict_alone(cell) for cell in AHEAD_CELLS
        }
        assert isinstance(book.cell("415-555-12"), BadNumber)
        assert reading == []
        assert book.cell("Grüße ☕") is None
        assert book["Grüße ☕"] == normalize_phone("Grüße ☕", "US")
        assert reading == ["Grüße ☕"]


@pytest.mark.parametrize(
    "code",
    [
        "import sys; sys.exit(3)",  # fails at once
        "print('not json')",  # answers nonsense
        'print(\'[["+14155551200", ""]]\')',  # answers a text for the numbers
        'print(\'[["+1 415 555 1200", 1, ""]]\')',  # answers a number for a text
        "print('[[\"+1 415 555 1200\", [1]]]')",  # answers a number for an E.164
        "import time; time.sleep(60)",  # never answers
    ],
)
def test_book_when_the_reader_fails(
    tmp_path: Path, reading: list[str], monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    """Whatever goes wrong with the reading helper, the verdicts are the same."""
    monkeypatch.setattr(phones, "_READER_CODE", code)
    path = write_xlsx(tmp_path / "in.xlsx", AHEAD_ROWS)
    started = time.monotonic()
    with PhoneBook("US") as book:
        book.read_ahead(path)
        helper = book._helper
        assert helper is not None
        time.sleep(0.2)  # give it time to fail
        assert {text: book[text] for text in AHEAD_FOUND} == alone(AHEAD_FOUND)
        assert all(book.cell(cell) is None for cell in AHEAD_CELLS)
    assert helper.poll() is not None  # stopped
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("content", [b"From,To\n", b"PK\x03\x04 not really a zip", b""])
def test_no_reading_ahead_of_what_is_no_workbook(
    tmp_path: Path, reading: list[str], content: bytes
) -> None:
    """A file that is no zip starts no helper: its numbers are worked out as before."""
    path = tmp_path / "in.xlsx"
    path.write_bytes(content)
    with PhoneBook("US") as book:
        book.read_ahead(path)
        assert book._helper is None
        assert not book.reading_ahead


def test_small_workbooks_are_not_read_ahead(tmp_path: Path, parallel: list[str]) -> None:
    """Below READ_AHEAD_FROM bytes of sheet XML, no helper is started for a workbook."""
    path = write_xlsx(tmp_path / "in.xlsx", AHEAD_ROWS)
    with PhoneBook("US") as book:
        book.read_ahead(path)
        assert book._helper is None


def test_validate_reading_ahead_writes_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workbook validated with its numbers read ahead gets the same results sheet."""
    path = write_xlsx(tmp_path / "in.xlsx", AHEAD_ROWS)
    plain = validate_file(JobOptions(path=path, out=tmp_path / "plain.csv"))
    monkeypatch.setattr(phones, "READ_AHEAD_FROM", 0)
    monkeypatch.setattr(phones, "_usable_cpus", lambda: 2)
    started: list[PhoneBook] = []
    read_ahead = PhoneBook.read_ahead

    def spy(book: PhoneBook, path: Path) -> None:
        read_ahead(book, path)
        started.append(book)

    monkeypatch.setattr(PhoneBook, "read_ahead", spy)
    ahead = validate_file(JobOptions(path=path, out=tmp_path / "ahead.csv"))
    assert [book.reading_ahead for book in started] == [True]
    assert (tmp_path / "ahead.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()
    assert ahead.exit_code == plain.exit_code == 1
