"""The webhook route as a plain ASGI app: read, check, record, answer, with nothing else per request.

``POST /webhooks/twenty2`` (secret as ``Authorization: Bearer``) and ``POST /webhooks/twenty2/<secret>``
(Twenty2 sends no headers of ours) are served here, ahead of FastAPI (``worker.intake.app`` hands them
over): its routing, middleware stack, request object and response classes cost each request about 0.06 ms
of CPU (a bare FastAPI endpoint 0.09 ms, a plain ASGI one 0.02 ms: ``bench/RESULTS.md``), a quarter of what
the intake spends on a webhook. Every other path and method, and the OpenAPI description of these two,
stay with FastAPI.

Order per request: flood check (429) → shared secret (401, before the body is read) → body read under
the cap (413) → signature when configured (401) → content type (415) → strict JSON (400) → payload (422)
→ ledger and queue (503 when Redis cannot take it) → a replica has them, when there are replicas
(``worker.replicas``; 503 if none confirmed) → 200 queued / duplicate / ignored. Any other failure is a
500 in the same shape. Every error answer is ``{"success": false, "error": {"code", "message", ...}}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import structlog
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from worker.intake.auth import MESSAGES, UNAUTHORIZED, IntakeAuth
from worker.intake.flood import FloodGuard, parse_networks
from worker.intake.queue import IntakeQueue, NotReplicated
from worker.logs import register_secrets
from worker.runtime import Runtime
from worker.settings import Settings
from worker.twenty2.models import WebhookEvent

log = structlog.get_logger(__name__)

PATH = "/webhooks/twenty2"
MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
HANDLED_EVENTS = frozenset({"call.completed", "call.failed"})
#: Media types read as JSON (none sent = JSON: some senders omit it).
JSON_MEDIA_TYPES = frozenset({"application/json", ""})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def webhook_token(scope: Scope) -> tuple[bool, str | None]:
    """(whether the request is for the webhook route, the path's secret or None). A token may contain
    anything, "/" and newlines included; a wrong one is a 401, not a 404."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return False, None
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if path == PATH:
        return True, None
    if path.startswith(PATH + "/"):
        return True, path[len(PATH) + 1 :]
    return False, None


# --- Answers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()

    @cached_property  # the constant answers are sent again and again
    def all_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """What the answer sends: its JSON content type and length, then its own headers."""
        return ((b"content-type", b"application/json"), (b"content-length", b"%d" % len(self.body)), *self.headers)

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.all_headers})
        await send({"type": "http.response.body", "body": self.body})


