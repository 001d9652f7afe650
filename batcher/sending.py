"""Sending: every planned request exactly once, concurrently, paced, journaled and resumable.

The sender only schedules. Chats go in parallel, the requests of one chat
strictly in sheet order (a follow-up waits for its chat's creation). At most
`concurrency` workers make calls, through the run's `Caller` (rate limit,
retries, stop signal). Each sender line has a gate that capacity answers
(4002) close without stalling the other lines.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
import anyio.lowlevel

from batcher.answers import Kind, classify, describe, reused_key, sent_before
from batcher.caller import HELD, STOPPED, Caller, RetryPolicy, Stopped
from batcher.client import Answer, Unanswered, encode
from batcher.clock import SYSTEM_CLOCK, Clock
from batcher.history import History
from batcher.journal import Journal, Record, Shared, State, body_digest
from batcher.pacing import UNPACED, LineGate, LinePace
from batcher.planning import KEY_PREFIX, Request
from batcher.quiet import Closed, Window, closed
from batcher.uploading import Uploader, UploadFailed

log = logging.getLogger("batcher.sending")

# An answer's outcome is committed with the next intent, or at the latest this long after
# it came (seconds): the journal's "lost outcome" window (see batcher.journal).
COMMIT_DELAY = 0.05
# Sent requests go into the send history in batches: when this many wait, or the oldest
# has waited this long (seconds). Until then the journal's outbox holds them.
SHARE_BATCH = 256
SHARE_DELAY = 1.0

__all__ = ["RetryPolicy", "SendConfig", "SendResult", "Sender", "Stopped", "Tally"]


@dataclass(frozen=True)
class SendConfig:
    """Pacing and patience of a run, built once from the options."""

    rate: float = 10.0
    concurrency: int = 8
    max_wait: float = 60.0
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # After Ctrl-C: how long answers already in flight may take before they are abandoned.
    grace_seconds: float = 5.0
    # --wait: a slot further away than max_wait is waited for instead of deferred.
    wait: bool = False
    # --window: quiet hours, in each recipient's local time.
    window: Window | None = None


@dataclass
class Tally:
    """Live counts for the progress display, in requests."""

    total: int = 0
    sent: int = 0
    failed: int = 0
    pending: int = 0
    # Accepted, but sent before this run: Chert answered with the original message.
    earlier: int = 0
    # --wait: lines waiting longer than --max-wait, and when (wall time) they send next.
    waiting: dict[str, float] = field(default_factory=dict)
    # --wait --window: chats waiting for their recipients' window: when it opens (wall
    # time), and what the progress says ("outside 09:00-20:00 for +1415... until 09:00").
    outside: dict[str, tuple[float, str]] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Requests that got a final word in this run."""
        return self.sent + self.failed + self.pending + self.earlier


@dataclass
class SendResult:
    """What the sending stage tells the summary."""

    stopped: Stopped | None = None
    deferred: dict[str, datetime] = field(default_factory=dict)  # line → when a rerun can send
    sent: int = 0
    # Requests left pending outside --window, and when the first of them may go (None: never).
    outside: int = 0
    window_opens: datetime | None = None
    earlier: int = 0  # accepted as sent before this run (replayed by Chert)
    # Requests not made because a recipient is on the opt-out list or a suppression file.
    suppressed: dict[str, str] = field(default_factory=dict)  # key → why


_SIGNAL_NAMES = {
    signal.SIGINT: "interrupted (Ctrl-C)",
    signal.SIGTERM: "terminated (SIGTERM)",
}
if hasattr(signal, "SIGHUP"):
    _SIGNAL_NAMES[signal.SIGHUP] = "hung up (SIGHUP: the terminal closed)"
_SIGNALS = tuple(_SIGNAL_NAMES)


# Answers that settle a request as failed: trying again cannot change them.
_FINAL = frozenset({Kind.REFUSED, Kind.STOP})


@dataclass(slots=True)
class _Chat:
    """A chat being worked through: its requests in order, how far it got, its id."""

    requests: tuple[Request, ...]
    position: int = 0
    chat_id: str = ""


