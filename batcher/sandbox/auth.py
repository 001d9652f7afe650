"""Check a request's credentials: bearer token or HMAC v1 signature, as documented."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from batcher.sandbox.errors import CLOCK_SKEW, ApiError, unauthorized
from batcher.signing import SIGNATURE_VERSION, sign

BEARER_PREFIX = "bearer "


@dataclass(frozen=True)
class Credentials:
    """The auth-related headers of one request (None when absent)."""

    authorization: str | None = None
    tenant: str | None = None
    signature: str | None = None


def _same(given: str, expected: str) -> bool:
    # Header values arrive latin-1 decoded; bytes keep compare_digest
    # constant-time and free of its "non-ASCII str" TypeError.
    return hmac.compare_digest(given.encode("latin-1", "replace"), expected.encode("utf-8"))


def check_bearer(secret: str, authorization: str | None) -> None:
    """Accept ``Authorization: Bearer <secret>`` or raise 401 / 2004."""
    if authorization is None or not authorization.lower().startswith(BEARER_PREFIX):
        raise unauthorized("missing credentials: send a bearer token or an HMAC v1 signature")
    if not _same(authorization[len(BEARER_PREFIX) :].strip(), secret):
        raise unauthorized("invalid bearer token")


def parse_signature(value: str) -> tuple[int, str]:
    """Split ``v1,<unix_seconds>,<hex>`` into its timestamp and hex, or raise 2004."""
    pieces = value.strip().split(",")
    if len(pieces) != 3 or pieces[0] != SIGNATURE_VERSION:
        raise unauthorized("malformed x-chert-signature: expected v1,<unix_seconds>,<hex>")
    try:
        timestamp = int(pieces[1])
    except ValueError:
        raise unauthorized("malformed x-chert-signature timestamp") from None
    return timestamp, pieces[2]


def check_hmac(
    secret: str, tenant: str, creds: Credentials, body: bytes, now: float, max_skew: float
) -> None:
    """Accept a valid v1 signature from this tenant within the skew window."""
    if creds.signature is None:
        raise unauthorized("missing x-chert-signature")
    if creds.tenant is None or not _same(creds.tenant, tenant):
        raise unauthorized("x-chert-tenant is missing or not this tenant")
    timestamp, given = parse_signature(creds.signature)
    if not _same(given, sign(secret, timestamp, body)):
        raise unauthorized("signature does not match the body")
    # Checked after the signature, so only an authentic request learns
    # that its clock is off.
    if abs(now - timestamp) > max_skew:
        raise ApiError(
            401,
            CLOCK_SKEW,
            f"signature timestamp is more than {max_skew:g} s from the server clock",
        )


def authenticate(
    secret: str,
    tenant: str,
    creds: Credentials,
    body: bytes,
    *,
    now: float,
    max_skew: float,
    allow_hmac: bool = True,
) -> None:
    """Accept the request's credentials or raise 401; a signature selects HMAC mode."""
    if creds.signature is not None:
        if not allow_hmac:
            raise unauthorized("this URL takes a bearer token only, not a signature")
        check_hmac(secret, tenant, creds, body, now, max_skew)
    else:
        check_bearer(secret, creds.authorization)
