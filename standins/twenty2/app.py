"""A local stand-in for the Twenty2 API, faithful to its documentation (``twenty2-api.md``).

Serves, under ``/api`` (so ``TWENTY2_BASE_URL`` = ``https://127.0.0.1:PORT/api``):

- ``GET /call/detail?call_id=``, ``GET /call/logs``, ``POST /agent/trigger-outbound-call``, each needing
  ``Authorization: Basic base64(key:secret)`` and ``x-workspace-id`` (401 ``UNAUTHORIZED`` / 403
  ``FORBIDDEN``, error format A); missing parameters answer 422 in format B (``validationErrors``).
- 60 requests/minute per workspace (sliding window, configurable, liftable) → 429 ``RATE_LIMIT_EXCEEDED``
  (format A); no ``Retry-After`` unless switched on, as the docs document none.
- ``GET /storage/transcripts/{id}.txt`` and ``/storage/recordings/{id}.mp3``: the links the detail hands
  out, unauthenticated like signed URLs, 403 once past their ``expires_at``. Not rate limited (in reality
  they live on another host).

Seeded with the docs' example call ``call_9c4d7e12ab`` (exactly the documented detail, links rewritten to
this server) and the webhook example's failed call ``6a100328ba090039ac8610a2``.

Modules: ``data`` (calls), ``faults``, ``state`` (``Twenty2State``), ``app`` (this).

Control from Python (``Twenty2State`` methods) or, for other processes, over the unauthenticated admin
endpoints under ``/_sandbox/``: faults (latency, the next N or a fraction p of requests answered with any
status, a hang, or a ``200`` spoilt on its way out as a proxy spoils it: cut off, or a maintenance page in
its place; ``Fault.garble``), stats, reset, adding calls, pending calls, webhook payloads. All state is guarded by
one lock: handlers run in the server thread, tests and scripts drive it from others.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from standins.twenty2.data import SandboxCall
from standins.twenty2.faults import FAULT_SHAPES, Fault, error_response, garbled
from standins.twenty2.logs import BadLogsQuery, PaginationMode
from standins.twenty2.state import Twenty2State


class _TriggerBody(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    agent_id: str
    callee_phone: str
    caller_phone: str
    input_parameters: dict[str, Any] | None = None


_ZOD_STYLE = {
    "missing": "Required",
    "string_type": "Expected string",
    "dict_type": "Expected object",
    "model_type": "Expected object",
}


def _validation_errors(exc: ValidationError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "body"
        errors.setdefault(field, []).append(_ZOD_STYLE.get(err["type"], err["msg"]))
    return errors


class _AddCalls(BaseModel):
    model_config = ConfigDict(extra="forbid")

    generate: int | None = Field(None, ge=1, le=100_000)
    seed: int | None = None
    lead_ids: list[str] | None = None
    phones: list[str] | None = None
    lead_id_param: str = "salesforce_id"
    calls: list[SandboxCall] = Field(default_factory=list)


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: float | None = Field(None, ge=0)
    rate_limit_per_minute: int | None = Field(None, ge=1)
    lift_rate_limit: bool = False
    rate_limit_retry_after: bool | None = None
    hang_seconds: float | None = Field(None, ge=0)
    logs_pagination: PaginationMode | None = None
    logs_page_size: int | None = Field(None, ge=1, le=100)


class _Finish(BaseModel):
    model_config = ConfigDict(extra="allow")


_BASIC_RE = re.compile(r"^Basic\s+([A-Za-z0-9+/=]+)\s*$", re.IGNORECASE)


_PHONE_RE = re.compile(r"^\d{10}$")


def _scope_of(path: str) -> Literal["api", "storage", "admin", "other"]:
    if path.startswith("/_sandbox"):
        return "admin"
    if path.startswith("/api/storage/"):
        return "storage"
    if path.startswith("/api/") or path == "/api":
        return "api"
    return "other"


def create_app(state: Twenty2State) -> FastAPI:
    """The sandbox as an ASGI app (serve with ``standins.stack.https``)."""
    app = FastAPI(title="Twenty2 sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    def authenticate(request: Request) -> Response | str:
        """The workspace id when the credentials are right, else the documented error response."""
        match = _BASIC_RE.match(request.headers.get("authorization", ""))
        try:
            decoded = base64.b64decode(match.group(1), validate=True).decode() if match else ""
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        key, sep, secret = decoded.partition(":")
        if not (sep and key == state.api_key and secret == state.api_secret):
            return error_response(401, "A")
        workspace = request.headers.get("x-workspace-id", "").strip()
        if not workspace:
            return error_response(422, "B", validation_errors={"x-workspace-id": ["Required"]})
        if workspace != state.workspace_id:
            return error_response(403, "A")
        return workspace

    async def hang(seconds: float) -> None:
        epoch, deadline = state.epoch, time.monotonic() + seconds
        while time.monotonic() < deadline and state.epoch == epoch:  # reset releases hung requests
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def fault_response(fault: Fault) -> Response:
        assert fault.status is not None  # Fault's validator: status unless hang
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
        shape = fault.shape or FAULT_SHAPES.get(fault.status, "A")
        return error_response(fault.status, shape, code=fault.code, headers=headers)

    @app.middleware("http")
    async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        scope = _scope_of(path)
        if scope == "admin":
            return await call_next(request)
        state.dialer.tick()  # triggered calls move along with the clock
        state._record_arrival(path, scope == "storage" and "authorization" in request.headers)
        response = await _gate(request, call_next, scope)
        state._record_status(response.status_code)
        return response

    async def _gate(request: Request, call_next: Callable[[Request], Awaitable[Response]], scope: str) -> Response:
        if state.latency_ms:
            await asyncio.sleep(state.latency_ms / 1000)
        fault = state._take_fault("storage" if scope == "storage" else "api")
        if fault is not None and fault.garble is not None:
            return await garbled(await _answer(request, call_next, scope), fault.garble)
        if fault is not None:
            if fault.hang:
                await hang(state.hang_seconds if fault.hang_seconds is None else fault.hang_seconds)
                return error_response(504, "text")
            return fault_response(fault)
        return await _answer(request, call_next, scope)

    async def _answer(request: Request, call_next: Callable[[Request], Awaitable[Response]], scope: str) -> Response:
        if scope == "api":
            outcome = authenticate(request)
            if isinstance(outcome, Response):
                return outcome
            wait = state._admit(outcome)
            if wait is not None:
                headers = {"Retry-After": str(max(1, math.ceil(wait)))} if state.rate_limit_retry_after else None
                return error_response(429, "A", headers=headers)
        return await call_next(request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _scope_of(request.url.path) == "api":
            return error_response(exc.status_code, "A", code="NOT_FOUND" if exc.status_code == 404 else None)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    # --- documented API ---------------------------------------------------------------------------------

    def api_base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/api"

    @app.get("/api/call/detail")
    async def call_detail(request: Request) -> Response:
        call_id = request.query_params.get("call_id", "").strip()
        if not call_id:
            return error_response(422, "B", validation_errors={"call_id": ["Required"]})
        found = state._detail_call(call_id)
        if found is None:
            return error_response(404, "A", message="No call found for this call_id")
        first, second = found
        if isinstance(first, SandboxCall):
            return JSONResponse(state.render_detail(first, api_base(request), pending=bool(second)))
        if isinstance(second, str):
            return PlainTextResponse(second, status_code=int(first))
        return JSONResponse(second, status_code=int(first))

    @app.get("/api/call/logs")
    async def call_logs(request: Request) -> Response:
        try:
            return JSONResponse(state.render_logs(dict(request.query_params)))
        except BadLogsQuery as exc:
            return error_response(422, "B", validation_errors={exc.field: [str(exc)]})

    @app.post("/api/agent/trigger-outbound-call")
    async def trigger_outbound_call(request: Request) -> Response:
        raw = await request.body()
        try:
            body = _TriggerBody.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            return error_response(422, "B", validation_errors=_validation_errors(exc))
        if body.agent_id not in state.agents:
            return error_response(
                400, "A", code="INVALID_ASSISTANT", message="Agent does not exist or is not published"
            )
        if not _PHONE_RE.match(body.callee_phone):
            return error_response(
                400, "A", code="INVALID_NUMBER", message="callee_phone must be 10 digits, no country code"
            )
        if body.caller_phone not in state.active_numbers:
            return error_response(
                400, "A", code="INVALID_NUMBER", message="caller_phone is not active in this workspace"
            )
        call_id = state.dialer.trigger(body.agent_id, body.callee_phone, body.caller_phone, body.input_parameters or {})
        if call_id is None:
            return error_response(
                429,
                "A",
                code="RATE_LIMIT_EXCEEDED",
                message=f"Concurrent call limit reached ({state.dialer.max_concurrent} calls in progress)",
            )
        answer = JSONResponse(
            {
                "success": True,
                "call_id": call_id,
                "status": "initiated",
                "message": "Call queued successfully.",
            }
        )
        if state.dialer.take_lost_answer():  # the call is queued, but its answer is cut off on the way back
            return Response(answer.body[: len(answer.body) // 2], media_type="application/json")
        return answer

    @app.get("/api/storage/{kind}/{name}")
    async def storage(kind: str, name: str) -> Response:
        call_id, _, ext = name.rpartition(".")
        if (kind, ext) not in {("transcripts", "txt"), ("recordings", "mp3")}:
            return PlainTextResponse("Not Found", status_code=404)
        status, content = state.storage_object(kind, call_id)
        if status != 200:
            return Response(content, status_code=status, media_type="application/xml")
        media = "text/plain; charset=utf-8" if kind == "transcripts" else "audio/mpeg"
        return Response(content, media_type=media)

    # --- admin (unauthenticated; loopback only) ---------------------------------------------------------

    @app.get("/_sandbox/stats")
    async def admin_stats() -> dict[str, Any]:
        return state.stats()

    @app.post("/_sandbox/reset")
    async def admin_reset(keep_calls: bool = False) -> dict[str, Any]:
        state.reset(keep_calls=keep_calls)
        return {"ok": True}

    @app.post("/_sandbox/faults")
    async def admin_add_fault(fault: Fault) -> dict[str, Any]:
        state.add_fault(fault)
        return {"ok": True}

    @app.delete("/_sandbox/faults")
    async def admin_clear_faults() -> dict[str, Any]:
        state.clear_faults()
        return {"ok": True}

    @app.post("/_sandbox/config")
    async def admin_config(config: _Config) -> dict[str, Any]:
        changes = config.model_dump(exclude_none=True, exclude={"lift_rate_limit"})
        if config.lift_rate_limit:
            changes["rate_limit_per_minute"] = None
        state.configure(**changes)
        return {"ok": True}

    @app.get("/_sandbox/dialer")
    async def admin_dialer() -> dict[str, Any]:
        state.dialer.tick()
        return state.dialer.stats()

    @app.post("/_sandbox/clock")
    async def admin_clock(advance_seconds: float = 0.0) -> dict[str, Any]:
        state.dialer.clock.advance(advance_seconds)
        state.dialer.tick()
        return {"now": state.dialer.clock.now().isoformat()}

    @app.get("/_sandbox/calls")
    async def admin_calls() -> dict[str, Any]:
        return {"call_ids": state.call_ids()}

    @app.post("/_sandbox/calls")
    async def admin_add_calls(body: _AddCalls) -> dict[str, Any]:
        ids = [state.add_call(c) for c in body.calls]
        if body.generate:
            ids += state.add_generated_calls(
                body.generate,
                seed=body.seed,
                lead_ids=body.lead_ids,
                phones=body.phones,
                lead_id_param=body.lead_id_param,
            )
        return {"call_ids": ids}

    @app.get("/_sandbox/calls/{call_id}/webhook")
    async def admin_webhook(call_id: str, event: str | None = None) -> Response:
        try:
            return JSONResponse(state.webhook_payload(call_id, event))
        except KeyError:
            return JSONResponse({"detail": "unknown call"}, status_code=404)

    @app.post("/_sandbox/calls/{call_id}/pending")
    async def admin_pending(call_id: str, fetches: int | None = None, seconds: float | None = None) -> Response:
        try:
            state.set_pending(call_id, fetches=fetches, seconds=seconds)
        except KeyError:
            return JSONResponse({"detail": "unknown call"}, status_code=404)
        return JSONResponse({"ok": True})

    @app.post("/_sandbox/calls/{call_id}/finish")
    async def admin_finish(call_id: str, updates: _Finish | None = None) -> Response:
        try:
            state.finish(call_id, **((updates.model_extra or {}) if updates else {}))
        except KeyError:
            return JSONResponse({"detail": "unknown call"}, status_code=404)
        return JSONResponse({"ok": True})

    return app
