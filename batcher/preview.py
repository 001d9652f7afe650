"""The first messages as recipients will see them, for `validate` and the confirmation.

A preview line is one row to send: its line, who gets it (a number, or a group's
name), and its parts in order as a phone shows them: the rendered text, the link,
the media file's name. Pure values; batcher.render lays them out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import Any, NamedTuple

from batcher.media import Media, MediaKind
from batcher.model import Part, PartType
from batcher.planning import RowPlan

PREVIEW_COUNT = 3


class Shown(NamedTuple):
    """One row's message as its recipients will see it."""

    row: int
    line: str  # the sender; "" for a follow-up into a chat the sheet names by id
    to: str  # the recipient, or the group ("the group "Launch" (3 people: ...)")
    parts: tuple[tuple[PartType, str], ...]  # what each part shows: text, URL, file name

    def describe(self) -> str:
        """One line: row, line -> recipient: text <link> [file]."""
        line = f"{self.line} -> " if self.line else ""
        return f"row {self.row}: {line}{self.to}: {self.message()}"

    def message(self) -> str:
        """The parts on one line: text (line breaks as ⏎), <link>, [file]."""
        shown = []
        for kind, value in self.parts:
            if kind == "text":
                shown.append(" ⏎ ".join(value.splitlines()))
            elif kind == "rich_link":
                shown.append(f"<{value}>")
            else:
                shown.append(f"[{value}]")
        return " ".join(shown)

    def to_json(self) -> dict[str, Any]:
        """The preview line as plain data, for `--json`."""
        return {
            "row": self.row,
            "from": self.line,
            "to": self.to,
            "parts": [{"type": kind, "value": value} for kind, value in self.parts],
        }


def shown_row(row: RowPlan, media: Mapping[str, Media], who: Callable[[RowPlan], str]) -> Shown:
    """A planned row as it will be seen (`who` names its chat); its requests' parts in order."""
    parts = tuple(
        (part.type, _shown_part(part, media)) for request in row.requests for part in request.parts
    )
    sender = row.requests[0].sender if row.requests else ""
    return Shown(row.row, sender, who(row), parts)


def first_rows(
    rows: Iterable[RowPlan],
    count: int,
    media: Mapping[str, Media],
    who: Callable[[RowPlan], str],
) -> list[Shown]:
    """The first `count` of `rows` (those to send, in sheet order) as they will be seen."""
    found: list[Shown] = []
    for row in rows:
        if len(found) >= count:
            break
        found.append(shown_row(row, media, who))
    return found


def _shown_part(part: Part, media: Mapping[str, Media]) -> str:
    """What a part shows: a text or a link as it is, a media file by its name."""
    if part.type != "media":
        return part.value
    known = media.get(part.value)
    if known is None or known.kind is MediaKind.ATTACHMENT:
        return part.value  # an attachment id Chert already has
    if known.kind is MediaKind.FILE:
        return PurePath(known.location).name
    return known.location


def json_preview(shown: Sequence[Shown]) -> list[dict[str, Any]]:
    """Preview lines as plain data."""
    return [line.to_json() for line in shown]
