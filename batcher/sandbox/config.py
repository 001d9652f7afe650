"""How a sandbox behaves: credentials, limits and faults, fixed at start-up."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

DEFAULT_TENANT = "sandbox"
# The docs allow five minutes of clock skew for HMAC signatures.
DEFAULT_MAX_SKEW_SECONDS = 300.0
# Longer than any sensible client timeout, so a "slow" answer is a timeout.
DEFAULT_SLOW_SECONDS = 40.0
# The documented upload ceiling.
DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024
# How long an upload URL stays usable; the docs only say it has an expiry.
DEFAULT_UPLOAD_TTL_SECONDS = 3600.0
# The value the docs' examples show; the sandbox has no real line health.
DEFAULT_HEALTH_SCORE = 87
# A sent message turns `delivered` this long after it was sent, and (for the share
# that is read) `read` this long after that: long enough to see `sent` in a test
# that looks at once, short enough that a demo's `status` sees both.
DEFAULT_DELIVER_AFTER_SECONDS = 2.0
DEFAULT_READ_AFTER_SECONDS = 3.0
DEFAULT_READ_SHARE = 0.5


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class SandboxConfig:
    """Credentials, limits and faults of one sandbox; every limit and fault is off by default.

    ``rate`` is requests per second per tenant, ``line_gap`` seconds between two
    first touches of one sender line, ``line_daily`` first touches per line per
    rolling 24 hours, ``lines`` the tenant's sender numbers (empty: any sender is
    accepted, and none can be listed), ``inactive`` lines the tenant has but that
    are not active (listed with ``is_active: false``, and refused for sending),
    ``p503``/``pdrop``/``pslow`` fault probabilities drawn from ``Random(seed)``.
    ``deliver_after`` seconds after it is sent an outbound message is ``delivered``;
    ``read_after`` seconds later it is ``read``, for the ``read_share`` (0..1) of
    messages whose id hashes below it (so a message's fate never changes).
    """

    # Generated when not given, so a test sandbox never shares a secret; kept
    # out of repr so the secret cannot leak through a log line or a traceback.
    secret: str = field(default_factory=_new_secret, repr=False)
    tenant: str = DEFAULT_TENANT
    rate: float | None = None
    line_gap: float | None = None
    line_daily: int | None = None
    lines: tuple[str, ...] = ()
    inactive: tuple[str, ...] = ()
    seed: int | None = None
    p503: float = 0.0
    pdrop: float = 0.0
    pslow: float = 0.0
    slow_seconds: float = DEFAULT_SLOW_SECONDS
    max_skew_seconds: float = DEFAULT_MAX_SKEW_SECONDS
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    upload_ttl_seconds: float = DEFAULT_UPLOAD_TTL_SECONDS
    health_score: int = DEFAULT_HEALTH_SCORE
    deliver_after: float = DEFAULT_DELIVER_AFTER_SECONDS
    read_after: float = DEFAULT_READ_AFTER_SECONDS
    read_share: float = DEFAULT_READ_SHARE

    def __post_init__(self) -> None:
        problems = config_problems(self)
        if problems:
            raise ValueError("invalid sandbox config: " + "; ".join(problems))

    @property
    def listed(self) -> tuple[str, ...]:
        """The tenant's lines, active or not, in the order given (empty: any sender)."""
        return tuple(dict.fromkeys((*self.lines, *self.inactive)))


def config_problems(config: SandboxConfig) -> list[str]:
    """Return what is wrong with a config, empty when it is usable."""
    problems: list[str] = []
    if not config.secret:
        problems.append("secret must not be empty")
    if not config.tenant:
        problems.append("tenant must not be empty")
    if config.rate is not None and config.rate <= 0:
        problems.append("rate must be > 0")
    if config.line_gap is not None and config.line_gap < 0:
        problems.append("line_gap must be >= 0")
    if config.line_daily is not None and config.line_daily < 1:
        problems.append("line_daily must be >= 1")
    for name in ("p503", "pdrop", "pslow", "read_share"):
        value: float = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            problems.append(f"{name} must be between 0 and 1")
    for name in ("slow_seconds", "deliver_after", "read_after"):
        if getattr(config, name) < 0:
            problems.append(f"{name} must be >= 0")
    return problems
