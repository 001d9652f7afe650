"""`run --proof NUMBER`: the first distinct messages, to your own phone and nowhere else.

A proof is a row's message as its recipients would get it (placeholders filled,
the parts in the order the preview shows them), sent from the row's line to the
proof number as a direct chat of its own: a group row's message too, in one
message, since a direct chat's first message may carry links and media. The
rules of a direct chat's first message still apply (no web address in its text:
1005); a message they refuse is said so and the next one is taken.

Proofs change nothing about the real rows. Their keys are proof keys
(`planning.proof_key`: another prefix, another material), kept in a journal of
their own beside the run's, so the run's journal, its results sheet and the
first touches a run paces by never see them; a later real run sends every row.
The same proof again sends nothing twice (same keys); new text is a new proof.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from batcher.caller import Stopped
from batcher.clock import SYSTEM_CLOCK, Clock
from batcher.errors import NothingToSend, UsageError
from batcher.journal import Journal, Record, State
from batcher.media import Media
from batcher.model import Part, Status
from batcher.phones import normalize_phone
from batcher.pipeline import prepare, who_gets
from batcher.planning import Request, RowPlan, proof_key, url_in_text
from batcher.preview import Shown, shown_row
from batcher.render import plural
from batcher.results import check_writable
from batcher.running import RunOptions, Target, send_requests

PROOF_COUNT = 3


@dataclass(frozen=True)
class ProofOptions:
    """--proof NUMBER (normalized, E.164) and --proof-count K."""

    number: str
    count: int = PROOF_COUNT


def proof_number(raw: str, region: str) -> str:
    """The --proof number in E.164, read as a recipient's is (with --region); else UsageError."""
    phone = normalize_phone(raw, region)
    if phone.problem:
        raise UsageError(f"--proof {raw}: {phone.problem}", hint="Give your own mobile number.")
    return phone.e164


def proof_journal(journal: Path) -> Path:
    """Where proofs are journaled: beside the run's journal, never in it."""
    return journal.with_name(f"{journal.stem}.proof{journal.suffix}")


class Proof(NamedTuple):
    """A row's message as a proof: as shown, and its request; or why it cannot be one."""

    shown: Shown  # the row's message as its real recipients would see it
    group: bool  # the row goes to a group (or a chat by id): the proof is a direct chat
    request: Request | None = None
    problem: str = ""


def choose_proofs(
    rows: Iterable[RowPlan],
    proof: ProofOptions,
    campaign: str,
    media: Mapping[str, Media],
    who: Callable[[RowPlan], str] = who_gets,
) -> tuple[list[Proof], list[Proof]]:
    """The first `proof.count` distinct messages of the rows to send, and those skipped.

    Distinct means another line or other parts: a message many rows share is one proof.
    A message that cannot go as a direct chat's first message is skipped, with why.
    """
    chosen: list[Proof] = []
    skipped: list[Proof] = []
    seen: set[tuple[str, tuple[Part, ...]]] = set()
    for row in rows:
        if len(chosen) >= proof.count:
            break
        if row.status is not Status.PENDING or not row.requests:
            continue
        first = row.requests[0]
        parts = tuple(part for request in row.requests for part in request.parts)
        if (first.sender, parts) in seen:
            continue
        seen.add((first.sender, parts))
        shown = shown_row(row, media, who)
        group = len(first.recipients) != 1
        problem = _why_not(first, parts)
        if problem:
            skipped.append(Proof(shown, group, problem=problem))
            continue
        key = proof_key(campaign=campaign, sender=first.sender, number=proof.number, parts=parts)
        request = Request(
            key, row.row, 1, f"proof:{key}", True, first.sender, (proof.number,), "", parts
        )
        chosen.append(Proof(shown, group, request))
    return chosen, skipped


def _why_not(first: Request, parts: tuple[Part, ...]) -> str:
    """Why a row's message cannot be a direct chat's first message; "" when it can."""
    if not first.sender:
        return (
            f"it follows up in chat {first.chat_id} and names no line: a proof needs a line to "
            "send from (fill the row's From cell, or give --from)"
        )
    if url_in_text(parts) is not None:
        return (
            "1005: a proof is the first message of a direct chat, which may not carry a web "
            "address in its text (move the address to a Link column to proof it)"
        )
    return ""


