"""The preview of the first messages, and `run --limit N` (a canary) over loopback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from batcher.cli import main
from batcher.client import Credentials
from batcher.errors import UsageError
from batcher.limiting import limit_rows
from batcher.model import Part
from batcher.pipeline import JobOptions
from batcher.planning import Request
from batcher.render import run_summary
from batcher.running import RunOptions, RunReport, Target, run_file
from batcher.sandbox import RunningSandbox
from batcher.sending import SendConfig
from tests.media_files import PNG
from tests.media_files import write as write_file
from tests.runs import LINE_A, LINE_B, assert_exactly_once, ledger, recipient, sheet

HEADERS = ["First Name", "From", "To", "Text", "Link", "Media"]


def preview_sheet(folder: Path) -> Path:
    """Five rows: a DM with a placeholder, one with a link and a picture, a group, ..."""
    write_file(folder / "banner.png", PNG)
    rows = [
        ["Sam", LINE_A, recipient(1), "Hi {{First Name|there}}!", "", ""],
        [
            "",
            LINE_B,
            recipient(2),
            "Hi {{First Name|there}}, the deck:",
            "https://e.com/d",
            "banner.png",
        ],
        ["Ana", LINE_A, f"{recipient(3)}; {recipient(4)}", "Line one\nline two", "", ""],
        ["Bo", LINE_A, recipient(5), "Hi {{First Name}}", "", ""],
        ["Cy", LINE_A, recipient(6), "Hi {{First Name}}", "", ""],
    ]
    return sheet(folder / "in.csv", rows, headers=HEADERS)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def preview_of(output: str) -> list[str]:
    """The preview lines of a summary (between its heading and the next blank line)."""
    lines = output.split("as recipients will see them (--preview N for more):\n")[1]
    return lines.split("\n\n")[0].splitlines()


def test_validate_previews_the_first_three_messages(tmp_path: Path) -> None:
    """validate shows the first 3 messages as recipients will see them."""
    path = preview_sheet(tmp_path)
    code, output = invoke("validate", str(path))
    assert code == 0, output
    assert "Preview: the first 3 messages to send, as recipients will see them" in output
    assert preview_of(output) == [
        f"  row 2: {LINE_A} -> {recipient(1)}: Hi Sam!",
        f"  row 3: {LINE_B} -> {recipient(2)}: Hi there, the deck: <https://e.com/d> [banner.png]",
        f"  row 4: {LINE_A} -> the group (2 people: {recipient(3)}, ...): Line one ⏎ line two",
    ]


@pytest.mark.parametrize(
    ("count", "rows"), [("1", [2]), ("5", [2, 3, 4, 5, 6]), ("9", [2, 3, 4, 5, 6])]
)
def test_preview_n(tmp_path: Path, count: str, rows: list[int]) -> None:
    """--preview N shows N (or every message there is to send); --json carries them."""
    path = preview_sheet(tmp_path)
    code, output = invoke("validate", str(path), "--preview", count)
    assert code == 0
    assert [line.split(":")[0].strip() for line in preview_of(output)] == [
        f"row {row}" for row in rows
    ]
    _, output = invoke("validate", str(path), "--preview", count, "--json")
    shown = json.loads(output)["preview"]
    assert [line["row"] for line in shown] == rows
    assert shown[0] == {
        "row": 2,
        "from": LINE_A,
        "to": recipient(1),
        "parts": [{"type": "text", "value": "Hi Sam!"}],
    }


def test_preview_0_shows_none_and_is_not_repeated_for_run(tmp_path: Path) -> None:
    """--preview 0 turns the preview off; the Next command does not carry --preview."""
    path = preview_sheet(tmp_path)
    code, output = invoke("validate", str(path), "--preview", "0")
    assert code == 0
    assert "Preview" not in output
    assert f"Next: send with: chert-batch run {path}\n" in output


def test_preview_skips_rows_not_to_send(tmp_path: Path) -> None:
    """Invalid and duplicate rows are not previewed: only what would be sent."""
    rows = [
        [LINE_A, "415-555-12", "bad number"],
        [LINE_A, recipient(1), "Hello"],
        [LINE_A, recipient(1), "Hello"],
        [LINE_A, recipient(2), "Hi"],
    ]
    path = sheet(tmp_path / "in.csv", rows)
    code, output = invoke("validate", str(path))
    assert code == 1
    assert preview_of(output) == [
        f"  row 3: {LINE_A} -> {recipient(1)}: Hello",
        f"  row 5: {LINE_A} -> {recipient(2)}: Hi",
    ]


def request(row: int, chat: str, step: int = 1) -> Request:
    """A request of `row` in `chat`, enough for --limit to count."""
    return Request(
        f"k{row}.{step}", row, step, chat, step == 1, LINE_A, (), "", (Part("text", "x"),)
    )


@pytest.mark.parametrize(
    ("todo", "limit", "rows", "held"),
    [
        # (row, chat): A is a chat of rows 2 and 5, B of row 3, C of row 4.
        ([(2, "A"), (5, "A"), (3, "B"), (4, "C")], 1, None, None),
        ([(2, "A"), (5, "A"), (3, "B"), (4, "C")], 2, (2, 5), (3, 4)),
        ([(2, "A"), (5, "A"), (3, "B"), (4, "C")], 3, (2, 3, 5), (4,)),
        ([(2, "A"), (5, "A"), (3, "B"), (4, "C")], 9, (2, 3, 4, 5), ()),
        ([(3, "B"), (2, "A"), (5, "A"), (4, "C")], 3, (2, 3, 5), (4,)),
        # B's 3 rows do not fit after A: the selection ends there, C waits too.
        ([(2, "A"), (3, "B"), (4, "B"), (5, "B"), (6, "C")], 3, (2,), (3, 4, 5, 6)),
    ],
)
def test_limit_counts_rows_and_keeps_chats_whole(
    todo: list[tuple[int, str]], limit: int, rows: tuple[int, ...] | None, held: tuple[int, ...]
) -> None:
    """--limit: the first N rows, chat by chat in sheet order, never part of a chat."""
    requests = [request(row, chat) for row, chat in todo]
    if rows is None:
        with pytest.raises(UsageError, match="the first chat to send has 2 rows"):
            limit_rows(requests, limit)
        return
    limited = limit_rows(requests, limit)
    assert (limited.rows, limited.held) == (rows, held)
    assert {r.row for r in limited.requests} == set(rows)


def test_a_split_group_row_counts_once() -> None:
    """A group row sent as a creation and a follow-up is one row: both requests go."""
    requests = [request(2, "G", 1), request(2, "G", 2), request(3, "A")]
    limited = limit_rows(requests, 1)
    assert ([r.key for r in limited.requests], limited.held) == (["k2.1", "k2.2"], (3,))


def send(box: RunningSandbox, path: Path, limit: int | None) -> RunReport:
    options = RunOptions(job=JobOptions(path=path), send=SendConfig(rate=0), limit=limit)
    return run_file(options, Target(box.base_url, Credentials(box.secret), "sandbox"))


def test_limit_over_loopback_then_the_rest(box: RunningSandbox, tmp_path: Path) -> None:
    """--limit 3 sends 3 rows (Sam's two together), the rest stay pending; a rerun sends them."""
    rows = [
        [LINE_A, recipient(1), "Hi Sam"],
        [LINE_A, recipient(2), "Hi Ana"],
        [LINE_A, recipient(1), "Here is the deck"],
        [LINE_B, recipient(3), "Hi Bo"],
        [LINE_B, recipient(4), "Hi Cy"],
    ]
    path = sheet(tmp_path / "in.csv", rows)
    canary = send(box, path, 3)
    sent = sorted(m["parts"][0]["value"] for m in ledger(box))
    assert sent == ["Here is the deck", "Hi Ana", "Hi Sam"]
    with canary.output.open(encoding="utf-8-sig", newline="") as stream:
        written = [(row["status"], row["error_message"]) for row in csv.DictReader(stream)]
    held = "held back by --limit 3 (a canary); run again without --limit to send it"
    assert written == [
        ("sent", ""),
        ("sent", ""),
        ("sent", ""),
        ("pending", held),
        ("pending", held),
    ]
    summary = run_summary(canary, "chert-batch run in.csv --limit 3")
    assert "--limit 3: 3 of 5 rows sent; rerun without --limit to send the rest." in summary
    assert "Next: run the same command again" not in summary
    assert canary.to_json()["limit"] == {
        "limit": 3,
        "rows_sent": 3,
        "rows_to_send": 5,
        "held_back": [5, 6],
    }
    rest = send(box, path, None)
    assert (rest.sent_now, rest.exit_code) == (2, 0)
    assert_exactly_once(box, 5)


def test_limit_splitting_the_first_chat_is_a_usage_error(tmp_path: Path) -> None:
    """--limit smaller than the first chat: exit 2 before anything is sent, with the fix."""
    rows = [[LINE_A, recipient(1), "Hi Sam"], [LINE_A, recipient(1), "Here is the deck"]]
    path = sheet(tmp_path / "in.csv", rows)
    result = CliRunner().invoke(main, ["run", str(path), "--sandbox", "--yes", "--limit", "1"])
    assert result.exit_code == 2
    assert result.output == (
        "Error: --limit 1: the first chat to send has 2 rows (rows 2, 3), and a chat's rows "
        "are sent together.\nUse --limit 2 or more.\n"
    )
