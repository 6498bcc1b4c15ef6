"""Which requests the intake's plain ASGI webhook route takes (``worker.intake.webhook.webhook_token``)."""

from __future__ import annotations

from typing import Any

import pytest

from worker.intake.webhook import webhook_token


def scope(path: str, method: str = "POST", kind: str = "http", root_path: str = "") -> dict[str, Any]:
    return {"type": kind, "method": method, "path": path, "root_path": root_path}


@pytest.mark.parametrize(
    ("request_scope", "expected"),
    [
        (scope("/webhooks/twenty2"), (True, None)),
        (scope("/webhooks/twenty2/s3cret"), (True, "s3cret")),
        (scope("/webhooks/twenty2/"), (True, "")),  # an empty secret: a 401, not a 404
        (scope("/webhooks/twenty2/a/b\nc"), (True, "a/b\nc")),  # anything after the prefix is the secret
        (scope("/api/webhooks/twenty2/s3cret", root_path="/api"), (True, "s3cret")),  # behind a prefix
        (scope("/webhooks/twenty2/s3cret", root_path="/api"), (True, "s3cret")),  # servers that strip it
        (scope("/webhooks/twenty2", method="GET"), (False, None)),  # FastAPI answers 405
        (scope("/webhooks/twenty2x"), (False, None)),
        (scope("/healthz"), (False, None)),
        ({"type": "lifespan"}, (False, None)),
        (scope("/webhooks/twenty2", kind="websocket"), (False, None)),
    ],
    ids=[
        "bearer",
        "path-secret",
        "empty-secret",
        "odd-secret",
        "root-path",
        "root-path-stripped",
        "get",
        "longer-path",
        "other-path",
        "lifespan",
        "websocket",
    ],
)
def test_webhook_token(request_scope: dict[str, Any], expected: tuple[bool, str | None]) -> None:
    assert webhook_token(request_scope) == expected
