"""Rows in, verdicts out: every code, splitting, chats, duplicates and explicit keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from batcher.model import Status
from batcher.pipeline import JobOptions, Prepared, prepare
from batcher.planning import Request
from tests.sheets import Cell, write_csv, write_xlsx

SENDER = "+15555550100"
SAM = "+14155551234"
PRIYA = "+14155552671"
HEADERS = ["From", "To", "Subject", "Text", "Link", "Media"]


def plan(tmp_path: Path, rows: list[list[Cell]], **options: object) -> Prepared:
    """Write the rows (under HEADERS) to a CSV file and plan it."""
    path = write_csv(tmp_path / "in.csv", [HEADERS, *rows])
    return prepare(JobOptions(path=path, **options))  # type: ignore[arg-type]


def verdicts(prepared: Prepared) -> list[tuple[int, str, int | None]]:
    """(row, status, code) of every row."""
    return [
        (row.row, str(row.status), row.problem.code if row.problem else None)
        for row in prepared.plan.rows
    ]


@pytest.mark.parametrize(
    ("row", "code", "column", "fragment"),
    [
        (["", SAM, "", "hi", "", ""], 1001, "From", "no sender"),
        ([SENDER, "", "", "hi", "", ""], 1001, "To", "no recipient"),
        ([SENDER, SAM, "", "", "", ""], 1001, "Text", "nothing to send"),
        ([SENDER, "415-555-12", "", "hi", "", ""], 1003, "To", "not a valid phone number"),
        (["12", SAM, "", "hi", "", ""], 1003, "From", "not a possible phone number"),
        ([SENDER, "1.41555E+10", "", "hi", "", ""], 1003, "To", "scientific notation"),
        ([SENDER, SAM, "", "see https://x.io", "", ""], 1005, "Text", "web address"),
        ([SENDER, SAM, "", "see www.x.io", "", ""], 1005, "Text", "web address"),
        ([SENDER, SAM, "", "hi", "example.com", ""], 1002, "Link", "Start it with https://"),
        ([SENDER, f"{SAM};{PRIYA}", "G", "", "https://x.io", ""], 1001, "Text", "must start"),
        (
            [SENDER, ";".join(f"+1415555{n:04d}" for n in range(2000, 2032)), "", "hi", "", ""],
            1006,
            "To",
            "32 recipients; a chat takes at most 31",
        ),
    ],
)
def test_every_code(tmp_path: Path, row: list[Cell], code: int, column: str, fragment: str) -> None:
    """Rows the API would refuse are refused locally, with its code, the column and the fix."""
    (planned,) = plan(tmp_path, [row]).plan.rows
    assert planned.status is Status.INVALID
    assert planned.problem is not None
    assert (planned.problem.row, planned.problem.code, planned.problem.column) == (2, code, column)
    assert fragment in planned.problem.message


def test_scientific_xlsx_cell_refused(tmp_path: Path) -> None:
    """A phone cell displayed in scientific format is refused, never 'repaired'."""
    path = write_xlsx(
        tmp_path / "in.xlsx",
        [["From", "To", "Text"], [SENDER, 14155500000, "hi"], [SENDER, 14155551234, "yo"]],
        formats={(2, 2): "0.00E+00"},
    )
    prepared = prepare(JobOptions(path=path))
    assert verdicts(prepared) == [(2, "invalid", 1003), (3, "pending", None)]
    problem = prepared.plan.rows[0].problem
    assert problem is not None
    assert "formatted as scientific" in problem.message
    assert "(1.41555E+10)" in problem.message
    assert problem.value == "1.41555E+10"


def test_thirty_one_recipients_make_a_group(tmp_path: Path) -> None:
    """31 recipients is the largest group, and it is fine."""
    to = ";".join(f"+1415555{n:04d}" for n in range(2000, 2031))
    assert verdicts(plan(tmp_path, [[SENDER, to, "", "hi", "", ""]])) == [(2, "pending", None)]


def test_recipients_in_one_cell_and_repeated(tmp_path: Path) -> None:
    """Recipients split on ; , | and newlines; a repeated number counts once."""
    to = f"{SAM}, (415) 555-2671 | 4155551234\n{PRIYA}"
    (request,) = plan(tmp_path, [[SENDER, to, "G", "hi", "", ""]]).plan.requests
    assert request.recipients == (SAM, PRIYA)


def test_group_with_link_and_media_is_split(tmp_path: Path) -> None:
    """A group's first row becomes a text-only creation, then a follow-up with the rest."""
    prepared = plan(tmp_path, [[SENDER, f"{SAM};{PRIYA}", "Crew", "hi", "https://x.io", "att_1"]])
    create, follow = prepared.plan.requests
    assert create.creates_chat
    assert not follow.creates_chat
    assert create.body() == {
        "from": SENDER,
        "to": [SAM, PRIYA],
        "message": {
            "subject": "Crew",
            "parts": [{"type": "text", "value": "hi"}],
            "idempotency_key": create.key,
        },
    }
    assert follow.body() == {
        "message": {
            "parts": [
                {"type": "rich_link", "url": "https://x.io"},
                {"type": "media", "attachment_id": "att_1"},
            ],
            "idempotency_key": follow.key,
        }
    }
    assert (create.step, follow.step) == (1, 2)


def test_direct_chat_keeps_parts_together(tmp_path: Path) -> None:
    """A DM's first message may carry media, text and a rich link together."""
    (request,) = plan(tmp_path, [[SENDER, SAM, "", "hi", "https://x.io", "att_1"]]).plan.requests
    assert [part.type for part in request.parts] == ["text", "rich_link", "media"]