def _render(content: Any) -> bytes:
    # As Starlette's JSONResponse renders (the answers did not change when the route left FastAPI).
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Answer:
    body = _render({"success": False, "error": {"code": code, "message": message, **extra}})
    return Answer(status, body, tuple((k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()))


def accepted(status: str, call_id: str) -> Answer:
    return Answer(200, _render({"success": True, "status": status, "call_id": call_id}))


UNSUPPORTED = error(415, "UNSUPPORTED_MEDIA_TYPE", "send application/json")
NOT_AN_OBJECT = error(422, "INVALID_PAYLOAD", "body must be a JSON object")
TOO_LARGE = error(413, "PAYLOAD_TOO_LARGE", f"body over {MAX_BODY_BYTES} bytes")
NOT_REPLICATED = error(503, "NOT_REPLICATED", "no Redis replica confirmed the call in time; retry later")
QUEUE_UNAVAILABLE = error(503, "QUEUE_UNAVAILABLE", "could not queue the call; retry later")
SHARED_SECRET_FAILED = error(401, UNAUTHORIZED, MESSAGES[UNAUTHORIZED])
INTERNAL_ERROR = error(500, "INTERNAL_ERROR", "unexpected error")


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


# --- The route ---------------------------------------------------------------------------------------------


class WebhookIntake:
    """Serves one webhook request (``__call__(scope, receive, send, token)``) for the runtime ``current()``
    returns; the guards and the queue are built on first use (the web process's runtime may not exist yet
    when the app is created)."""

    def __init__(self, current: Callable[[], Runtime]) -> None:
        self._current = current
        self._guards: Guards | None = None
        self._queue: IntakeQueue | None = None

    def guards(self) -> Guards:
        if self._guards is None:
            self._guards = Guards.from_settings(self._current().settings)
        return self._guards

    def queue(self) -> IntakeQueue:
        if self._queue is None:
            self._queue = IntakeQueue(self._current())
        return self._queue

    async def __call__(self, scope: Scope, receive: Receive, send: Send, token: str | None) -> None:
        try:
            answer = await self.answer(scope, receive, token)
        except Exception as exc:
            log.error("intake.unexpected_error", error=type(exc).__name__)
            answer = INTERNAL_ERROR
        await answer.send(send)

    async def answer(self, scope: Scope, receive: Receive, token: str | None) -> Answer:
        checks = self.guards()
        headers = Headers(scope=scope)
        client = scope.get("client")
        peer = client[0] if client else None
        if checks.flood.enabled:
            source = checks.flood.source(peer, headers.getlist("x-forwarded-for"))
            # Redis call: off the event loop, so a slow Redis never stalls other senders.
            verdict = await run_in_threadpool(checks.flood.check, source)
            if not verdict.allowed:
                return error(
                    429,
                    "RATE_LIMITED",
                    "too many requests from this source",
                    headers={"Retry-After": str(verdict.retry_after)},
                    retry_after=verdict.retry_after,
                )
        if checks.auth.needs_shared_secret and checks.auth.check_shared_secret(token, headers.get("authorization")):
            log.warning("intake.unauthenticated", client=peer, reason=UNAUTHORIZED)
            return SHARED_SECRET_FAILED
        body = await read_capped(headers, receive)
        if body is None:
            return TOO_LARGE
        if checks.auth.needs_signature:
            failure = checks.auth.check_signature(headers, body)
            if failure:
                log.warning("intake.unauthenticated", client=peer, reason=failure)
                return error(401, failure, MESSAGES[failure])
        if headers.get("content-type", "").split(";")[0].strip().lower() not in JSON_MEDIA_TYPES:
            return UNSUPPORTED
        payload, problem = parse_json(body)
        if problem is not None:
            return problem
        if not isinstance(payload, dict):
            return NOT_AN_OBJECT
        return await self.accept(payload)

    async def accept(self, payload: dict[str, Any]) -> Answer:
        """A parsed JSON object: validated, recorded and queued (or found a duplicate, or ignored)."""
        try:
            event = WebhookEvent.model_validate(payload)
        except ValidationError as exc:
            problems = [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()[:10]]
            return error(422, "INVALID_PAYLOAD", "payload does not match the Twenty2 webhook", problems=problems)
        call_id = event.the_call_id
        if event.event is not None and event.event not in HANDLED_EVENTS:
            log.info("intake.ignored", call_id=call_id, webhook_event=event.event)
            return accepted("ignored", call_id)
        phone, lead_id = event.lead_hint(self._current().settings.crm_sync_lead_id_param)
        try:
            # One script call with the webhooks arriving meanwhile (worker.intake.queue): ledger record, Lead
            # hint and task message, all or nothing; then, when there are replicas, one WAIT for all of them.
            _, enqueued = await self.queue().accept(
                call_id,
                detail={"webhook_event": event.event, "event_id": event.event_id},
                phone=phone,
                lead_id=lead_id,
            )
        except NotReplicated:
            return NOT_REPLICATED
        except Exception as exc:
            log.error("intake.enqueue_failed", call_id=call_id, error=type(exc).__name__)
            return QUEUE_UNAVAILABLE
        status = "queued" if enqueued else "duplicate"
        log.info("intake.accepted", call_id=call_id, status=status, webhook_event=event.event, event_id=event.event_id)
        return accepted(status, call_id)


# --- Request reading and parsing -------------------------------------------------------------------------


async def read_capped(headers: Headers, receive: Receive) -> bytes | None:
    """The body, or None once it passes the cap (read no further). A client gone mid-body: b"" (nobody is
    left to read the answer; an empty body is simply rejected)."""
    declared = headers.get("content-length", "")
    # isascii: "²".isdigit() is True; the length check keeps int() far from its digit limit.
    if declared.isascii() and declared.isdigit() and (len(declared) > 12 or int(declared) > MAX_BODY_BYTES):
        return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
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


def parse_json(body: bytes) -> tuple[Any, Answer | None]:
    """Strict JSON (no NaN/Infinity, no duplicate keys, finite numbers), or the 400 answer."""
    try:
        payload = json.loads(
            body, parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
        )
    except _Refused as exc:
        return None, error(400, "MALFORMED_JSON", f"body is not JSON: {exc}")
    except (ValueError, RecursionError) as exc:
        status, code, message = next((s, c, m) for kind, s, c, m in JSON_FAILURES if isinstance(exc, kind))
        return None, error(status, code, message)
    # No walk when the body has too few brackets to nest that deep (a webhook has about eight).
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH and _depth(payload) > MAX_JSON_DEPTH:
        return None, error(400, "TOO_DEEP", f"JSON nested deeper than {MAX_JSON_DEPTH}")
    return payload, None


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level
