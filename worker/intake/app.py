"""HTTP intake for Twenty2's post-call webhook: authenticate, validate, record, enqueue, answer 200 fast.

The body is only a trigger: the worker re-fetches the call from the Twenty2 API with its own
credentials, so a forged body can at most make us sync a real call again (idempotent).

Order per webhook request: flood check (429) → shared secret (401, before the body is read) → body read
under the cap (413) → signature when configured (401) → content type (415) → strict JSON (400) →
payload (422) → ledger and queue (503 when Redis cannot take it) → a replica has them, when there are
replicas (``worker.replicas``; 503 if none confirmed) → 200 queued / duplicate / ignored.
Authentication rules: ``worker.intake.auth``; flood control: ``worker.intake.flood``.

Every error answer is ``{"success": false, "error": {"code", "message", ...}}``, for any input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.intake.auth import IntakeAuth
from worker.intake.webhook import (
    MAX_BODY_BYTES,
    PATH,
    Answer,
    Receive,
    Scope,
    Send,
    WebhookIntake,
    error,
    webhook_token,
)
from worker.logs import configure_logging
from worker.runtime import Runtime, get_runtime
from worker.settings import Settings
from worker.twenty2.models import WebhookEvent

log = structlog.get_logger(__name__)

__all__ = ["MAX_BODY_BYTES", "create_app"]

#: Status of an error raised by the framework (unknown path, wrong method, ...) → our error code.
FRAMEWORK_ERROR_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


class AnyTextConvertor(PathConvertor):
    """Like ``path``, newlines too: all after the prefix is the token, so a bad one is a 401, not a 404."""

    regex = r"(?s:.*)"


register_url_convertor("anytext", AnyTextConvertor())


# --- Answers (also the OpenAPI response schemas) -----------------------------------------------------


class Problem(BaseModel):
    loc: str
    msg: str


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    problems: list[Problem] | None = None
    retry_after: int | None = None


class ErrorAnswer(BaseModel):
    success: Literal[False]
    error: ErrorDetail


class Accepted(BaseModel):
    success: Literal[True]
    status: Literal["queued", "duplicate", "ignored"]
    call_id: str


class Health(BaseModel):
    status: Literal["ok", "ready"]


def _response(answer: Answer) -> Response:
    """One of ``worker.intake.webhook``'s answers as a FastAPI response: the same status, body and headers."""
    headers = {k.decode(): v.decode("latin-1") for k, v in answer.headers}
    return Response(answer.body, status_code=answer.status, headers=headers, media_type="application/json")


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    return _response(error(status, code, message, headers, **extra))


def _doc(description: str, model: type[BaseModel] = ErrorAnswer, **more: Any) -> dict[str, Any]:
    return {"description": description, "model": model, **more}


WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _doc("queued, duplicate (already queued or synced) or ignored (an event we do not handle)", Accepted),
    400: _doc("malformed JSON (not JSON, not UTF-8, NaN/Infinity, duplicate keys) or nested too deep"),
    401: _doc("missing or wrong secret; missing, wrong or stale signature"),
    413: _doc("body too large"),
    415: _doc("not JSON"),
    422: _doc("invalid payload"),
    429: _doc(
        "too many requests from this source; retry after the given seconds",
        headers={"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}},
    ),
    503: _doc("queue unavailable; retry"),
}


# --- The app ---------------------------------------------------------------------------------------------