@dataclass(frozen=True)
class ProofPlan:
    """What a proof is about to send, for the confirmation."""

    number: str
    proofs: tuple[Proof, ...]
    skipped: tuple[Proof, ...] = ()

    @property
    def lines(self) -> list[str]:
        """The lines the proofs go from, in the order of their first proof."""
        return list(dict.fromkeys(p.request.sender for p in self.proofs if p.request))

    def question(self) -> str:
        """ "Send 3 proof messages to +1415... from line +1555...?": what is asked."""
        lines = self.lines
        named = ", ".join(lines[:-1]) + f" and {lines[-1]}" if len(lines) > 1 else lines[0]
        return (
            f"Send {plural(len(self.proofs), 'proof message')} to {self.number} "
            f"from {'lines' if len(lines) > 1 else 'line'} {named}?"
        )

    def describe(self) -> str:
        """The proofs as they will arrive, and the messages skipped, one line each."""
        said = [f"Proof: to {self.number} only, each as a direct chat; the rows stay as they are:"]
        said += [f"  {_where(proof, self.number)}" for proof in self.proofs]
        said += _skipped(self.skipped)
        return "\n".join(said)


class ProofOutcome(NamedTuple):
    """How one proof went: its journal entry after sending, and whether it was sent before."""

    proof: Proof
    record: Record | None
    earlier: bool

    @property
    def sent(self) -> bool:
        """Whether the proof number has it (now or from an earlier proof)."""
        return self.record is not None and self.record.state is State.SENT

    def describe(self, number: str) -> str:
        """Row, line -> number, and its message id or why it did not go."""
        where = _where(self.proof, number, parts=False)
        record = self.record
        if record is not None and record.state is State.SENT:
            again = " (sent by an earlier proof: not sent again)" if self.earlier else ""
            return f"{where}: sent, message {record.message_id}{again}"
        if record is None or record.state is State.SENDING:
            return f"{where}: not sent (stopped before its answer came; run the proof again)"
        code = f" ({record.error_code})" if record.error_code else ""
        return f"{where}: {record.state}{code}: {record.error_message}"


@dataclass
class ProofReport:
    """What a proof did: each proof's outcome, the messages skipped, and how it ended."""

    number: str
    journal: Path
    outcomes: list[ProofOutcome] = field(default_factory=list)
    skipped: list[Proof] = field(default_factory=list)
    stopped: Stopped | None = None
    cancelled: bool = False

    @property
    def sent_now(self) -> int:
        """Proofs sent by this run."""
        return sum(outcome.sent and not outcome.earlier for outcome in self.outcomes)

    @property
    def exit_code(self) -> int:
        """3 when stopped early; 0 when every proof reached the number; else 1."""
        if self.stopped is not None:
            return 3
        done = self.outcomes and all(outcome.sent for outcome in self.outcomes)
        return 0 if done and not self.cancelled else 1

    def summary(self, command: str) -> str:
        """What went where, and what to do next (`command` is the proof's command line)."""
        if self.cancelled:
            return "Nothing sent: the proof was not confirmed."
        said = [f"Proof to {self.number}:"]
        said += [f"  {outcome.describe(self.number)}" for outcome in self.outcomes]
        said += _skipped(self.skipped)
        if self.stopped is not None:
            said.append(f"Stopped: {self.stopped.reason}.")
        said.append(
            f"{plural(self.sent_now, 'proof message')} sent now. The real rows are untouched: "
            "no results sheet was written and the run's journal has nothing of this."
        )
        real = real_command(command)
        if self.exit_code == 0:
            said.append(f"Next: check your phone, then send every row with: {real}")
        elif not self.outcomes:
            said.append("Next: fix the rows above, then run the proof again.")
        else:
            said.append(f"Next: run the proof again (it sends only what did not go): {command}")
        return "\n".join(said)

    def to_json(self) -> dict[str, Any]:
        """The proof as plain data, for `--json`."""
        return {
            "proof": self.number,
            "journal": str(self.journal),
            "sent_now": self.sent_now,
            "stopped": self.stopped.reason if self.stopped else None,
            "cancelled": self.cancelled,
            "messages": [_outcome_json(outcome) for outcome in self.outcomes],
            "skipped": [
                {**proof.shown.to_json(), "problem": proof.problem} for proof in self.skipped
            ],
        }


