"""`run --limit N`, a canary: only the first N rows to send go, each chat whole.

Rows are counted (a group row split into a creation and a follow-up is one row),
chat by chat in the order of their first row in the sheet. A chat's rows go
together or not at all: a follow-up sent days after the message it follows, in
another run, would read as out of the blue. The first chat that does not fit in
what is left of N ends the selection, so what goes is always the sheet's first
chats and "the rest" is everything after them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from batcher.errors import UsageError
from batcher.planning import Request


class Limited(NamedTuple):
    """What --limit lets go: the requests, the rows they are, and the rows held back."""

    requests: list[Request]
    rows: tuple[int, ...]
    held: tuple[int, ...]

    @property
    def of(self) -> int:
        """How many rows there were to send."""
        return len(self.rows) + len(self.held)


def limit_rows(todo: Sequence[Request], limit: int) -> Limited:
    """The first `limit` rows of `todo` (requests in the plan's chat order), chats whole.

    UsageError when the first chat alone has more rows than `limit`: sending part of
    it would split it, and sending none would be no canary.
    """
    chats: dict[str, dict[int, list[Request]]] = {}
    for request in todo:
        chats.setdefault(request.chat, {}).setdefault(request.row, []).append(request)
    # The plan lists chats in the order of their first row; say so rather than trust it.
    ordered = sorted(chats.values(), key=min)
    chosen: list[Request] = []
    rows: list[int] = []
    held: list[int] = []
    for by_row in ordered:
        if held or len(rows) + len(by_row) > limit:
            held.extend(by_row)
            continue
        rows.extend(by_row)
        chosen.extend(request for requests in by_row.values() for request in requests)
    if not rows:
        first = ordered[0]
        listed = ", ".join(str(row) for row in sorted(first))
        raise UsageError(
            f"--limit {limit}: the first chat to send has {len(first)} rows (rows {listed}), "
            "and a chat's rows are sent together.",
            hint=f"Use --limit {len(first)} or more.",
        )
    return Limited(chosen, tuple(sorted(rows)), tuple(sorted(held)))
