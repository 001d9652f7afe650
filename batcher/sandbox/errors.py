"""The API's error codes and the exception that carries one to the envelope."""

from __future__ import annotations

from typing import Any

# Documented codes.
MISSING_FIELD = 1001
INVALID_FIELD = 1002
INVALID_PHONE = 1003
URL_IN_FIRST_MESSAGE = 1005
TOO_MANY_RECIPIENTS = 1006
RATE_LIMITED = 1007
BAD_CREDENTIALS = 2004
LINE_NOT_OWNED = 2006
CLOCK_SKEW = 2013
UNAVAILABLE = 3001
CAPACITY = 4002
GROUP_FIRST_MESSAGE_MEDIA = 4099
# Undocumented: the docs list no code for "no such chat / message / route".
NOT_FOUND = 1004


class ApiError(Exception):
    """An answer in the error envelope: HTTP status, API code, and whether to retry."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        # 5xx is retryable unless said otherwise, as the docs' 3xxx row says.
        self.retryable = status >= 500 if retryable is None else retryable
        self.retry_after = retry_after

    def envelope(self, trace_id: str) -> dict[str, Any]:
        """Render the documented error envelope."""
        error: dict[str, Any] = {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
        }
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return {"success": False, "error": error, "trace_id": trace_id}


def missing(message: str) -> ApiError:
    """A required field is absent (400 / 1001)."""
    return ApiError(400, MISSING_FIELD, message)


def invalid(message: str) -> ApiError:
    """A field is present but unusable (400 / 1002)."""
    return ApiError(400, INVALID_FIELD, message)


def not_found(message: str) -> ApiError:
    """No such chat, message, attachment or route (404 / 1004, our choice)."""
    return ApiError(404, NOT_FOUND, message)


def unauthorized(message: str) -> ApiError:
    """Missing or wrong credentials, signature or tenant (401 / 2004)."""
    return ApiError(401, BAD_CREDENTIALS, message)
