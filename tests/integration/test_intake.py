"""The webhook intake: authentication, validation, enqueueing on Redis, 503 when Redis is down."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from standins.stack.ports import free_port
from worker.celery_app import QUEUE
from worker.intake.app import MAX_BODY_BYTES, create_app
from worker.runtime import Runtime
from worker.settings import Settings

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
SECRET = "s3cret-intake-token-1"


def fixture(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text()))


def make_client(redis_url: str, secrets: str = SECRET) -> TestClient:
    runtime = Runtime(Settings(redis_url=redis_url, twenty2_webhook_secret=secrets))  # type: ignore[arg-type]
    return TestClient(create_app(runtime))


@pytest.fixture
def client(redis_url: str) -> TestClient:
    return make_client(redis_url)


def queued(redis_url: str) -> list[str]:
    """The call ids of the sync tasks waiting in the broker queue (kombu's Redis message: base64 JSON body)."""
    messages = [json.loads(m) for m in redis.Redis.from_url(redis_url).lrange(QUEUE, 0, -1)]
    assert all(m["headers"]["task"] == "crm_sync.sync_call" for m in messages)
    return [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages]


def test_call_completed_is_queued(client: TestClient, redis_url: str) -> None:
    response = client.post(f"/webhooks/twenty2/{SECRET}", json=fixture("call_completed"))
    assert response.status_code == 200
    assert response.json() == {"success": True, "status": "queued", "call_id": "call_9c4d7e12ab"}
    assert queued(redis_url) == ["call_9c4d7e12ab"]


def test_call_failed_is_queued(client: TestClient, redis_url: str) -> None:
    response = client.post(
        "/webhooks/twenty2", json=fixture("call_failed"), headers={"Authorization": f"Bearer {SECRET}"}
    )
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert queued(redis_url) == ["6a100328ba090039ac8610a2"]


def test_bare_call_id_is_queued(client: TestClient, redis_url: str) -> None:
    response = client.post(f"/webhooks/twenty2/{SECRET}", json=fixture("bare_call_id"))
    assert response.status_code == 200 and response.json()["call_id"] == "call_9c4d7e12ab"


def test_unknown_event_is_acknowledged_and_ignored(client: TestClient, redis_url: str) -> None:
    response = client.post(f"/webhooks/twenty2/{SECRET}", json=fixture("unknown_event"))
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert queued(redis_url) == []


def test_redelivery_is_not_queued_twice(client: TestClient, redis_url: str) -> None:
    payload = fixture("call_completed")
    first = client.post(f"/webhooks/twenty2/{SECRET}", json=payload)
    payload["event_id"] = "evt_another-delivery"
    second = client.post(f"/webhooks/twenty2/{SECRET}", json=payload)
    assert first.json()["status"] == "queued" and second.json()["status"] == "duplicate"
    assert queued(redis_url) == ["call_9c4d7e12ab"]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/webhooks/twenty2", {}),
        ("/webhooks/twenty2/wrong", {}),
        ("/webhooks/twenty2", {"Authorization": "Bearer wrong"}),
        ("/webhooks/twenty2", {"Authorization": f"Basic {SECRET}"}),
    ],
    ids=["no-secret", "wrong-path-token", "wrong-bearer", "not-bearer"],
)
def test_unauthenticated_is_401_and_nothing_queued(
    client: TestClient, redis_url: str, path: str, headers: dict[str, str]
) -> None:
    response = client.post(path, json=fixture("call_completed"), headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"
    assert queued(redis_url) == []


def test_rotated_secrets_are_all_accepted(redis_url: str) -> None:
    client = make_client(redis_url, secrets="old-secret-aaaa, new-secret-bbbb")
    for token in ("old-secret-aaaa", "new-secret-bbbb"):
        assert client.post(f"/webhooks/twenty2/{token}", json=fixture("bare_call_id")).status_code == 200


def test_no_configured_secret_accepts_nothing(redis_url: str) -> None:
    client = make_client(redis_url, secrets="")
    assert client.post("/webhooks/twenty2/anything", json=fixture("bare_call_id")).status_code == 401


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "MALFORMED_JSON"),
        (b"[1, 2]", "application/json", 422, "INVALID_PAYLOAD"),
        (b'{"event": "call.completed"}', "application/json", 422, "INVALID_PAYLOAD"),
        (b'{"call_id": "../../etc/passwd"}', "application/json", 422, "INVALID_PAYLOAD"),
        (b'{"call_id": "call_x\' OR 1=1"}', "application/json", 422, "INVALID_PAYLOAD"),
        (b'{"call": {"call_id": 12345}}', "application/json", 422, "INVALID_PAYLOAD"),
        (b"call_id=call_9c4d7e12ab", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b"[" * 100 + b"]" * 100, "application/json", 400, "TOO_DEEP"),
        (
            b'{"call_id": "call_9c4d7e12ab", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}',
            "application/json",
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ],
    ids=[
        "malformed",
        "not-object",
        "missing-call-id",
        "path-traversal-id",
        "quote-in-id",
        "number-id",
        "form",
        "deep",
        "oversized",
    ],
)
def test_bad_bodies_get_a_4xx_json_error(
    client: TestClient, redis_url: str, body: bytes, content_type: str, status: int, code: str
) -> None:
    response = client.post(f"/webhooks/twenty2/{SECRET}", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert queued(redis_url) == []


def test_redis_down_answers_503() -> None:
    client = make_client(f"redis://127.0.0.1:{free_port()}/0")
    response = client.post(f"/webhooks/twenty2/{SECRET}", json=fixture("call_completed"))
    assert response.status_code == 503 and response.json()["error"]["code"] == "QUEUE_UNAVAILABLE"
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_ready_when_redis_answers(client: TestClient) -> None:
    assert client.get("/readyz").json() == {"status": "ready"}


class _FastAPIOnly:
    """The intake app reached through FastAPI's own routing (``FastAPI.__call__``), bypassing the plain ASGI
    fast path: how the webhook routes kept for the OpenAPI description answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await FastAPI.__call__(self.app, scope, receive, send)


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        (f"/webhooks/twenty2/{SECRET}", json.dumps(fixture("call_completed")), {}),
        ("/webhooks/twenty2", json.dumps(fixture("call_failed")), {"Authorization": f"Bearer {SECRET}"}),
        ("/webhooks/twenty2/wrong", "{}", {}),
        (f"/webhooks/twenty2/{SECRET}", '{"call_id": NaN}', {}),
        (f"/webhooks/twenty2/{SECRET}", "{}", {"Content-Type": "text/plain"}),
        (f"/webhooks/twenty2/{SECRET}", '{"call": {}}', {}),
    ],
    ids=["queued", "bearer", "wrong-secret", "nan", "content-type", "invalid-payload"],
)
def test_fastapi_routes_answer_as_the_fast_path(redis_url: str, path: str, body: str, headers: dict[str, str]) -> None:
    app = make_client(redis_url).app
    answers = []
    for asgi in (app, _FastAPIOnly(app)):
        redis.Redis.from_url(redis_url).flushdb()
        response = TestClient(asgi).post(path, content=body, headers={"Content-Type": "application/json", **headers})
        answers.append((response.status_code, response.json(), response.headers["content-type"]))
    assert answers[0] == answers[1]
