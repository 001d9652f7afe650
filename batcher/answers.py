"""What an API answer means for the request that got it: one decision, made in one place.

The sender, the uploader and the retry loop all ask `classify`; none of them
reads status codes itself. The envelope's `retryable` is authoritative: a 429
or a 5xx whose envelope says `retryable: false` is refused for good. Without
an envelope, `read_answer` already took 5xx and 429 as retryable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from batcher.client import CAPACITY, FATAL_CODES, RATE_LIMITED, Answer, Unanswered
from batcher.planning import KEY_PREFIX

# How much older than the run a message Chert answers with must be to count as sent
# before it: more than the clocks of this machine and Chert's may disagree (HMAC
# refuses beyond 5 minutes; NTP keeps them within a second).
REPLAY_MARGIN_SECONDS = 60.0
# How the results of a row whose derived key Chert had with other content begin.
REUSED_KEY = "not sent again: Chert already has this message's key with other content"
# 1006 (too many recipients) also comes as a 422: about the request, not the key.
_NOT_ABOUT_THE_KEY = frozenset({1006})


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


def sent_before(result: Answer, wall: float) -> str:
    """When (ISO) the message of an answer was created, if well before `wall`, else ''.

    Chert answers a repeated key with the original message (chert-api.md documents no
    replay marker): a message created before this run started was sent earlier, from
    another sheet or journal, not by this run.
    """
    message = result.payload.get("message")
    created = message.get("created_at") if isinstance(message, dict) else None
    if not isinstance(created, str) or not created:
        return ""
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return ""
    return created if when < wall - REPLAY_MARGIN_SECONDS else ""


def is_reused_key(error_message: str) -> bool:
    """Whether a failed row's message is `reused_key`'s: nothing in the row to fix."""
    return error_message.startswith(REUSED_KEY)


def reused_key(key: str, result: Answer | Unanswered) -> str:
    """What a 422 on a key chert-batch derived means, for the results; '' for anything else.

    A derived key is a hash of the message's content: the API refusing it as "used with
    a different body" means this very message (same sender, recipients, subject and
    parts) was sent under it before, from another sheet or journal, its body differing
    only in what no row holds (an attachment id from another upload, say). Fixing the
    row would make a new key, and send the message a second time.
    """
    if (
        not isinstance(result, Answer)
        or result.status != 422
        or not key.startswith(KEY_PREFIX)
        or result.code in _NOT_ABOUT_THE_KEY
    ):
        return ""
    return (
        f"{REUSED_KEY} (HTTP "
        f"422{f' {result.code}' if result.code else ''}), so it was sent earlier from "
        "another sheet or journal. Nothing to fix in the row: changing it would send the "
        "message twice. To send it again on purpose, as a new message, use another "
        "--campaign."
    )
