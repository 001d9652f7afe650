"""`run --proof NUMBER`: the first distinct messages to one number only, rows untouched."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from batcher.cli import main
from batcher.client import Credentials
from batcher.errors import UsageError
from batcher.model import Part
from batcher.pipeline import JobOptions, prepare
from batcher.planning import KEY_PREFIX, PROOF_KEY_PREFIX, proof_key
from batcher.proofing import (
    ProofOptions,
    ProofPlan,
    ProofReport,
    proof_file,
    proof_number,
    real_command,
)
from batcher.running import RunOptions, Target, run_file
from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from batcher.sending import SendConfig
from tests.media_files import PNG
from tests.media_files import write as write_file
from tests.runs import LINE_A, LINE_B, assert_exactly_once, cli_env, ledger, recipient, sheet

ME = "+14155552999"
HEADERS = ["First Name", "From", "To", "Text", "Link", "Media"]


def proof_sheet(folder: Path, bo: str = "Bo") -> Path:
    """A DM, a group with a link and a picture, a repeat of the DM's text, a URL follow-up, ..."""
    write_file(folder / "banner.png", PNG)
    rows = [
        ["Sam", LINE_A, recipient(1), "Hi {{First Name}}!", "", ""],
        [
            "Ana",
            LINE_B,
            f"{recipient(2)}; {recipient(3)}",
            "Hi all",
            "https://e.com/d",
            "banner.png",
        ],
        ["Sam", LINE_A, recipient(4), "Hi {{First Name}}!", "", ""],
        ["", LINE_A, recipient(1), "The deck: https://e.com/deck", "", ""],
        [bo, LINE_A, recipient(5), "Hi {{First Name}}!", "", ""],
        ["Cy", LINE_B, recipient(6), "Hi {{First Name}}!", "", ""],
    ]
    return sheet(folder / "in.csv", rows, headers=HEADERS)


def options(path: Path) -> RunOptions:
    return RunOptions(job=JobOptions(path=path), send=SendConfig(rate=0))


def target(box: RunningSandbox) -> Target:
    return Target(box.base_url, Credentials(box.secret), "sandbox")


def proof(box: RunningSandbox, path: Path, count: int = 3) -> ProofReport:
    return proof_file(options(path), target(box), ProofOptions(ME, count))


