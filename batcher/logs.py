"""Logging for `-v` and `-vv` that cannot carry the signing secret or an auth header.

Every record reaches one handler, through a filter that rewrites the formatted
message, and any exception or stack text, before it is written: the secret in
any of the forms a log may show it in (as is, escaped once or many times as
reprs of reprs do, as UTF-8 bytes, percent-encoded), any `Bearer` token, and
the values of `Authorization` and `x-chert-signature` headers become `[hidden]`.
Libraries' loggers lose any handler of their own and propagate to that one.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO
from urllib.parse import quote

HIDDEN = "[hidden]"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_AUTH_HEADERS = re.compile(
    # The header's name, what separates it from its value in a line, a dict or a tuple of
    # bytes (": ", "': '", "', b'"), then the value up to its closing quote or the line end.
    r"(?i)\b(authorization|x-chert-signature)(\W{0,3}[:=,]\s*(?-i:b)?['\"]?)"
    r"(?!\[hidden\])[^'\"\r\n]+"
)
# A token of 8 characters or more: "invalid bearer token" in an API message stays readable.
_BEARER = re.compile(r"(?i)\b(bearer\s+)(?!\[hidden\])[^\s'\"\\]{8,}")
_SIGNATURE = re.compile(r"\bv1,\d+,[0-9a-fA-F]{16,}")


class Redactor(logging.Filter):
    """A handler filter that hides secrets and auth header values in every record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._patterns: list[str] = []
        self._secrets: re.Pattern[str] | None = None
        for secret in secrets:
            self.hide(secret)

    def hide(self, secret: str) -> None:
        """Hide this secret, in every form a log may show it in, from now on."""
        for form in {secret, secret.strip()}:
            if form:
                self._patterns.append(_escaped_forms(form))
        # Longest first: a secret that contains another is hidden whole.
        self._secrets = re.compile("|".join(sorted(set(self._patterns), key=len, reverse=True)))

    def redact(self, text: str) -> str:
        """`text` with every secret and auth header value replaced by [hidden]."""
        if self._secrets is not None:
            text = self._secrets.sub(HIDDEN, text)
        text = _AUTH_HEADERS.sub(rf"\1\2{HIDDEN}", text)
        text = _BEARER.sub(rf"\1{HIDDEN}", text)
        return _SIGNATURE.sub(f"v1,{HIDDEN}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place: its message, exception and stack, redacted."""
        try:
            message = record.getMessage()
        except Exception:  # a library's malformed call must not break the command
            message = f"{record.msg!s} (its arguments could not be formatted)"
        record.msg, record.args = self.redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            # The text replaces the exception: no formatter may render it again unredacted.
            record.exc_text, record.exc_info = self.redact(record.exc_text), None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


@contextmanager
def logging_to(stream: TextIO, verbose: int, secrets: Iterable[str] = ()) -> Iterator[Redactor]:
    """Log to `stream` through a Redactor: warnings; -v: info; -vv: debug and each request.

    Yields the redactor, so that secrets learned later (a sandbox's) can be hidden too.
    The root logger's handlers and level are restored afterwards.
    """
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(redactor)
    root, httpx = logging.getLogger(), logging.getLogger("httpx")
    saved = root.handlers[:], root.level, httpx.level
    for old in saved[0]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    # httpx logs each request line (never headers) at INFO: only with -vv.
    httpx.setLevel(logging.INFO if verbose > 1 else logging.WARNING)
    adopt_library_loggers()
    try:
        yield redactor
    finally:
        root.removeHandler(handler)
        for old in saved[0]:
            root.addHandler(old)
        root.setLevel(saved[1])
        httpx.setLevel(saved[2])


def adopt_library_loggers() -> None:
    """Make every logger so far send its records through the root's handler, and only it.

    A library that configured its own handler (uvicorn does, when a sandbox starts)
    would write around the filter; call this again after such a library is set up.
    """
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            for handler in logger.handlers[:]:
                logger.removeHandler(handler)
            logger.propagate = True


def _escaped_forms(secret: str) -> str:
    """A pattern for the secret as is, or with any character escaped the ways logs escape."""
    return "".join(_char_forms(char) for char in secret)


def _char_forms(char: str) -> str:
    if char.isascii() and char.isalnum():
        return char
    forms = {
        char,
        repr(char)[1:-1],  # \n, \t, \x00, \u200b
        json.dumps(char)[1:-1],  # \u00e9
        repr(char.encode())[2:-1],  # \xc3\xa9
        quote(char, safe=""),  # %C3%A9
    }
    # Each backslash of an escape may itself be escaped, any number of times over (the
    # repr of a repr doubles them), and any character may carry an escaping backslash.
    alternatives = "|".join(
        re.escape(form).replace(r"\\", r"\\+") for form in sorted(forms, key=len, reverse=True)
    )
    return rf"\\*(?i:{alternatives})"
