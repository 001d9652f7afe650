"""Idempotency keys: every field of a request's content is in the key, and nothing else."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from batcher.model import Part
from batcher.planning import KEY_PREFIX, derive_key
from batcher.validation import Message

MESSAGE = Message(
    row=2,
    sender="+15555550100",
    recipients=("+14155551234", "+14155552671"),
    subject="Crew",
    parts=(Part("text", "hi"), Part("rich_link", "https://x.io")),
    chat_id="",
    keys=(),
)
BASE = {"campaign": "", "message": MESSAGE, "parts": MESSAGE.parts, "step": 1, "occurrence": 0}


def test_key_format_and_pinned_value() -> None:
    """cb1- and 32 hex digits of sha256 over the canonical JSON array; pinned, since a key
    that changes between runs would send a row again."""
    key = derive_key(**BASE)  # type: ignore[arg-type]
    assert re.fullmatch(KEY_PREFIX + "[0-9a-f]{32}", key)
    material = (
        '["","+15555550100",["+14155551234","+14155552671"],"Crew","",'
        '[["text","hi"],["rich_link","https://x.io"]],1,0]'
    )
    assert key == KEY_PREFIX + hashlib.sha256(material.encode()).hexdigest()[:32]
    assert key == "cb1-cf8ee9a832d7b1c8a4d9109f1728509b"


@pytest.mark.parametrize(
    "change",
    [
        {"campaign": "spring"},
        {"message": MESSAGE._replace(sender="+15555550101")},
        {"message": MESSAGE._replace(recipients=("+14155551234",))},
        {"message": MESSAGE._replace(subject="Crew 2")},
        {"message": MESSAGE._replace(chat_id="chat-1")},
        {"parts": (Part("text", "hi"),)},
        {"parts": (Part("text", "https://x.io"), Part("rich_link", "hi"))},
        {"parts": (Part("text", "hi"), Part("media", "https://x.io"))},
        {"step": 2},
        {"occurrence": 1},
    ],
)
def test_every_field_is_in_the_key(change: dict[str, object]) -> None:
    """Campaign, sender, recipients, subject, chat id, parts, step and occurrence all count."""
    assert derive_key(**{**BASE, **change}) != derive_key(**BASE)  # type: ignore[arg-type]


def test_row_number_and_own_keys_are_not_in_the_key() -> None:
    """Where a row sits, and what else it carries, does not change its content's key."""
    moved = MESSAGE._replace(row=99, keys=("k",), part_columns=("Text", "Link"))
    assert derive_key(**{**BASE, "message": moved}) == derive_key(**BASE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "",
        'say "hi"',
        "back\\slash and /slash",
        "tab\tnew line\nCR\r",
        "\x00\x01\x1f\x7f\x9f",
        "Grüße, 你好 👋 \u200b\u2028\u2029",
        '[1,2]{"a":1}',
    ],
)
def test_the_key_is_the_canonical_json_of_its_content(text: str) -> None:
    """derive_key writes its JSON array by hand: it is the one the JSON encoder writes."""
    message = MESSAGE._replace(sender=text, recipients=(text, "+1" + text), subject=text)
    parts = (Part("text", text), Part("media", text))
    material = ["c" + text, text, [text, "+1" + text], text, "", [["text", text], ["media", text]]]
    canonical = json.dumps([*material, 2, 7], separators=(",", ":"), ensure_ascii=False)
    key = derive_key(campaign="c" + text, message=message, parts=parts, step=2, occurrence=7)
    assert key == KEY_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()[:32]
