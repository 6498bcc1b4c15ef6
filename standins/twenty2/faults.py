"""Injected faults of the Twenty2 stand-in (``Fault``) and the two documented error body formats (A: ``code``
/ ``message``; B: ``validationErrors``)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

Shape = Literal["A", "B", "text"]


Scope = Literal["api", "storage", "all"]


# Format A codes by status (documented ones; others get a generic code).
_CODES_A = {
    400: "INVALID_NUMBER",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "CALL_NOT_FOUND",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
}


_MESSAGES = {
    400: "Bad Request",
    401: "Invalid or missing API key",
    403: "API key does not have access to this resource",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Validation errors",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
}


#: Which body an injected fault answers with, by status, unless the fault names a shape: validation-ish
#: errors come from the API layer (format B), gateway errors from a proxy (HTML, not JSON).
FAULT_SHAPES: dict[int, Literal["A", "B", "text"]] = {
    400: "B",
    422: "B",
    502: "text",
    503: "text",
    504: "text",
}


def error_a(status: int, code: str | None = None, message: str | None = None) -> dict[str, Any]:
    """Format A (``/errors-rate-limits``)."""
    return {
        "success": False,
        "error": {
            "code": code or _CODES_A.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST"),
            "message": message or _MESSAGES.get(status, "Error"),
            "status": status,
        },
    }


def error_b(
    status: int, message: str | None = None, validation_errors: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """Format B (``/api-reference/error-rate-limits``); ``validationErrors`` only when given (422)."""
    body: dict[str, Any] = {
        "success": False,
        "statusCode": status,
        "message": message or _MESSAGES.get(status, "Error"),
    }
    if validation_errors is not None:
        body["validationErrors"] = validation_errors
    return body


def error_response(
    status: int,
    shape: Shape,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    validation_errors: dict[str, list[str]] | None = None,
    message: str | None = None,
) -> Response:
    if shape == "text":
        title = f"{status} {_MESSAGES.get(status, 'Error')}"
        html = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n"
        return Response(html, status_code=status, media_type="text/html", headers=headers)
    if shape == "B":
        if status == 422 and validation_errors is None:
            validation_errors = {"call_id": ["Invalid"]}
        return JSONResponse(error_b(status, message, validation_errors), status_code=status, headers=headers)
    return JSONResponse(error_a(status, code, message), status_code=status, headers=headers)


Garble = Literal["truncated", "html"]


class Fault(BaseModel):
    """Answer matching requests with ``status`` (or hang, or garble): the next ``count`` ones, or each with
    probability ``probability`` (the state's seeded RNG). A hang sleeps ``hang_seconds`` (default: the
    state's), then answers 504. A garble answers the request as usual, then spoils the ``200`` on its way
    out, as a proxy in between does: ``truncated`` sends the first half of the body (cut off, with a
    Content-Length that matches what is sent, so only the body's syntax shows it), ``html`` a proxy's
    maintenance page (``text/html``) in its place."""

    model_config = ConfigDict(extra="forbid")

    status: int | None = Field(None, ge=400, le=599)
    hang: bool = False
    garble: Garble | None = None
    hang_seconds: float | None = Field(None, ge=0)
    count: int | None = Field(None, ge=1)
    probability: float | None = Field(None, ge=0, le=1)
    shape: Shape | None = None
    code: str | None = None
    retry_after: str | None = None
    scope: Scope = "api"

    @model_validator(mode="after")
    def _one_of_each(self) -> Fault:
        if [self.status is not None, self.hang, self.garble is not None].count(True) != 1:
            raise ValueError("give one of status, hang=true or garble")
        if (self.count is None) == (self.probability is None):
            raise ValueError("give either count or probability")
        return self


_MAINTENANCE_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Service temporarily unavailable</title></head>"
    "<body><h1>We'll be back shortly</h1><p>The service is down for maintenance.</p></body></html>\n"
)


async def garbled(response: Response, how: Garble) -> Response:
    """``response`` spoilt as a proxy spoils a ``200``: cut in half, or replaced by a maintenance page. Any
    other answer (a 401, a 404) passes as it is."""
    if not 200 <= response.status_code < 300:
        return response
    body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
    if how == "html":
        return Response(_MAINTENANCE_PAGE, status_code=200, media_type="text/html")
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(body[: len(body) // 2], status_code=response.status_code, headers=headers)