def test_rows_grouped_into_chats(tmp_path: Path) -> None:
    """Same sender and recipient set: one chat, created by its first row, in sheet order."""
    prepared = plan(
        tmp_path,
        [
            [SENDER, SAM, "", "one", "", ""],
            [SENDER, PRIYA, "", "other chat", "", ""],
            [SENDER, "(415) 555-1234", "", "two: https://x.io is fine now", "", ""],
            [SENDER, f"{PRIYA};{SAM}", "", "group", "", ""],
            [SENDER, f"{SAM};{PRIYA}", "", "group again", "https://x.io", ""],
        ],
    )
    chats = {
        ref: [(r.row, r.creates_chat) for r in requests]
        for ref, requests in prepared.plan.chats.items()
    }
    assert list(chats.values()) == [
        [(2, True), (4, False)],
        [(3, True)],
        [(5, True), (6, False)],  # a follow-up row in a group is not split
    ]


def test_invalid_first_row_leaves_creation_to_the_next(tmp_path: Path) -> None:
    """If a chat's first row cannot create it, the next valid row of that chat does."""
    prepared = plan(
        tmp_path,
        [[SENDER, SAM, "", "book at https://x.io", "", ""], [SENDER, SAM, "", "hi", "", ""]],
    )
    assert verdicts(prepared) == [(2, "invalid", 1005), (3, "pending", None)]
    (request,) = prepared.plan.requests
    assert request.creates_chat


def test_chat_id_makes_a_follow_up(tmp_path: Path) -> None:
    """A chat_id cell sends into that chat; no sender or recipients needed."""
    path = write_csv(
        tmp_path / "in.csv",
        [["chat_id", "From", "To", "Text"], ["chat-1", "", "", "https://x.io in text is fine"]],
    )
    (request,) = prepare(JobOptions(path=path)).plan.requests
    assert not request.creates_chat
    assert request.path() == "/chats/chat-1/messages"


def test_duplicates(tmp_path: Path) -> None:
    """An exact repeat is a duplicate unless --allow-duplicates, which gives it its own key."""
    rows: list[list[Cell]] = [
        [SENDER, SAM, "", "hi", "", ""],
        [SENDER, "(415) 555-1234", "", " hi ", "", ""],
        [SENDER, SAM, "", "hi again", "", ""],
    ]
    assert verdicts(plan(tmp_path, rows)) == [
        (2, "pending", None),
        (3, "duplicate", None),
        (4, "pending", None),
    ]
    allowed = plan(tmp_path, rows, allow_duplicates=True)
    keys = [request.key for request in allowed.plan.requests]
    assert len(set(keys)) == 3
    assert [row.status for row in allowed.plan.rows] == [Status.PENDING] * 3


def test_explicit_keys(tmp_path: Path) -> None:
    """An idempotency_key cell is used verbatim; a split row gets one key per request."""
    path = write_csv(
        tmp_path / "in.csv",
        [
            ["From", "To", "Text", "Link", "idempotency_key"],
            [SENDER, SAM, "hi", "", "promo-1"],
            [SENDER, f"{SAM};{PRIYA}", "hi all", "https://x.io", "promo-2"],
            [SENDER, PRIYA, "yo", "", "promo-1"],
            [SENDER, PRIYA, "hey", "", "a b c"],
        ],
    )
    prepared = prepare(JobOptions(path=path))
    keys = {row.row: [r.key for r in row.requests] for row in prepared.plan.rows}
    assert keys[2] == ["promo-1"]
    assert keys[3] == ["promo-2", "promo-2.2"]
    assert verdicts(prepared)[2:] == [(4, "invalid", 1002), (5, "invalid", 1002)]
    assert prepared.plan.rows[2].problem is not None
    assert "already used by row 2" in prepared.plan.rows[2].problem.message


def test_default_sender(tmp_path: Path) -> None:
    """--from fills in rows without a sender; a row's own sender wins."""
    path = write_csv(
        tmp_path / "in.csv", [["From", "To", "Text"], ["", SAM, "a"], ["+15555550101", SAM, "b"]]
    )
    requests = list(prepare(JobOptions(path=path, default_sender=SENDER)).plan.requests)
    assert [r.sender for r in requests] == [SENDER, "+15555550101"]


def _keys(requests: list[Request]) -> dict[str, str]:
    return {r.parts[0].value: r.key for r in requests}


ROWS: list[list[Cell]] = [
    [SENDER, SAM, "", "alpha", "", ""],
    [SENDER, PRIYA, "", "beta", "https://x.io", ""],
    [SENDER, f"{SAM};{PRIYA}", "Crew", "gamma", "https://y.io", ""],
    ["+15555550101", "4155557788", "", "delta", "", ""],
]


def test_keys_stable_across_order_format_and_name(tmp_path: Path) -> None:
    """The same content gets the same keys in any row order, as CSV or XLSX, any file name."""
    csv_keys = _keys(list(plan(tmp_path, ROWS).plan.requests))
    reordered = write_xlsx(tmp_path / "other name.xlsx", [HEADERS, *ROWS[::-1]])
    xlsx_keys = _keys(list(prepare(JobOptions(path=reordered)).plan.requests))
    assert csv_keys == xlsx_keys
    assert len(set(csv_keys.values())) == 5
    numeric = write_xlsx(
        tmp_path / "numeric.xlsx", [HEADERS, *ROWS[:3], ["+15555550101", 4155557788, "", "delta"]]
    )
    assert _keys(list(prepare(JobOptions(path=numeric)).plan.requests)) == csv_keys


def test_campaign_changes_every_key(tmp_path: Path) -> None:
    """--campaign namespaces keys: the same sheet in another campaign is sent again."""
    plain = _keys(list(plan(tmp_path, ROWS).plan.requests))
    spring = _keys(list(plan(tmp_path, ROWS, campaign="spring").plan.requests))
    assert not set(plain.values()) & set(spring.values())
