"""HMAC v1 request signing, as documented: the client signs, the sandbox checks."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_VERSION = "v1"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 (key: the secret's UTF-8 bytes) of `"<timestamp>." + body`."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """A complete `x-chert-signature` value for a body sent at `timestamp`."""
    return f"{SIGNATURE_VERSION},{timestamp},{sign(secret, timestamp, body)}"
