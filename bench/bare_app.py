"""The load test's ceilings: apps that answer every POST 200 and do nothing else.

Served by the Procfile's own ``web`` command with only the app swapped (``bench/intake_load.py``), so the
same uvicorn and the same options stand between the socket and the answer:

- ``create_app``: a plain ASGI app, as the product's webhook route is served (``worker.intake.webhook``,
  ahead of FastAPI): the ceiling the intake is held against.
- ``create_fastapi_app``: the same behind FastAPI's routing, as every other path of the product is served
  (and as the webhook route was until it left FastAPI): what the framework alone costs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

ANSWER = b'{"success":true,"status":"queued","call_id":""}'
READY = b'{"status":"ready"}'

Message = MutableMapping[str, Any]


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]


async def _bare(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":  # lifespan: nothing to start
        message = await receive()
        while message["type"] != "lifespan.shutdown":
            await send({"type": message["type"] + ".complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:  # read the body, as any endpoint must
        message = await receive()
        more = message.get("more_body", False) and message["type"] == "http.request"
    body = READY if scope["method"] == "GET" else ANSWER
    await send({"type": "http.response.start", "status": 200, "headers": _headers(body)})
    await send({"type": "http.response.body", "body": body})


def create_app() -> Callable[..., Awaitable[None]]:
    return _bare


def create_fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.post("/{path:path}")
    async def bare(path: str) -> Response:
        return Response(ANSWER, media_type="application/json")

    @app.get("/readyz")
    async def ready() -> Response:
        return Response(READY, media_type="application/json")

    return app