def test_proof_reaches_only_the_number_and_the_real_run_sends_every_row(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """3 proofs to ME only, under proof keys; no results sheet; then the run sends all 6 rows
    (7 messages: the group row's link and picture follow its text)."""
    path = proof_sheet(tmp_path)
    report = proof(box, path)
    assert (report.exit_code, report.sent_now) == (0, 3)
    delivered = ledger(box)
    assert [m["to"] for m in delivered] == [[ME]] * 3
    assert all(m["idempotency_key"].startswith(PROOF_KEY_PREFIX) for m in delivered)
    assert not options(path).job.output.exists()
    assert not options(path).journal_path.exists()
    real = run_file(options(path), target(box))
    assert (real.sent_now, real.exit_code) == (7, 0)
    sent = [m for m in ledger(box) if m["to"] != [ME]]
    assert_exactly_once(box, 10)
    assert len(sent) == 7
    # The real recipients' first touches are the real run's, not the proof's.
    assert sum(m["first_touch"] for m in sent) == 5  # row 5 follows up in row 2's chat
    real_keys = {request.key for request in prepare(options(path).job).plan.requests}
    assert real_keys == {m["idempotency_key"] for m in sent}


def test_proof_picks_distinct_messages_and_says_why_one_cannot_go(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """Row 4 repeats row 2's message, row 5's text has a URL (1005 as a DM): rows 2, 3, 6 go."""
    report = proof(box, proof_sheet(tmp_path))
    assert [o.proof.shown.row for o in report.outcomes] == [2, 3, 6]
    assert [p.shown.row for p in report.skipped] == [5]
    ids = [outcome.record.message_id if outcome.record else "" for outcome in report.outcomes]
    assert report.summary("chert-batch run in.csv --proof 4155552999").splitlines() == [
        f"Proof to {ME}:",
        f"  row 2: {LINE_A} -> {ME}: sent, message {ids[0]}",
        f"  row 3: {LINE_B} -> {ME} (as a direct chat; the row goes to the group (2 people: "
        f"{recipient(2)}, ...)): sent, message {ids[1]}",
        f"  row 6: {LINE_A} -> {ME}: sent, message {ids[2]}",
        "Not sent as a proof (1 message):",
        f"  row 5: {LINE_A} -> {recipient(1)}: 1005: a proof is the first message of a direct "
        "chat, which may not carry a web address in its text (move the address to a Link "
        "column to proof it)",
        "3 proof messages sent now. The real rows are untouched: no results sheet was written "
        "and the run's journal has nothing of this.",
        "Next: check your phone, then send every row with: chert-batch run in.csv",
    ]


def test_a_group_rows_proof_is_one_direct_message_with_its_link_and_picture(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """The group row goes to ME as a DM: text, link and the uploaded picture in one message."""
    proof(box, proof_sheet(tmp_path))
    group = next(m for m in ledger(box) if m["from"] == LINE_B)
    assert (group["is_group"], group["to"]) == (False, [ME])
    assert [part["type"] for part in group["parts"]] == ["text", "rich_link", "media"]
    assert group["parts"][2]["attachment_id"]


@pytest.mark.parametrize(("count", "rows"), [(1, [2]), (2, [2, 3]), (9, [2, 3, 6, 7])])
def test_proof_count(box: RunningSandbox, tmp_path: Path, count: int, rows: list[int]) -> None:
    """--proof-count K: the first K distinct messages (or all there are)."""
    report = proof(box, proof_sheet(tmp_path, bo="Bo"), count)
    assert [o.proof.shown.row for o in report.outcomes] == rows
    assert len(ledger(box)) == len(rows)


def test_the_same_proof_again_sends_nothing_and_new_text_is_sent(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """Same keys: a rerun delivers nothing more; a name fixed in the sheet is a new proof."""
    first = proof(box, proof_sheet(tmp_path), 9)
    again = proof(box, proof_sheet(tmp_path), 9)
    assert (again.sent_now, again.exit_code, len(ledger(box))) == (0, 0, 4)
    assert all(outcome.earlier for outcome in again.outcomes)
    assert "(sent by an earlier proof: not sent again)" in again.summary("x")
    fixed = proof(box, proof_sheet(tmp_path, bo="Bob"), 9)
    assert fixed.sent_now == 1
    assert ledger(box)[-1]["parts"] == [{"type": "text", "value": "Hi Bob!"}]
    assert _key(first, 6) != _key(fixed, 6)
    assert _key(first, 7) == _key(fixed, 7)


def _key(report: ProofReport, row: int) -> str:
    """The key the proof of `row` went under."""
    found = [o.proof.request for o in report.outcomes if o.proof.shown.row == row]
    assert found
    assert found[0] is not None
    return found[0].key


def test_declined_confirmation_sends_nothing(box: RunningSandbox, tmp_path: Path) -> None:
    """The question names the count, the number and the lines; no sends nothing."""
    asked: list[ProofPlan] = []

    def decline(plan: ProofPlan) -> bool:
        asked.append(plan)
        return False

    report = proof_file(
        options(proof_sheet(tmp_path)), target(box), ProofOptions(ME), confirm=decline
    )
    assert asked[0].question() == f"Send 3 proof messages to {ME} from lines {LINE_A} and {LINE_B}?"
    assert asked[0].describe().splitlines()[:2] == [
        f"Proof: to {ME} only, each as a direct chat; the rows stay as they are:",
        f"  row 2: {LINE_A} -> {ME}: Hi Sam!",
    ]
    assert (report.cancelled, report.exit_code, ledger(box)) == (True, 1, [])


def test_cli_proof_with_yes(box: RunningSandbox, tmp_path: Path) -> None:
    """--proof with --region and --yes: sent without a question; what went where is printed."""
    path = proof_sheet(tmp_path)
    args = ["run", str(path), "--proof", "(415) 555-2999", "--proof-count", "1"]
    result = CliRunner().invoke(main, [*args, "--yes"], env=cli_env(box))
    assert result.exit_code == 0, result.output
    assert re.search(rf"row 2: \{LINE_A} -> \{ME}: sent, message \w+\n", result.output)
    assert "Send 1 proof message" not in result.output
    assert [m["to"] for m in ledger(box)] == [[ME]]
    refused = CliRunner().invoke(main, args, env=cli_env(box))
    assert (refused.exit_code, refused.output) == (
        2,
        "Error: there is no terminal to confirm on.\nPass --yes to send.\n",
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--proof-count", "2"], "Error: --proof-count needs --proof NUMBER.\n"),
        (
            ["--proof", ME, "--limit", "2"],
            "Error: --proof and --limit cannot be used together: --proof sends to your number "
            "only, --limit sends the first real rows.\n",
        ),
        (["--proof", "12"], "Error: --proof 12: "),
    ],
)
def test_proof_usage_errors(tmp_path: Path, args: list[str], error: str) -> None:
    """Wrong --proof options are usage errors (exit 2) before anything is read or sent."""
    path = proof_sheet(tmp_path)
    result = CliRunner().invoke(main, ["run", str(path), "--sandbox", "--yes", *args])
    assert result.exit_code == 2
    assert result.output.startswith(error)


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("(415) 555-2999", "US", ME),
        ("+1 415 555 2999", "GB", ME),
        ("020 7946 0018", "GB", "+442079460018"),
        ("14155552999.0", "US", ME),
    ],
)
def test_proof_number_is_normalized_like_a_recipient(raw: str, region: str, e164: str) -> None:
    """The number is read as a recipient's, with --region."""
    assert proof_number(raw, region) == e164


def test_a_proof_number_that_is_no_valid_number() -> None:
    """+15555550100 is a possible sender but no valid recipient: refused as one."""
    with pytest.raises(UsageError, match=r"^--proof \+15555550100: "):
        proof_number(LINE_A, "US")


def test_proof_keys_are_never_real_keys() -> None:
    """Another prefix and material; the same proof the same key, other text another key."""
    parts = (Part("text", "Hi Sam!"),)
    key = proof_key(campaign="", sender=LINE_A, number=ME, parts=parts)
    assert re.fullmatch(PROOF_KEY_PREFIX + "[0-9a-f]{32}", key)
    assert not key.startswith(KEY_PREFIX)
    assert key == proof_key(campaign="", sender=LINE_A, number=ME, parts=parts)
    for other in (
        {"campaign": "spring"},
        {"sender": LINE_B},
        {"number": recipient(1)},
        {"parts": (Part("text", "Hi Bob!"),)},
    ):
        changed = {"campaign": "", "sender": LINE_A, "number": ME, "parts": parts, **other}
        assert proof_key(**changed) != key  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("proof", "real"),
    [
        ("chert-batch run in.csv --proof 4155552999", "chert-batch run in.csv"),
        (
            "chert-batch run 'my file.csv' --proof=+14155552999 --proof-count 2 --yes --rate 2",
            "chert-batch run 'my file.csv' --rate 2",
        ),
        (
            "chert-batch run in.csv -y --proof-count=5 --proof 1 --sandbox",
            "chert-batch run in.csv --sandbox",
        ),
    ],
)
def test_the_real_command_after_a_proof(proof: str, real: str) -> None:
    """What the proof suggests next: its command without the proof, and asking again."""
    assert real_command(proof) == real


