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

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from worker.intake.auth import MESSAGES, UNAUTHORIZED, IntakeAuth
from worker.intake.flood import FloodGuard, parse_networks
from worker.intake.queue import IntakeQueue
from worker.logs import configure_logging, register_secrets
from worker.runtime import Runtime, get_runtime
from worker.settings import Settings
from worker.twenty2.models import WebhookEvent

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
HANDLED_EVENTS = frozenset({"call.completed", "call.failed"})
#: Media types read as JSON (none sent = JSON: some senders omit it).
JSON_MEDIA_TYPES = frozenset({"application/json", ""})
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


def _error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"success": False, "error": {"code": code, "message": message, **extra}}
    return JSONResponse(body, status_code=status, headers=headers)


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


# --- Per-app security state ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Guards:
    auth: IntakeAuth
    flood: FloodGuard

    @classmethod
    def from_settings(cls, settings: Settings) -> Guards:
        signing = settings.crm_sync_intake_signing_secret.get_secret_value()
        register_secrets(part.strip() for part in signing.split(","))
        flood = FloodGuard(
            settings,
            per_minute=settings.crm_sync_intake_rate_limit_per_minute,
            trusted_proxies=parse_networks(settings.crm_sync_trusted_proxies),
        )
        return cls(auth=IntakeAuth.from_settings(settings), flood=flood)


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """The intake ASGI app (``uvicorn worker.intake.app:create_app --factory``)."""
    if runtime is None:  # the web process: our redacting log setup, not the library default
        configure_logging(Settings().crm_sync_log_format)
    app = FastAPI(title="crm-sync intake", version="0.1.0", description=__doc__)
    rt = runtime
    guards: list[Guards] = []
    queues: list[IntakeQueue] = []

    def current() -> Runtime:
        return rt or get_runtime("intake")

    def intake_queue() -> IntakeQueue:
        if not queues:
            queues.append(IntakeQueue(current()))
        return queues[0]

    def security() -> Guards:
        # Built on first use: the process-wide runtime may not exist yet when the app is created.
        if not guards:
            guards.append(Guards.from_settings(current().settings))
        return guards[0]

    if runtime is not None:
        security()  # a settings typo (say in CRM_SYNC_TRUSTED_PROXIES) fails here, not on each request
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

    async def receive(request: Request, body: bytes) -> JSONResponse:
        runtime = current()
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() not in JSON_MEDIA_TYPES:
            return _error(415, "UNSUPPORTED_MEDIA_TYPE", "send application/json")
        payload, problem = _parse_json(body)
        if problem is not None:
            return problem
        if not isinstance(payload, dict):
            return _error(422, "INVALID_PAYLOAD", "body must be a JSON object")
        try:
            event = WebhookEvent.model_validate(payload)
        except ValidationError as exc:
            problems = [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()[:10]]
            return _error(422, "INVALID_PAYLOAD", "payload does not match the Twenty2 webhook", problems=problems)
        call_id = event.the_call_id
        if event.event is not None and event.event not in HANDLED_EVENTS:
            log.info("intake.ignored", call_id=call_id, webhook_event=event.event)
            return JSONResponse({"success": True, "status": "ignored", "call_id": call_id})
        phone, lead_id = event.lead_hint(runtime.settings.crm_sync_lead_id_param)
        try:
            # One round trip: ledger record, Lead hint and task message, all or nothing (worker.intake.queue).
            _, enqueued = await intake_queue().accept(
                call_id,
                detail={"webhook_event": event.event, "event_id": event.event_id},
                phone=phone,
                lead_id=lead_id,
            )
            replicas = runtime.replicas
            # WAIT blocks: in a thread, and only when there are replicas to wait for (worker.replicas).
            if replicas.must_wait() and not await run_in_threadpool(replicas.confirm):
                return _error(503, "NOT_REPLICATED", "no Redis replica confirmed the call in time; retry later")
        except Exception as exc:
            log.error("intake.enqueue_failed", call_id=call_id, error=type(exc).__name__)
            return _error(503, "QUEUE_UNAVAILABLE", "could not queue the call; retry later")
        status = "queued" if enqueued else "duplicate"
        log.info(
            "intake.accepted",
            call_id=call_id,
            status=status,
            webhook_event=event.event,
            event_id=event.event_id,
        )
        return JSONResponse({"success": True, "status": status, "call_id": call_id})

    body_doc = _webhook_body_doc(security().auth if runtime else None)

    @app.post("/webhooks/twenty2", response_model=None, responses=WEBHOOK_RESPONSES, openapi_extra=body_doc)
    async def webhook(request: Request) -> JSONResponse:
        """Twenty2 post-call webhook, secret as ``Authorization: Bearer``."""
        return await _run(request, None, request.headers.get("authorization"))

    # ``anytext``: a token may contain anything, "/" and newlines included; it is then just a wrong token.
    @app.post(
        "/webhooks/twenty2/{token:anytext}",
        response_model=None,
        responses=WEBHOOK_RESPONSES,
        openapi_extra=body_doc,
    )
    async def webhook_token(request: Request, token: str) -> JSONResponse:
        """Twenty2 post-call webhook, secret as the last path segment (Twenty2 sends no headers of ours)."""
        return await _run(request, token, request.headers.get("authorization"))

    async def _run(request: Request, token: str | None, authorization: str | None) -> JSONResponse:
        checks = security()
        peer = request.client.host if request.client else None
        if checks.flood.enabled:
            source = checks.flood.source(peer, request.headers.getlist("x-forwarded-for"))
            # Redis call: off the event loop, so a slow Redis never stalls other senders.
            verdict = await run_in_threadpool(checks.flood.check, source)
            if not verdict.allowed:
                return _error(
                    429,
                    "RATE_LIMITED",
                    "too many requests from this source",
                    headers={"Retry-After": str(verdict.retry_after)},
                    retry_after=verdict.retry_after,
                )
        if checks.auth.needs_shared_secret and checks.auth.check_shared_secret(token, authorization):
            log.warning("intake.unauthenticated", client=peer, reason=UNAUTHORIZED)
            return _error(401, UNAUTHORIZED, MESSAGES[UNAUTHORIZED])
        body = await _read_capped(request)
        if body is None:
            return _error(413, "PAYLOAD_TOO_LARGE", f"body over {MAX_BODY_BYTES} bytes")
        if checks.auth.needs_signature:
            failure = checks.auth.check_signature(request.headers, body)
            if failure:
                log.warning("intake.unauthenticated", client=peer, reason=failure)
                return _error(401, failure, MESSAGES[failure])
        return await receive(request, body)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi_with_payload(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


# --- Request reading and parsing -------------------------------------------------------------------------


async def _read_capped(request: Request) -> bytes | None:
    """The body, or None once it passes the cap (read no further)."""
    declared = request.headers.get("content-length", "")
    # isascii: "²".isdigit() is True; the length check keeps int() far from its digit limit.
    if declared.isascii() and declared.isdigit() and (len(declared) > 12 or int(declared) > MAX_BODY_BYTES):
        return None
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        return b""  # nobody is left to read the answer; an empty body is simply rejected
    return b"".join(chunks)


class _Refused(ValueError):
    """Valid to Python's parser, refused by us (the message is ours, never input)."""


def _reject_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("number out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which duplicate wins; refusing them leaves nothing to disagree about.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Refused("duplicate key")
    return result


#: What the parser raised → (status, code, message); first match wins (UnicodeDecodeError is a ValueError).
JSON_FAILURES: tuple[tuple[type[Exception], int, str, str], ...] = (
    (UnicodeDecodeError, 400, "MALFORMED_JSON", "body is not UTF-8 text"),
    (RecursionError, 400, "TOO_DEEP", f"JSON nested deeper than {MAX_JSON_DEPTH}"),
    (ValueError, 400, "MALFORMED_JSON", "body is not JSON"),
)


def _parse_json(body: bytes) -> tuple[Any, JSONResponse | None]:
    """Strict JSON (no NaN/Infinity, no duplicate keys, finite numbers), or the 400 answer."""
    try:
        payload = json.loads(
            body, parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
        )
    except _Refused as exc:
        return None, _error(400, "MALFORMED_JSON", f"body is not JSON: {exc}")
    except (ValueError, RecursionError) as exc:
        status, code, message = next((s, c, m) for kind, s, c, m in JSON_FAILURES if isinstance(exc, kind))
        return None, _error(status, code, message)
    if _depth(payload) > MAX_JSON_DEPTH:
        return None, _error(400, "TOO_DEEP", f"JSON nested deeper than {MAX_JSON_DEPTH}")
    return payload, None


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


# --- Errors and OpenAPI --------------------------------------------------------------------------------


def _install_error_handlers(app: FastAPI) -> None:
    """Framework errors (unknown path, wrong method, ...) answered in our error shape too."""

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = FRAMEWORK_ERROR_CODES.get(exc.status_code, "HTTP_ERROR")
        return _error(exc.status_code, code, str(exc.detail)[:200], headers=exc.headers)

    async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
        return _error(422, "INVALID_REQUEST", "request parameters are invalid")

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
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
