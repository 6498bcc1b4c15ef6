"""Reading Twenty2's answers into typed errors: both documented error bodies, bodies that are not JSON,
``Retry-After``, transport failures. Pure functions over ``requests`` objects, shared by the client's calls.

Twenty2 documents two error bodies (``shared/reference/twenty2-api.md`` §4); both are read. Messages kept
are cut and masked by ``phones.mask_numbers``: a full phone number never reaches an exception or a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from pydantic import ValidationError

from worker.errors import (
    CallNotFound,
    Stage,
    Twenty2BadRequest,
    Twenty2BadResponse,
    Twenty2Error,
    Twenty2Forbidden,
    Twenty2RateLimited,
    Twenty2Unauthorized,
    Twenty2Unavailable,
)
from worker.phones import mask_numbers

#: HTTP status → error class. Checked first: the status line is what both doc pages agree on.
ERROR_BY_STATUS: Mapping[int, type[Twenty2Error]] = {
    400: Twenty2BadRequest,
    401: Twenty2Unauthorized,
    403: Twenty2Forbidden,
    404: CallNotFound,
    422: Twenty2BadRequest,
    429: Twenty2RateLimited,
}

#: Documented error codes (format A) → error class, for statuses the table above does not name.
ERROR_BY_CODE: Mapping[str, type[Twenty2Error]] = {
    "UNAUTHORIZED": Twenty2Unauthorized,
    "FORBIDDEN": Twenty2Forbidden,
    "CALL_NOT_FOUND": CallNotFound,
    "INVALID_ASSISTANT": Twenty2BadRequest,
    "INVALID_NUMBER": Twenty2BadRequest,
    "RATE_LIMIT_EXCEEDED": Twenty2RateLimited,
}

#: Transport failures → (class, code, message); first matching row wins (SSLError is a ConnectionError,
#: ConnectTimeout both a ConnectionError and a Timeout).
TRANSPORT_ERRORS: tuple[tuple[type[requests.RequestException], type[Twenty2Error], str, str], ...] = (
    (
        requests.exceptions.SSLError,
        Twenty2Unavailable,
        "TLS_ERROR",
        "TLS handshake or certificate check failed",
    ),
    (requests.exceptions.ConnectTimeout, Twenty2Unavailable, "TIMEOUT", "timed out connecting"),
    (requests.exceptions.ReadTimeout, Twenty2Unavailable, "TIMEOUT", "timed out waiting for the response"),
    (requests.exceptions.ConnectionError, Twenty2Unavailable, "CONNECTION_ERROR", "connection failed"),
    (requests.exceptions.ChunkedEncodingError, Twenty2Unavailable, "CONNECTION_ERROR", "connection broken"),
    (requests.exceptions.InvalidURL, Twenty2BadRequest, "INVALID_URL", "invalid URL"),
    (requests.exceptions.MissingSchema, Twenty2BadRequest, "INVALID_URL", "URL without scheme"),
    (requests.exceptions.InvalidSchema, Twenty2BadRequest, "INVALID_URL", "URL with an unsupported scheme"),
    (requests.RequestException, Twenty2Unavailable, "HTTP_ERROR", "request failed"),
)

_MESSAGE_MAX = 300


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; None when absent/garbled."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _short(text: str) -> str:
    return mask_numbers(" ".join(text.split()))[:_MESSAGE_MAX]


@dataclass(frozen=True)
class _ErrorBody:
    """What an error response says, whichever documented shape (or none) it came in."""

    code: str | None
    message: str
    validation_errors: dict[str, Any] | None


def _read_error_body(response: requests.Response) -> _ErrorBody:
    try:
        body = response.json()
    except ValueError:
        text = response.text if response.content else ""
        return _ErrorBody(None, _short(text) or response.reason or "", None)
    if not isinstance(body, dict):
        return _ErrorBody(None, _short(str(body)), None)
    return error_from_json(body)


def error_from_json(body: dict[str, Any]) -> _ErrorBody:
    error = body.get("error")
    if isinstance(error, dict):  # format A: {"success": false, "error": {"code", "message", "status"}}
        code = error.get("code")
        return _ErrorBody(str(code) if code else None, _short(str(error.get("message") or "")), None)
    # Format B: {"success": false, "statusCode", "message", "validationErrors"?}; also a bare {"message"}.
    raw = body.get("validationErrors")
    kept = (
        {str(k): [_short(str(v)) for v in (r if isinstance(r, list) else [r])] for k, r in raw.items()}
        if isinstance(raw, dict)
        else None
    )
    code = body.get("code") if isinstance(body.get("code"), str) else None
    message = body.get("message") or (error if isinstance(error, str) else "")
    return _ErrorBody(code, _short(str(message)), kept)


def _error_class(status: int, code: str | None) -> type[Twenty2Error]:
    if status >= 500:
        return Twenty2Unavailable
    if status in ERROR_BY_STATUS:
        return ERROR_BY_STATUS[status]
    if code and code in ERROR_BY_CODE:
        return ERROR_BY_CODE[code]
    if 400 <= status < 500:
        return Twenty2BadRequest
    return Twenty2BadResponse  # 1xx/3xx: not an answer this client can use


def error_from_response(response: requests.Response, *, rate_limit_hint: float | None = None) -> Twenty2Error:
    """Sort a non-2xx response into its ``Twenty2Error`` class (status table, then code table)."""
    status = response.status_code
    body = _read_error_body(response)
    cls = _error_class(status, body.code)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    details: dict[str, Any] = {}
    if body.validation_errors is not None:
        details["validationErrors"] = body.validation_errors
    if retry_after is not None:
        details["retry_after_header"] = retry_after
    elif cls is Twenty2RateLimited:
        retry_after = rate_limit_hint  # no header documented: one slot of the rate limit
    message = f"Twenty2 answered HTTP {status}" + (f": {body.message}" if body.message else "")
    return cls(
        message,
        stage=Stage.FETCH,
        code=body.code or f"HTTP_{status}",
        http_status=status,
        retry_after=retry_after,
        details=details,
    )


def transport_error(exc: requests.RequestException, host: str) -> Twenty2Error:
    # The exception text can carry the full URL (signed storage links hold tokens): only its type is kept.
    for exc_type, cls, code, what in TRANSPORT_ERRORS:
        if isinstance(exc, exc_type):
            return cls(f"{what} ({host}, {type(exc).__name__})", stage=Stage.FETCH, code=code, details={"host": host})
    raise AssertionError("unreachable: RequestException is the last row")  # pragma: no cover


def validation_summary(exc: ValidationError, limit: int = 5) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in errors[:limit]]
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return mask_numbers("; ".join(parts)) + more


def is_html(head: bytes, content_type: str | None) -> bool:
    """Whether a body is a web page: declared ``text/html``, or starting like one whatever it declares."""
    start = head.lstrip()[:15].lower()
    return (content_type or "").split(";")[0].strip().lower() == "text/html" or start.startswith(
        (b"<!doctype html", b"<html", b"<head", b"<body")
    )


def garbled_body(data: bytes, response: requests.Response) -> str:
    """What a garbled body looks like, for the ledger and logs: type, size and why (never its text, which
    may hold a number)."""
    content_type = (response.headers.get("Content-Type") or "no content type").split(";")[0].strip()
    if is_html(data[:512], content_type):
        kind = "an HTML page"
    elif data.lstrip()[:1] in (b"{", b"["):
        kind = "cut off"
    elif not data.strip():
        kind = "empty"
    else:
        kind = "garbled"
    return f"{content_type}, {len(data)} bytes: {kind}"
