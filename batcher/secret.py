"""The signing secret as a person pastes it: checked before it is used, never shown.

A secret copied with a trailing newline, a stray space or an invisible character
cannot be the one the account holds, and every request would fail the same way
(or, for a header httpcore refuses, never leave the machine). It is refused at
start, saying where the stray characters are by kind and position only: no
message may carry the secret or any part of it.
"""

from __future__ import annotations

from batcher.client import AuthMode
from batcher.errors import UsageError

SECRET_VARIABLE = "CHERT_SIGNING_SECRET"
# Positions listed in one message; more are counted, not listed.
_LISTED = 3
_NAMES = {
    " ": ("a space", "spaces"),
    "\n": ("a newline", "newlines"),
    "\r": ("a carriage return", "carriage returns"),
    "\t": ("a tab", "tabs"),
}
_INVISIBLE = ("an invisible character", "invisible characters")
_FOREIGN = ("a character that is not ASCII", "characters that are not ASCII")


def check_secret(secret: str, mode: AuthMode) -> None:
    """Raise UsageError if `secret` holds what no pasted secret should; say where, not what.

    Refused in any mode: blanks at either end, and characters that cannot be seen
    (control and format characters, line breaks, blanks other than a space) inside.
    Bearer mode also refuses any character that is not ASCII: the secret travels in
    a header, which carries ASCII only. HMAC mode keys its signature with the
    secret's UTF-8 bytes, so there such a character may well belong to the secret.
    """
    if secret and not secret.strip():
        raise UsageError(
            f"{SECRET_VARIABLE} holds only blank characters.",
            hint="Set it to your tenant's signing secret. Nothing was read or sent.",
        )
    faults, stray = _faults(secret, ascii_only=mode == "bearer")
    if not faults:
        return
    hint = "Nothing was read or sent."
    if mode == "bearer" and any(char.isprintable() and not char.isascii() for char in secret):
        hint = (
            "A bearer token carries ASCII characters only; if the secret really holds "
            f"others, sign with --auth hmac. {hint}"
        )
    raise UsageError(
        f"{SECRET_VARIABLE} {_listed(faults, limit=len(faults))}: "
        f"copy it again without {'it' if stray == 1 else 'them'}.",
        hint=hint,
    )


def _faults(secret: str, *, ascii_only: bool) -> tuple[list[str], int]:
    """What is wrong with a secret, by kind and place only, and how many characters are."""
    faults = []
    start = len(secret) - len(secret.lstrip())
    end = len(secret.rstrip())
    if start:
        faults.append(f"starts with {_run(secret[:start])}")
    if end < len(secret):
        faults.append(f"ends with {_run(secret[end:])}")
    inside = range(start, end)
    unseen = [i for i in inside if not secret[i].isprintable()]
    # Grouped by kind, in order of first appearance: "a tab at position 3 and newlines at ...".
    kinds: dict[tuple[str, str], list[int]] = {}
    for i in unseen:
        kinds.setdefault(_NAMES.get(secret[i], _INVISIBLE), []).append(i)
    if ascii_only:
        foreign = [i for i in inside if not secret[i].isascii() and secret[i].isprintable()]
        if foreign:
            kinds[_FOREIGN] = foreign
    if kinds:
        faults.append("holds " + " and ".join(_at(names, at) for names, at in kinds.items()))
    return faults, start + len(secret) - end + sum(len(at) for at in kinds.values())


def _at(names: tuple[str, str], positions: list[int]) -> str:
    """'a tab at position 3', 'newlines at positions 2, 9 and 14' (1-based)."""
    if len(positions) == 1:
        return f"{names[0]} at position {positions[0] + 1}"
    return f"{names[1]} at positions {_listed([str(i + 1) for i in positions])}"


def _run(chars: str) -> str:
    """A run of blank characters at an end, in words: 'a newline', '2 spaces'."""
    if chars == "\r\n":
        return "a Windows line break (CR LF)"
    names = _NAMES.get(chars[0], _INVISIBLE)
    if len(chars) == 1:
        return names[0]
    if len(set(chars)) == 1:
        return f"{len(chars)} {names[1]}"
    return f"{len(chars)} blank characters"


def _listed(items: list[str], limit: int = _LISTED) -> str:
    """'a', 'a and b', 'a, b and c', 'a, b, c and 2 more' (past `limit` items)."""
    if len(items) > limit:
        return f"{', '.join(items[:limit])} and {len(items) - limit} more"
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} and {items[-1]}"