class IntakeApp(FastAPI):
    """FastAPI, with the webhook route's requests handed straight to ``worker.intake.webhook`` (the same
    code FastAPI's own webhook routes call; those stay for the OpenAPI description and any mount that
    bypasses this ``__call__``)."""

    webhook: WebhookIntake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hit, token = webhook_token(scope)
        if hit:
            await self.webhook(scope, receive, send, token)
            return
        await super().__call__(scope, receive, send)


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """The intake ASGI app (``uvicorn worker.intake.app:create_app --factory``)."""
    if runtime is None:  # the web process: our redacting log setup, not the library default
        configure_logging(Settings().crm_sync_log_format)
    app = IntakeApp(title="crm-sync intake", version="0.1.0", description=__doc__)
    rt = runtime

    def current() -> Runtime:
        return rt or get_runtime("intake")

    intake = app.webhook = WebhookIntake(current)
    if runtime is not None:
        intake.guards()  # a settings typo (say in CRM_SYNC_TRUSTED_PROXIES) fails here, not on each request
    _install_error_handlers(app)
    # The ops console (/ops, off without CRM_SYNC_OPS_TOKEN; refuses plain HTTP off loopback) and /metrics.
    from worker.ops import auth as ops_auth
    from worker.ops.metrics import metrics_router
    from worker.ops.web import ops_router

    web_settings = runtime.settings if runtime is not None else Settings()
    ops_auth.refuse_plain_http(web_settings)
    app.include_router(ops_router(current, web_settings))
    app.include_router(metrics_router(current))

    @app.get("/healthz", response_model=Health)
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Health, responses={503: _doc("Redis unreachable")})
    def readyz() -> Any:
        """Redis (broker and ledger) answers."""
        try:
            current().redis.ping()
        except Exception as exc:
            return _error(503, "REDIS_UNAVAILABLE", type(exc).__name__)
        return {"status": "ready"}

    async def served(request: Request, token: str | None) -> Response:
        return _response(await intake.answer(request.scope, request.receive, token))

    body_doc = _webhook_body_doc(intake.guards().auth if runtime else None)

    @app.post(PATH, response_model=None, responses=WEBHOOK_RESPONSES, openapi_extra=body_doc)
    async def webhook(request: Request) -> Response:
        """Twenty2 post-call webhook, secret as ``Authorization: Bearer``."""
        return await served(request, None)

    # ``anytext``: a token may contain anything, "/" and newlines included; it is then just a wrong token.
    @app.post(PATH + "/{token:anytext}", response_model=None, responses=WEBHOOK_RESPONSES, openapi_extra=body_doc)
    async def webhook_token_route(request: Request, token: str) -> Response:
        """Twenty2 post-call webhook, secret as the last path segment (Twenty2 sends no headers of ours)."""
        return await served(request, token)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi_with_payload(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


# --- Errors and OpenAPI --------------------------------------------------------------------------------


def _install_error_handlers(app: FastAPI) -> None:
    """Framework errors (unknown path, wrong method, ...) answered in our error shape too."""

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = FRAMEWORK_ERROR_CODES.get(exc.status_code, "HTTP_ERROR")
        return _error(exc.status_code, code, str(exc.detail)[:200], headers=exc.headers)

    async def invalid_request(_: Request, exc: Exception) -> Response:
        return _error(422, "INVALID_REQUEST", "request parameters are invalid")

    async def unexpected(_: Request, exc: Exception) -> Response:
        log.error("intake.unexpected_error", error=type(exc).__name__)
        return _error(500, "INTERNAL_ERROR", "unexpected error")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected)


def _webhook_body_doc(auth: IntakeAuth | None) -> dict[str, Any]:
    """The request body (read raw, so not a FastAPI parameter) and the optional signature headers."""
    auth = auth or IntakeAuth(shared_secrets=())
    header = {"type": "string", "maxLength": 1024}
    return {
        "requestBody": {
            "required": True,
            "description": "Twenty2's post-call webhook (only the call id is read), or a bare call_id.",
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [{"$ref": "#/components/schemas/WebhookEvent"}],
                        "anyOf": [{"required": ["call"]}, {"required": ["call_id"]}],
                    }
                }
            },
        },
        # The headers are read from the request, not declared as FastAPI parameters (their validation would
        # cost every webhook more than its Redis round trip); documented here instead.
        "parameters": [
            {
                "name": "authorization",
                "in": "header",
                "required": False,
                "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Authorization"},
                "description": "Bearer <secret>, when the secret is not the path's last segment",
            },
            {
                "name": auth.signature_header,
                "in": "header",
                "required": False,
                "schema": header,
                "description": "sha256=<hex HMAC-SHA256 of '{timestamp}.{body}'>; needed when signing is on",
            },
            {
                "name": auth.timestamp_header,
                "in": "header",
                "required": False,
                "schema": header,
                "description": "Unix seconds the signature was made at; needed when signing is on",
            },
        ],
    }


def _openapi_with_payload(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the Twenty2 payload models the raw-body webhooks refer to."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    event = WebhookEvent.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(event.pop("$defs", {}))
    components["WebhookEvent"] = event
    return schema