class Sender:
    """Sends the requests of many chats; one instance per run.

    A fixed pool of `concurrency` workers takes chats from a queue and works
    through each chat's requests in order. A chat whose line cannot send now
    is parked on the line's gate and the worker moves on, so one waiting line
    never holds up the others; the gate offers its chats again when it opens.
    """

    def __init__(
        self,
        caller: Caller,
        journal: Journal,
        config: SendConfig,
        *,
        uploader: Uploader | None = None,
        clock: Clock = SYSTEM_CLOCK,
        pace: LinePace = UNPACED,
        history: Mapping[str, Sequence[float]] | None = None,
        sent_history: History | None = None,
        on_progress: Callable[[Tally], None] = lambda tally: None,
        screen: Callable[[Sequence[str]], str | None] = lambda recipients: None,
        glance: Callable[[Sequence[str]], str | None] | None = None,
    ) -> None:
        self.caller = caller
        # Why these recipients must not get a message now (see batcher.suppression), or None:
        # `screen` just before each request goes, `glance` (the list as screen last read it)
        # before it takes its turn on the line.
        self.screen = screen
        self.glance = glance or screen
        self.journal = journal
        self.config = config
        self.uploader = uploader
        self.clock = clock
        self.on_progress = on_progress
        self.pace = pace
        # Wall times of the first touches each line already made (from the journal).
        self.history = history or {}
        # The per-user send history: every accepted request is recorded there too.
        self.sent_history = sent_history
        self.started = clock.wall()
        self.gates: dict[str, LineGate[_Chat]] = {}
        self.tally = Tally()
        self.result = SendResult()
        self._records: dict[str, Record] = {}
        # Outcomes recorded since the journal's last commit (see _keep_books).
        self._answered = anyio.Event()
        # Sent requests the send history does not hold yet, and since when the first waits.
        self._unshared: list[Shared] = []
        self._unshared_since = 0.0
        self._open = 0
        # Chats ready to be worked on. A plain deque: taking the next chat must not
        # cost an event-loop turn, which a memory stream's receive does.
        self._ready: deque[_Chat] = deque()
        self._more = anyio.Event()
        # Chats waiting for their recipients' window to open: parked as a line parks them.
        self._quiet: LineGate[_Chat] = LineGate()

    @property
    def stopping(self) -> bool:
        """Whether the run is stopping: no new request starts."""
        return self.caller.stopping

    async def send(
        self,
        chats: dict[str, tuple[Request, ...]],
        records: dict[str, Record],
        chat_ids: dict[str, str],
    ) -> SendResult:
        """Send what the journal has not settled; stop early on a signal or a fatal answer."""
        self._records = records
        self.started = self.clock.wall()
        work = []
        for requests in chats.values():
            todo = sum(_state(records.get(r.key)) is not State.SENT for r in requests)
            if todo:
                chat_id = requests[0].chat_id or chat_ids.get(requests[0].chat, "")
                work.append(_Chat(requests, chat_id=chat_id))
                self.tally.total += todo
        self.on_progress(self.tally)
        self._open = len(work)
        self._ready.extend(work)
        async with anyio.create_task_group() as group:
            self._group = group
            group.start_soon(self._watch_signals)
            group.start_soon(self._stop_when_asked)
            group.start_soon(self._keep_books)
            async with anyio.create_task_group() as workers:
                for _ in range(self.config.concurrency):
                    workers.start_soon(self._worker)
            group.cancel_scope.cancel()
        self.journal.commit()
        self.share()
        self.result.stopped = self.caller.stopped
        self.result.sent, self.result.earlier = self.tally.sent, self.tally.earlier
        return self.result

    async def _keep_books(self) -> None:
        """Commit outcomes a moment after they came, and share sent requests with the history.

        Under load the next intent commits outcomes long before; this is for the last
        answers before a wait (a line's gap, the window, the end).
        """
        while True:
            await self._answered.wait()
            await self.clock.sleep(COMMIT_DELAY)
            self.journal.commit()
            if self._unshared and self.clock.now() - self._unshared_since >= SHARE_DELAY:
                self.share()
            if not self._unshared:
                self._answered = anyio.Event()

    def _booked(self) -> None:
        """An outcome waits for the journal's next commit."""
        if not self._answered.is_set():
            self._answered.set()

    def share(self) -> None:
        """Put the sent requests waiting for it into the send history, one transaction."""
        if self.sent_history is None or not self._unshared:
            return
        if self.sent_history.share(self._unshared):
            self._unshared = []
            self.journal.shared()  # out of the outbox, with the journal's next commit
        else:
            self._unshared_since = self.clock.now()  # a busy home: kept, tried again later

    async def _watch_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach only the main thread; an embedding program handles them
        # anyio's receiver, closing, resets each signal to SIG_DFL (asyncio's
        # remove_signal_handler does): put back what was there, or a signal after
        # sending (while the results are written) would kill the process outright.
        found = {signum: signal.getsignal(signum) for signum in _SIGNALS}
        try:
            with anyio.open_signal_receiver(*_SIGNALS) as signals:
                async for signum in signals:
                    if self.stopping:
                        self._group.cancel_scope.cancel()  # a second Ctrl-C: stop waiting now
                        return
                    self.stop(Stopped(_SIGNAL_NAMES.get(signum, "stopped by a signal")))
        finally:
            for signum, handler in found.items():
                if handler is not None:
                    signal.signal(signum, handler)

    def stop(self, why: Stopped) -> None:
        """Start nothing new; give answers in flight a few seconds, then cancel."""
        self.caller.stop(why)

    async def _stop_when_asked(self) -> None:
        """Once a stop is asked for: let answers in flight come back (briefly), then cancel."""
        await self.caller.stop_requested.wait()
        stopped = self.caller.stopped
        grace = 0.0 if stopped is None or stopped.at_once else self.config.grace_seconds
        async with anyio.create_task_group() as waiting:

            async def give_up() -> None:
                await self.clock.sleep(grace)
                waiting.cancel_scope.cancel()

            waiting.start_soon(give_up)
            while self.caller.in_flight:
                await self.caller.idle.wait()
            waiting.cancel_scope.cancel()
        self._group.cancel_scope.cancel()

    async def _worker(self) -> None:
        while self._open:
            if not self._ready:
                await self._more.wait()  # parked chats come back, or the last one finished
                continue
            chat = self._ready.popleft()
            if self.stopping or await self._advance(chat):
                self._finished()

    def _finished(self) -> None:
        self._open -= 1
        if not self._open:
            self._wake_workers()

    def _offer(self, chats: list[_Chat]) -> None:
        if chats:
            self._ready.extend(chats)
            self._wake_workers()

    def _wake_workers(self) -> None:
        self._more.set()
        self._more = anyio.Event()

    def _gate(self, line: str) -> LineGate[_Chat]:
        gate = self.gates.get(line)
        if gate is None:
            # The journal's wall times, on the clock's monotonic time line.
            offset = self.clock.now() - self.clock.wall()
            history = [when + offset for when in self.history.get(line, ())]
            gate = self.gates[line] = LineGate(self.pace, history)
        return gate

    async def _wake(self, gate: LineGate[_Chat], at: float) -> None:
        await self.clock.sleep(at - self.clock.now())
        if gate.wake_at == at:
            gate.wake_at = math.inf
        self._offer(gate.unpark())

    def _park(self, gate: LineGate[_Chat], chat: _Chat, at: float) -> None:
        gate.park(chat)
        if at < gate.wake_at:
            gate.wake_at = at
            self._group.start_soon(self._wake, gate, at)

    async def _advance(self, chat: _Chat) -> bool:
        """Send a chat's requests in order; False when it was parked to go on later."""
        refusal: Answer | None = None  # the 4002 this request last had, if any
        while chat.position < len(chat.requests):
            request = chat.requests[chat.position]
            record = self._records.get(request.key)
            if record is not None and record.state is State.SENT:
                chat.chat_id = chat.chat_id or record.chat_id
                chat.position += 1
                continue
            if self.stopping:
                return True
            if not request.creates_chat and not chat.chat_id:
                self._blocked(chat)
                return True
            suppressed = self.glance(request.recipients)
            if suppressed is not None:
                self._suppressed(chat, request, suppressed)
                return True
            if self.config.window is not None:
                shut = closed(self.config.window, request.recipients, self.clock.wall())
                if shut is not None:
                    return not self._outside(chat, request, shut)
            self.tally.outside.pop(chat.requests[0].chat, None)
            line = request.sender
            gate = self._gate(line)
            now = self.clock.now()
            at = gate.next_first(now) if request.creates_chat else gate.next_follow_up()
            if at > now:
                if at - now > self.config.max_wait and at != math.inf:
                    if not self.config.wait:
                        self._defer(request, at - now, refusal)
                        self._blocked(chat, after=1)
                        return True
                    self._waiting(line, at - now)
                self._park(gate, chat, at)
                return False
            started = gate.begin_first(now) if request.creates_chat else now
            self.tally.waiting.pop(line, None)
            try:
                result = await self._deliver(request, chat.chat_id)
            except UploadFailed as failed:
                self._end(gate, request, started, counted=False)
                state = State.FAILED if failed.final else State.PENDING
                self._settle(request, state, failed.reason)
                self._blocked(chat, after=1, failed=state is State.FAILED)
                return True
            if result is HELD:
                self._end(gate, request, started, counted=False)
                # The window closed, or the recipient opted out, while it waited for its
                # turn: both are checked again above.
                continue
            verdict = classify(result)
            if verdict.kind is Kind.CAPACITY:
                assert isinstance(result, Answer)
                refusal = result
                log.info(
                    "line %s is at capacity: waiting %.3f s",
                    line or "(existing chats)",
                    verdict.wait,
                )
                self._end(gate, request, started, counted=False, retry_after=verdict.wait)
                continue  # this request again, when the line is free
            # An answer that never came may have been counted: it keeps its slot.
            self._end(gate, request, started, counted=verdict.kind is not Kind.REFUSED)
            refusal = None
            chat_id = self._record(request, result)
            if request.creates_chat and not chat_id:
                # The rows waiting on a chat that was refused for good fail with it.
                self._blocked(chat, after=1, failed=verdict.kind in _FINAL)
                return True
            chat.chat_id = chat.chat_id or chat_id
            chat.position += 1
        return True

    def _end(
        self,
        gate: LineGate[_Chat],
        request: Request,
        started: float,
        *,
        counted: bool,
        retry_after: float | None = None,
    ) -> None:
        """A request on the line came back: free its slot, learn from a 4002, offer work."""
        offered = gate.end_first(started, counted=counted) if request.creates_chat else []
        if retry_after is not None:
            gate.capacity(self.clock.now(), retry_after, first_touch=request.creates_chat)
        self._offer(offered)

    def _outside(self, chat: _Chat, request: Request, shut: Closed) -> bool:
        """Outside the window: True when parked until it opens; else the rest ends pending.

        Beyond --max-wait (or never inside at all) a run without --wait leaves it pending;
        with --wait it waits, and the progress says for whom and until when.
        """
        wait = math.inf if shut.opens is None else shut.opens - self.clock.wall()
        if wait > self.config.max_wait and (not self.config.wait or shut.opens is None):
            self.result.outside += 1
            if shut.opens is not None:
                opens = datetime.fromtimestamp(shut.opens, UTC)
                known = self.result.window_opens
                self.result.window_opens = opens if known is None else min(known, opens)
            self._settle(request, State.PENDING, shut.describe())
            self._blocked(chat, after=1)
            return False
        if wait > self.config.max_wait:
            at = self.clock.wall() + wait
            self.tally.outside[chat.requests[0].chat] = (at, shut.describe(with_zone=False))
            log.info("%s", shut.describe())
            self.on_progress(self.tally)
        self._park(self._quiet, chat, self.clock.now() + wait)
        return True

    def _suppressed(self, chat: _Chat, request: Request, why: str) -> None:
        """A recipient must not get it: no request, and the chat's remaining ones neither."""
        self.result.suppressed[request.key] = why
        log.info("row %d: %s; not sent", request.row, why)
        self._blocked(chat)

    def _defer(self, request: Request, wait: float, refusal: Answer | None) -> None:
        """A slot beyond --max-wait (without --wait): the request ends pending until then."""
        until = self.clock.wall() + wait
        known = self.result.deferred.get(request.sender)
        if known is None or until < known.timestamp():
            self.result.deferred[request.sender] = datetime.fromtimestamp(until, UTC)
        self._settle(request, State.PENDING, _deferred(until), refusal)

    def _waiting(self, line: str, wait: float) -> None:
        """--wait: say what the run waits for, once per line and slot."""
        at = self.clock.wall() + wait
        if self.tally.waiting.get(line) != at:
            self.tally.waiting[line] = at
            log.info("line %s: next first touch at %s", line, _local_time(at))
            self.on_progress(self.tally)

    def _blocked(self, chat: _Chat, after: int = 0, *, failed: bool = False) -> None:
        """The chat cannot go on: its remaining requests wait, or fail with its creation."""
        rest = chat.requests[chat.position + after :]
        count = sum(_state(self._records.get(r.key)) is not State.SENT for r in rest)
        if failed:
            self.tally.failed += count
        else:
            self.tally.pending += count
        self.on_progress(self.tally)

    async def _deliver(self, request: Request, chat_id: str) -> Answer | Unanswered:
        """Upload what the request's media needs, then send it within the retry policy."""
        attachments: dict[str, str] = {}
        if self.uploader is not None:
            attachments = await self.uploader.attachments(request.parts)
        body = encode(request.body(attachments))
        # Only explicit keys can meet other content (see running._conflicts); the digest
        # is of the planned body, media by reference, so an upload's id does not matter.
        digest = "" if request.key.startswith(KEY_PREFIX) else body_digest(encode(request.body()))

        async def intend() -> Unanswered | None:
            # The intent is committed only now, with the slot held and the rate slot
            # reached: nothing sits between it and the request going out. The window
            # is checked here too: the rate limiter's wait may have crossed its end.
            window = self.config.window
            if window is not None and closed(window, request.recipients, self.clock.wall()):
                return HELD
            if self.screen(request.recipients) is not None:
                return HELD
            journal = self.journal
            journal.intend_later(request.key, digest, request.row, request.step, request.chat)
            # The workers ready in this turn of the event loop add their intents too, and
            # the first to go on commits them all: one commit for several requests. None
            # goes before its own commit() returned, which commits its intent if no
            # other did (and raises if the commit that held it failed).
            await anyio.lowlevel.checkpoint()
            journal.commit()
            return None

        return await self.caller.post(request.path(chat_id), body, before=intend)

    def _record(self, request: Request, result: Answer | Unanswered) -> str:
        kind = classify(result).kind
        if kind is Kind.SENT:
            assert isinstance(result, Answer)
            message = result.payload.get("message") or {}
            chat = result.payload.get("chat") or {}
            chat_id = str(chat.get("id") or message.get("chat_id") or "")
            message_id = str(message.get("id") or "")
            earlier = sent_before(result, self.started)
            share = None
            if self.sent_history is not None:
                share = self.sent_history.entry(
                    request,
                    chat_id=chat_id,
                    message_id=message_id,
                    trace_id=result.trace_id,
                    wall=_wall_of(earlier) if earlier else self.clock.wall(),
                )
            self.journal.sent(
                request.key,
                chat_id=chat_id,
                message_id=message_id,
                trace_id=result.trace_id,
                sent_at=earlier,
                note=sent_earlier_note(earlier[:10], "Chert answered with it") if earlier else "",
                share=share,
            )
            self._booked()
            if share is not None:
                if not self._unshared:
                    self._unshared_since = self.clock.now()
                self._unshared.append(share)
                if len(self._unshared) >= SHARE_BATCH:
                    self.share()
            if earlier:
                self.tally.earlier += 1
            else:
                self.tally.sent += 1
            self.on_progress(self.tally)
            return chat_id
        if kind in _FINAL:
            assert isinstance(result, Answer)
            reused = reused_key(request.key, result)
            # A reused key's code would read as "fix the row": the note says all.
            code = 0 if reused else None
            self._settle(request, State.FAILED, reused or result.message, result, code=code)
        elif self.stopping and isinstance(result, Unanswered):
            pass  # interrupted: the journal keeps "sending", and the summary says so
        elif result is not STOPPED:
            self._settle(request, State.PENDING, f"gave up for now: {describe(result)}", result)
        return ""

    def _settle(
        self,
        request: Request,
        state: State,
        message: str,
        answer: Answer | Unanswered | None = None,
        code: int | None = None,
    ) -> None:
        if code is None:
            code = answer.code if isinstance(answer, Answer) else 0
        self.journal.settle(
            request.key,
            state,
            where=(request.row, request.step, request.chat),
            code=code,
            message=message,
            trace_id=answer.trace_id if isinstance(answer, Answer) else "",
        )
        self._booked()
        if state is State.FAILED:
            self.tally.failed += 1
        else:
            self.tally.pending += 1
        self.on_progress(self.tally)


def _state(record: Record | None) -> State | None:
    return record.state if record else None


def _local_time(wall: float) -> str:
    return datetime.fromtimestamp(wall).strftime("%H:%M:%S")


def _deferred(until: float) -> str:
    when = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"deferred until {when}: the line is out of capacity; rerun after that"


def sent_earlier_note(day: str, how: str) -> str:
    """What the results say of a message sent before this run, from another sheet or journal."""
    return f"sent earlier, on {day}, from another sheet or journal ({how}); not sent again"


def _wall_of(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
