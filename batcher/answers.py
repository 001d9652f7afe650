"""What an API answer means for the request that got it: one decision, made in one place.

The sender, the uploader and the retry loop all ask `classify`; none of them
reads status codes itself. The envelope's `retryable` is authoritative: a 429
or a 5xx whose envelope says `retryable: false` is refused for good. Without
an envelope, `read_answer` already took 5xx and 429 as retryable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from batcher.client import CAPACITY, FATAL_CODES, RATE_LIMITED, Answer, Unanswered


class Kind(Enum):
    """The five things an answer can mean."""

    SENT = "sent"  # accepted
    RETRY = "retry"  # try again with the same key, after `wait` seconds if given
    CAPACITY = "capacity"  # 4002: this line later, after `wait` seconds
    REFUSED = "refused"  # refused for good: trying again cannot change it
    STOP = "stop"  # credentials or clock refused: every other request would fail too


@dataclass(frozen=True, slots=True)
class Verdict:
    """An answer's meaning, and how long the API asked to wait before the next try."""

    kind: Kind
    wait: float = 0.0
    # 1007: the account, not the request, is over its rate: costs time, not an attempt.
    rate_limited: bool = False


def classify(result: Answer | Unanswered) -> Verdict:
    """Sent, retry (after N s), line capacity, refused for good, or stop the run."""
    if isinstance(result, Unanswered):
        return Verdict(Kind.RETRY)
    if result.ok:
        return Verdict(Kind.SENT)
    if result.code in FATAL_CODES:
        return Verdict(Kind.STOP)
    if not result.retryable:
        return Verdict(Kind.REFUSED)
    if result.code == CAPACITY:
        return Verdict(Kind.CAPACITY, result.retry_after)
    if result.code == RATE_LIMITED or result.status == 429:
        return Verdict(Kind.RETRY, result.retry_after, rate_limited=True)
    return Verdict(Kind.RETRY, result.retry_after)


def describe(result: Answer | Unanswered) -> str:
    """An answer in a few words, for messages and logs."""
    if isinstance(result, Unanswered):
        return result.reason
    code = f" {result.code}" if result.code else ""
    return f"HTTP {result.status}{code}: {result.message}"
