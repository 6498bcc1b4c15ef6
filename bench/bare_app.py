"""The load test's ceiling: an ASGI app that answers every POST 200 and does nothing else.

Served by the Procfile's own ``web`` command with only the app swapped (``bench/intake_load.py``), so the
same uvicorn, the same options and the same framework (FastAPI) stand between the socket and the answer.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

ANSWER = b'{"success":true,"status":"queued","call_id":""}'


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/{path:path}")
    async def bare(path: str) -> Response:
        return Response(ANSWER, media_type="application/json")

    @app.get("/readyz")
    async def ready() -> Response:
        return Response(b'{"status":"ready"}', media_type="application/json")

    return app
