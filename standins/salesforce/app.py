"""The stand-in org as a FastAPI app: the OAuth token endpoint, the REST API and the ``/_sandbox`` admin routes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, unquote

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from standins.salesforce.api import RestReply
from standins.salesforce.schema import FieldSpec
from standins.salesforce.state import SalesforceState


class _SandboxApp(FastAPI):
    """FastAPI that keeps the server's own ``send`` in the scope, so a handler can abort the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["sandbox.raw_send"] = send
        await super().__call__(scope, receive, send)


def _abort_connection(scope: Scope) -> None:
    """Close the TCP connection with no response (uvicorn: the request cycle's transport)."""
    cycle = getattr(scope.get("sandbox.raw_send"), "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionAbortedError("sandbox: drop_after_commit")
    if cycle is not None and hasattr(cycle, "disconnected"):
        cycle.disconnected = True  # uvicorn then ignores the response the app still sends
    transport.abort()


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _segments(request: Request, version: str) -> list[str]:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    prefix = f"/services/data/{version}"
    rest = path[len(prefix) :] if path.startswith(prefix) else ""
    return [unquote(s) for s in rest.split("/") if s != ""]


def _reply(reply: RestReply) -> Response:
    if reply.body is None and reply.status in (204, 304):
        return Response(status_code=reply.status, headers=reply.headers)
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


def create_app(state: SalesforceState) -> FastAPI:
    """The sandbox as an ASGI app (serve with ``standins.stack.https``)."""
    app = _SandboxApp(title="Salesforce sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/services/oauth2/token")
    async def token(request: Request) -> Response:
        raw = (await request.body()).decode("utf-8", "replace")
        form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        status, body = await run_in_threadpool(state.oauth_token, form, _base_url(request))
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    @app.get("/services/data")
    @app.get("/services/data/")
    async def versions() -> Response:
        return JSONResponse(state.versions())

    async def rest(request: Request) -> Response:
        version = request.path_params["version"]
        raw = await request.body()
        params = {k: v for k, v in request.query_params.items()}
        reply = await run_in_threadpool(
            state.handle_rest,
            request.method,
            version,
            _segments(request, version),
            params,
            raw,
            request.headers.get("authorization"),
            request.headers,
        )
        if reply.drop:
            _abort_connection(request.scope)
        return _reply(reply)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    app.add_api_route("/services/data/{version}", rest, methods=methods)
    app.add_api_route("/services/data/{version}/{rest:path}", rest, methods=methods)
    _add_admin_routes(app, state)
    return app


def _admin_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _add_admin_routes(app: FastAPI, state: SalesforceState) -> None:
    async def json_body(request: Request) -> Any:
        raw = await request.body()
        return json.loads(raw) if raw.strip() else None

    @app.get("/_sandbox/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/_sandbox/reset")
    async def reset(request: Request) -> dict[str, Any]:
        body = await json_body(request) or {}
        await run_in_threadpool(lambda: state.reset(demo=bool(body.get("demo", False))))
        return {"ok": True, "demo_ids": state.demo_ids}

    @app.get("/_sandbox/records/{sobject}")
    async def list_records(sobject: str) -> Response:
        try:
            return JSONResponse(await run_in_threadpool(state.records, sobject))
        except KeyError as exc:
            return _admin_error(str(exc), 404)

    @app.post("/_sandbox/records/{sobject}")
    async def insert_records(sobject: str, request: Request) -> Response:
        body = await json_body(request)
        rows = body if isinstance(body, list) else [body]
        if not all(isinstance(r, dict) for r in rows):
            return _admin_error("body must be a record object or a list of them")
        try:
            ids = await run_in_threadpool(lambda: [state.insert_raw(sobject, r) for r in rows])
        except KeyError as exc:
            return _admin_error(str(exc), 404)
        return JSONResponse({"ids": ids}, status_code=201)

    @app.get("/_sandbox/faults")
    async def get_faults() -> dict[str, Any]:
        return state.set_faults()

    @app.put("/_sandbox/faults")
    async def put_faults(request: Request) -> Response:
        body = await json_body(request) or {}
        try:
            return JSONResponse(await run_in_threadpool(lambda: state.set_faults(**body)))
        except (TypeError, ValueError) as exc:
            return _admin_error(str(exc))

    @app.get("/_sandbox/usage")
    async def get_usage() -> dict[str, int]:
        return state.set_usage()

    @app.put("/_sandbox/usage")
    async def put_usage(request: Request) -> Response:
        body = await json_body(request) or {}
        return JSONResponse(state.set_usage(used=body.get("used"), maximum=body.get("max")))

    @app.get("/_sandbox/stats")
    async def stats() -> dict[str, Any]:
        return state.stats()

    @app.post("/_sandbox/convert/{lead_id}")
    async def convert(lead_id: str, request: Request) -> Response:
        body = await json_body(request) or {}
        status = body.get("convertedStatus", "Closed - Converted")
        try:
            result = await run_in_threadpool(lambda: state.convert_lead(lead_id, converted_status=status))
        except KeyError as exc:
            return _admin_error(str(exc), 404)
        except ValueError as exc:
            return _admin_error(str(exc), 409)
        return JSONResponse(result)

    @app.put("/_sandbox/permissions")
    async def permissions(request: Request) -> Response:
        body = await json_body(request) or {}
        if "customizeApplication" in body:
            state.can_customize = bool(body["customizeApplication"])
        return JSONResponse({"customizeApplication": state.can_customize})

    @app.put("/_sandbox/fields/{sobject}/{name}/access")
    async def field_access(sobject: str, name: str, request: Request) -> Response:
        body = await json_body(request) or {}
        visible, editable = bool(body.get("visible", True)), bool(body.get("editable", True))
        try:
            await run_in_threadpool(lambda: state.set_field_access(sobject, name, visible=visible, editable=editable))
        except KeyError as exc:
            return _admin_error(str(exc), 404)
        return JSONResponse({"ok": True, "visible": visible, "editable": editable})

    @app.post("/_sandbox/fields/{sobject}")
    async def add_field(sobject: str, request: Request) -> Response:
        body = await json_body(request) or {}
        try:
            spec = FieldSpec(
                name=body["name"],
                type=body.get("type", "string"),
                length=int(body.get("length", 255)),
                label=body.get("label", ""),
                external_id=bool(body.get("externalId", False)),
                unique=bool(body.get("unique", False)),
                custom=body["name"].endswith("__c"),
                picklist=tuple(body.get("picklistValues", ())),
                restricted=bool(body.get("restrictedPicklist", False)),
                updateable=bool(body.get("updateable", True)),
                createable=bool(body.get("createable", True)),
            )
            await run_in_threadpool(state.add_field, sobject, spec)
        except KeyError as exc:
            return _admin_error(f"missing or unknown: {exc}", 404)
        return JSONResponse({"ok": True, "field": spec.describe()}, status_code=201)
