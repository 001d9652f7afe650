"""Phone numbers: the repairs product.md promises, and the damage that must be refused."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from batcher import phones
from batcher.phones import Phone, PhoneBook, normalize_phone


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
    """The helper works out the first texts while the book does the rest: same verdicts."""
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
