"""Calling the API: the rate limiter, retries where safe and useful, and the stop signal.

The sender and the uploader both make their calls through one `Caller`, so
the rate, the retries and the decision to stop are the same for every call.

Retries (tenacity, sleeping on the injected clock) happen only where
`classify` says so: no answer at all, a retryable refusal, 1007. The wait is
what the API asked for, exactly, when it asked (`retry_after`); else an
exponential backoff with jitter. Rate-limited answers cost time, not
attempts: the account is busy, the request itself did nothing wrong. Every
retry is logged at -v, the first included.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from tenacity import AsyncRetrying, RetryCallState

from batcher.answers import Kind, classify, describe
from batcher.client import CONNECT_FAILED, Answer, ChertClient, Unanswered
from batcher.clock import Clock
from batcher.pacing import RateLimiter

log = logging.getLogger("batcher.sending")

Call = Callable[[], Awaitable[Answer | Unanswered]]

# A run whose first requests all fail to connect stops after this many, none answered.
CONNECT_FAILURES_TO_STOP = 4


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request: attempts and total time, backoff between them."""

    attempts: int = 8
    total_seconds: float = 300.0
    wait_initial: float = 0.5
    wait_max: float = 30.0
    wait_jitter: float = 1.0


@dataclass(frozen=True)
class Stopped:
    """Why a run stopped before the end: interrupted, or credentials / clock refused."""

    reason: str
    code: int = 0
    # Stopped by what the API (or the network) said, not by the person: no grace.
    at_once: bool = False


STOPPED = Unanswered("stopped before this attempt")
# What a `before` hook returns to keep an attempt from going out (and from being retried).
HELD = Unanswered("held back just before it went out")


def backoff(retry: int, policy: RetryPolicy, jitter: float) -> float:
    """The wait before retry number `retry` (1-based) when the API named none."""
    exponential = min(policy.wait_max, policy.wait_initial * 2.0 ** (retry - 1))
    return exponential + jitter * policy.wait_jitter


async def _nothing() -> Unanswered | None:
    return None


class Caller:
    """Makes API calls for one run: paced, retried where that is safe, stoppable."""

    def __init__(
        self,
        client: ChertClient,
        clock: Clock,
        *,
        rate: float,
        retry: RetryPolicy,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.clock = clock
        self.policy = retry
        self.jitter = jitter
        self.limiter = RateLimiter(rate, clock)
        self.stopped: Stopped | None = None
        self.stop_requested = anyio.Event()
        self.in_flight = 0
        self.idle = anyio.Event()
        self.answered = 0
        self.connect_failures = 0

    @property
    def stopping(self) -> bool:
        """Whether the run is stopping: nothing new starts."""
        return self.stopped is not None

    def stop(self, why: Stopped) -> None:
        """Start no new call; the first reason is kept unless a later one is the API's."""
        if self.stopped is None or (why.at_once and not self.stopped.at_once):
            self.stopped = why
        if not self.stop_requested.is_set():
            log.info("stopping: %s", why.reason)
            self.stop_requested.set()

    async def post(
        self, path: str, body: bytes, before: Callable[[], Awaitable[Unanswered | None]] = _nothing
    ) -> Answer | Unanswered:
        """POST through the retry policy; `before` runs right before each attempt goes out.

        `before` returning HELD ends the call there: that attempt is not made.
        """

        async def attempt() -> Answer | Unanswered:
            held = await before()
            if held is not None:
                return held
            return await self.client.post(path, body)

        return await self.call(attempt)

    async def call(self, call: Call) -> Answer | Unanswered:
        """Make a call, paced, and again where that is safe and useful, within the policy."""
        started = self.clock.now()
        first = await self._attempt(call)
        if (
            first is STOPPED
            or first is HELD
            or self.stopping
            or classify(first).kind is not Kind.RETRY
        ):
            # Most calls end at their first attempt: they need no retry machinery at all,
            # which costs about 5 % of a request's CPU (tenacity's state, futures, closures).
            return first
        return await self._retried(call, first, started)

    async def _retried(
        self, call: Call, first: Answer | Unanswered, started: float
    ) -> Answer | Unanswered:
        """The retries of a call whose first attempt (already made) is worth another."""
        made = [first]  # tenacity's first attempt is that one: numbers, waits and logs match

        async def attempt(call: Call) -> Answer | Unanswered:
            return made.pop() if made else await self._attempt(call)

        counted = 0  # attempts that count against the policy (not rate-limited ones)

        def again(state: RetryCallState) -> bool:
            nonlocal counted
            result = state.outcome.result() if state.outcome else STOPPED
            verdict = classify(result)
            if (
                result is STOPPED
                or result is HELD
                or self.stopping
                or verdict.kind is not Kind.RETRY
            ):
                return False
            counted += not verdict.rate_limited
            if counted >= self.policy.attempts:
                return False
            return self.clock.now() - started + _wait(state) <= self.policy.total_seconds

        def _wait(state: RetryCallState) -> float:
            result = state.outcome.result() if state.outcome else STOPPED
            verdict = classify(result)
            if verdict.wait > 0:
                return verdict.wait
            return backoff(counted, self.policy, self.jitter())

        waits: dict[int, float] = {}

        def wait(state: RetryCallState) -> float:
            waits[state.attempt_number] = seconds = _wait(state)
            return seconds

        def logged(state: RetryCallState) -> None:
            result = state.outcome.result() if state.outcome else STOPPED
            log.info(
                "retry %d in %.2f s after: %s",
                state.attempt_number,
                waits.get(state.attempt_number, 0.0),
                describe(result),
            )

        retrying = AsyncRetrying(
            sleep=self.clock.sleep,
            retry=again,
            wait=wait,
            before_sleep=logged,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else STOPPED,
        )
        result: Answer | Unanswered = await retrying(attempt, call)
        return result

    async def _attempt(self, call: Call) -> Answer | Unanswered:
        """One attempt: the rate limiter's schedule, then the call, then what it means."""
        await self.limiter.acquire()
        if self.stopping:
            return STOPPED
        self.in_flight += 1
        try:
            result = await call()
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()
                self.idle = anyio.Event()
        self._heed(result)
        return result

    def _heed(self, result: Answer | Unanswered) -> None:
        """What a single answer means for the whole run: rate held, stop, or no way through."""
        if isinstance(result, Unanswered):
            if result.reason.startswith(CONNECT_FAILED) and not self.answered:
                self.connect_failures += 1
                if self.connect_failures >= CONNECT_FAILURES_TO_STOP:
                    self.stop(
                        Stopped(
                            result.reason.replace(
                                CONNECT_FAILED, f"{CONNECT_FAILED} to {self.client.base_url}", 1
                            )
                            + ", and no request of this run got an answer. "
                            "Check the base URL and the network",
                            at_once=True,
                        )
                    )
            return
        self.answered += 1
        verdict = classify(result)
        if verdict.kind is Kind.STOP:
            self.stop(Stopped(result.message, result.code, at_once=True))
        elif verdict.rate_limited:
            self.limiter.hold(verdict.wait)