def test_cli_asks_before_a_proof(
    box: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal it shows the proofs and asks; no (the default) sends nothing, exit 1."""
    monkeypatch.setattr("batcher.cli._is_terminal", lambda stream: True)
    monkeypatch.setattr("batcher.cli._read_line", lambda: "\n")
    path = proof_sheet(tmp_path)
    result = CliRunner().invoke(main, ["run", str(path), "--proof", ME], env=cli_env(box))
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Proof: to {ME} only, each as a direct chat; the rows stay as they are:\n"
        f"  row 2: {LINE_A} -> {ME}: Hi Sam!\n"
    )
    assert (
        f"Send 3 proof messages to {ME} from lines {LINE_A} and {LINE_B}? [y/N]: "
        "Nothing sent: the proof was not confirmed.\n"
    ) in result.output
    assert ledger(box) == []


def test_a_proof_the_api_refuses_is_said_and_the_proof_can_be_run_again(tmp_path: Path) -> None:
    """A line the account lacks (2006): that proof fails, exit 1, the others reach the number."""
    with running_sandbox(SandboxConfig(lines=(LINE_A,))) as box:
        report = proof(box, proof_sheet(tmp_path))
        assert [m["from"] for m in ledger(box)] == [LINE_A, LINE_A]
    assert report.exit_code == 1
    said = report.summary("chert-batch run in.csv --proof 4155552999").splitlines()
    assert said[2] == (
        f"  row 3: {LINE_B} -> {ME} (as a direct chat; the row goes to the group (2 people: "
        f"{recipient(2)}, ...)): failed (2006): from: {LINE_B} is not this tenant's line"
    )
    assert said[-1] == (
        "Next: run the proof again (it sends only what did not go): "
        "chert-batch run in.csv --proof 4155552999"
    )


def test_a_row_with_no_line_to_send_from_is_no_proof(box: RunningSandbox, tmp_path: Path) -> None:
    """A follow-up into a chat by id with no From: nothing to send from; said, exit 1."""
    path = sheet(tmp_path / "in.csv", [["", "", "chat-1", "Hi"]], ["From", "To", "chat_id", "Text"])
    report = proof(box, path)
    assert (report.exit_code, report.outcomes, ledger(box)) == (1, [], [])
    assert report.summary("x").splitlines()[1:3] == [
        "Not sent as a proof (1 message):",
        "  row 2: chat chat-1: it follows up in chat chat-1 and names no line: a proof needs a "
        "line to send from (fill the row's From cell, or give --from)",
    ]
    assert report.summary("x").endswith("Next: fix the rows above, then run the proof again.")