def proof_file(
    options: RunOptions,
    target: Target,
    proof: ProofOptions,
    *,
    confirm: Callable[[ProofPlan], bool] = lambda plan: True,
    clock: Clock = SYSTEM_CLOCK,
) -> ProofReport:
    """`run --proof`: read and plan the file as `run` does, then send only the proofs."""
    journal_path = proof_journal(options.journal_path)
    check_writable(journal_path, "proof journal", "--journal")
    prepared = prepare(options.job)
    proofs, skipped = choose_proofs(prepared.plan.rows, proof, options.job.campaign, prepared.media)
    report = ProofReport(proof.number, journal_path, skipped=skipped)
    if not proofs and not skipped:
        raise NothingToSend(
            "--proof: no row has a message to send: every row is invalid, a duplicate or "
            "already sent.",
            hint=f"See the rows' problems with: chert-batch validate {options.job.path}",
        )
    if not proofs or not confirm(ProofPlan(proof.number, tuple(proofs), tuple(skipped))):
        report.cancelled = bool(proofs)
        return report
    requests = [p.request for p in proofs if p.request is not None]
    # Your own phone, now: quiet hours are the recipients', not yours.
    send = replace(options.send, window=None)
    journal = Journal(journal_path)
    try:
        before = journal.records(request.key for request in requests)
        chats: dict[str, tuple[Request, ...]] = {r.chat: (r,) for r in requests}
        result = send_requests(
            journal, replace(options, send=send), target, chats, prepared.media, clock
        )
        after = journal.records(request.key for request in requests)
    finally:
        journal.close()
    report.stopped = result.stopped
    for p in proofs:
        assert p.request is not None
        earlier = before.get(p.request.key)
        was_sent = earlier is not None and earlier.state is State.SENT
        report.outcomes.append(ProofOutcome(p, after.get(p.request.key), was_sent))
    return report


def _where(proof: Proof, number: str, *, parts: bool = True) -> str:
    """row N: line -> number (as a direct chat, for a group's row): the message."""
    shown = proof.shown
    line = f"{shown.line} -> " if shown.line else ""
    said = f"row {shown.row}: {line}{number}"
    if proof.group:
        said += f" (as a direct chat; the row goes to {shown.to})"
    if not parts:
        return said
    return f"{said}: {shown.message()}"


def _skipped(skipped: Iterable[Proof]) -> list[str]:
    """The messages that cannot be proofs (row, line -> its real chat), and why; at most 3
    listed, then a count."""
    skipped = list(skipped)
    if not skipped:
        return []
    said = [f"Not sent as a proof ({plural(len(skipped), 'message')}):"]
    for p in skipped[:PROOF_COUNT]:
        line = f"{p.shown.line} -> " if p.shown.line else ""
        said.append(f"  row {p.shown.row}: {line}{p.shown.to}: {p.problem}")
    if len(skipped) > PROOF_COUNT:
        said.append(f"  ... and {len(skipped) - PROOF_COUNT} more")
    return said


def _outcome_json(outcome: ProofOutcome) -> dict[str, Any]:
    record = outcome.record
    request = outcome.proof.request
    assert request is not None
    return {
        **outcome.proof.shown.to_json(),
        "to": request.recipients[0],
        "row_goes_to": outcome.proof.shown.to,
        "as_direct_chat": outcome.proof.group,
        "status": str(record.state) if record else "pending",
        "chat_id": record.chat_id if record else "",
        "message_id": record.message_id if record else "",
        "error_code": record.error_code if record else 0,
        "error_message": record.error_message if record else "",
        "idempotency_key": request.key,
        "sent_earlier": outcome.earlier,
    }


def real_command(command: str) -> str:
    """The proof's command line as the real run's: no --proof, --proof-count, nor --yes."""
    words = shlex.split(command)
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in ("--proof", "--proof-count"):
            skip = True
            continue
        # --yes too: the real send is asked for again, with the whole plan shown.
        if word in ("--yes", "-y") or word.startswith(("--proof=", "--proof-count=")):
            continue
        kept.append(word)
    return shlex.join(kept)
