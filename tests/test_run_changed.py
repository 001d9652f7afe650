"""A row edited after it was sent is not a silent second message: it needs --resend-changed."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from batcher.lineplan import LinePlan
from batcher.model import RowOutcome, Status
from batcher.pipeline import Changed, describe_chat
from batcher.render import confirmation
from batcher.running import Preview
from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from tests.runs import LINE_A, cli_env, direct_rows, ledger, recipient, run_cli, sheet
from tests.sheets import write_csv

NOTE = "; not sent again (--resend-changed sends the new text)"


@pytest.fixture
def box() -> Iterator[RunningSandbox]:
    """A plain sandbox: no limits, no faults."""
    with running_sandbox(SandboxConfig()) as running:
        yield running


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


def run(box: RunningSandbox, path: Path, *extra: str) -> str:
    done = run_cli(["run", str(path), "--yes", "--rate", "0", *extra], cli_env(box))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_original_sheet_edited_after_sending(box: RunningSandbox, tmp_path: Path) -> None:
    """Row 7 fixed in the input: kept as sent with the journal's ids, until --resend-changed."""
    rows = direct_rows(8)
    path = sheet(tmp_path / "in.csv", rows)
    run(box, path)
    first = read(tmp_path / "in.results.csv")[5]  # sheet row 7
    rows[5][2] = "Hello #5, with the typo fixed"
    sheet(path, rows)
    output = run(box, path)
    assert len(ledger(box)) == 8  # no second message
    kept = read(tmp_path / "in.results.csv")[5]
    assert kept["status"] == "sent"
    for column in ("chat_id", "message_id", "idempotency_key", "sent_at"):
        assert kept[column] == first[column]
    assert kept["error_message"] == f"changed since it was sent on {first['sent_at'][:10]}{NOTE}"
    assert "1 row was sent earlier and changed since:" in output
    assert (
        f"  row 7 was sent on {first['sent_at'][:10]} and has changed since: not sent again"
        in output
    )
    checked = run_cli(["validate", str(path)], cli_env(box))
    assert "  row 7 was sent on " in checked.stdout
    assert read(tmp_path / "in.results.csv")[5] == kept  # validate says the same
    again = run(box, path, "--resend-changed")
    assert "  row 7 was sent on " in again
    assert "has changed since: its new text is a second message to +1" in again
    assert len(ledger(box)) == 9
    resent = read(tmp_path / "in.results.csv")[5]
    assert (resent["status"], resent["error_message"]) == ("sent", "")
    assert resent["message_id"] != first["message_id"]
    assert ledger(box)[-1]["parts"][0]["value"] == "Hello #5, with the typo fixed"
    settled = run(box, path)
    assert "changed since" not in settled
    assert len(ledger(box)) == 9


def test_results_sheet_edited_after_sending(box: RunningSandbox, tmp_path: Path) -> None:
    """A sent row edited in a results sheet fed back: kept as sent, said so, not sent."""
    path = sheet(tmp_path / "in.csv", direct_rows(8))
    run(box, path)
    lines = read(tmp_path / "in.results.csv")
    old = dict(lines[5])
    lines[5]["Text"] = "Hello #5, edited in the results"
    edited = write_csv(
        tmp_path / "edited.csv", [list(lines[0]), *([*line.values()] for line in lines)]
    )
    output = run(box, edited)
    assert len(ledger(box)) == 8
    kept = read(tmp_path / "edited.results.csv")[5]
    assert (kept["status"], kept["message_id"], kept["idempotency_key"]) == (
        "sent",
        old["message_id"],
        old["idempotency_key"],
    )
    assert kept["error_message"].endswith(NOTE)
    assert "  row 7 was sent on " in output
    unedited = read(tmp_path / "edited.results.csv")[4]
    assert unedited["error_message"] == ""
    run(box, edited, "--resend-changed")
    assert len(ledger(box)) == 9
    last = ledger(box)[-1]
    assert (last["chat_id"], last["parts"][0]["value"]) == (
        old["chat_id"],
        "Hello #5, edited in the results",
    )


def test_rows_inserted_above_are_not_changed(box: RunningSandbox, tmp_path: Path) -> None:
    """A row inserted above shifts the others: only the new row is sent, no warnings."""
    rows = [
        [LINE_A, recipient(1), "one"],
        [LINE_A, recipient(1), "two"],
        *direct_rows(4)[2:],
    ]
    path = sheet(tmp_path / "in.csv", rows)
    run(box, path)
    sheet(path, [[LINE_A, recipient(50), "a new first row"], *rows])
    output = run(box, path)
    assert "changed since" not in output
    assert len(ledger(box)) == 5
    assert [row["status"] for row in read(tmp_path / "in.results.csv")] == ["sent"] * 5


def changed(resend: bool) -> Preview:
    row = Changed(7, "2026-11-30T10:00:00Z", "+14155552001", RowOutcome(Status.SENT))
    return Preview(1, 0, (LinePlan(LINE_A, 0, 1, 0.0),), 8, changed=(row,), resend_changed=resend)


@pytest.mark.parametrize(
    ("resend", "line"),
    [
        (
            True,
            "  row 7 was sent on 2026-11-30 and has changed since: +14155552001 will get a "
            "second message",
        ),
        (
            False,
            "  row 7 was sent on 2026-11-30 and has changed since: not sent again "
            "(--resend-changed sends the new text)",
        ),
    ],
)
def test_confirmation_lists_changed_rows(resend: bool, line: str) -> None:
    """The confirmation says which rows changed since sent, and what happens to them."""
    text = confirmation(changed(resend), "sandbox", rate=10.0)
    assert "1 row was sent earlier and changed since:" in text
    assert line in text.splitlines()


@pytest.mark.parametrize(
    ("recipients", "subject", "chat_id", "said"),
    [
        (("+14155552001",), "", "", "+14155552001"),
        (
            ("+14155552001", "+14155552002"),
            "Launch",
            "",
            'the group "Launch" (2 people: +14155552001, ...)',
        ),
        (
            ("+14155552001", "+14155552002", "+14155552003"),
            "",
            "",
            "the group (3 people: +14155552001, ...)",
        ),
        ((), "", "chat-9", "chat chat-9"),
    ],
)
def test_who_a_changed_row_reaches(
    recipients: tuple[str, ...], subject: str, chat_id: str, said: str
) -> None:
    """The sheet holds no names: a number, a group's subject and size, or a chat id."""
    assert describe_chat(recipients, subject, chat_id) == said
