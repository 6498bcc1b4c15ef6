"""The intake against hostile senders: HMAC signatures, flood control per source, hostile tokens and bodies.

Signature and body cases run in-process (TestClient); flood control runs over real HTTPS on loopback
(CA verification on) from two real peer addresses, 127.0.0.1 and 127.0.0.2.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from standins.stack.https import TLSFiles, make_tls_files, serve_in_thread
from standins.stack.ports import free_port
from worker.celery_app import QUEUE
from worker.intake.app import create_app
from worker.runtime import Runtime
from worker.settings import Settings

SECRET = "s3cret-intake-token-1"
SIGNING = "signing-key-new-2222"
OLD_SIGNING = "signing-key-old-1111"
BODY = {
    "event": "call.completed",
    "event_id": "evt_1",
    "call": {"call_id": "call_9c4d7e12ab", "status": "completed"},
}


def payload() -> dict[str, Any]:
    return copy.deepcopy(BODY)


def make_app(redis_url: str, **settings: Any) -> Any:
    values: dict[str, Any] = {"redis_url": redis_url, "twenty2_webhook_secret": SECRET, **settings}
    return create_app(Runtime(Settings(**values)))


def make_client(redis_url: str, **settings: Any) -> TestClient:
    return TestClient(make_app(redis_url, **settings))


def queue_length(redis_url: str) -> int:
    length = redis.Redis.from_url(redis_url).llen(QUEUE)
    assert isinstance(length, int)
    return length


def sign(secret: str, body: bytes, timestamp: int, prefix: str = "sha256=") -> dict[str, str]:
    """What a signing sender adds: HMAC-SHA256 over ``{timestamp}.{body}``, computed here independently."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Twenty2-Signature": prefix + digest,
        "X-Twenty2-Timestamp": str(timestamp),
        "Content-Type": "application/json",
    }


def raw() -> bytes:
    return json.dumps(payload()).encode()


# --- Signatures -------------------------------------------------------------------------------------------


@pytest.fixture
def signed_client(redis_url: str) -> TestClient:
    return make_client(redis_url, crm_sync_intake_signing_secret=f"{OLD_SIGNING},{SIGNING}")


def test_valid_signature_is_accepted(signed_client: TestClient, redis_url: str) -> None:
    body = raw()
    response = signed_client.post(
        f"/webhooks/twenty2/{SECRET}", content=body, headers=sign(SIGNING, body, int(time.time()))
    )
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert queue_length(redis_url) == 1


def test_bare_hex_signature_is_accepted(signed_client: TestClient) -> None:
    body = raw()
    headers = sign(SIGNING, body, int(time.time()), prefix="")
    assert signed_client.post(f"/webhooks/twenty2/{SECRET}", content=body, headers=headers).status_code == 200


def test_wrong_signature_is_401(signed_client: TestClient, redis_url: str) -> None:
    body = raw()
    headers = sign("not-the-signing-key", body, int(time.time()))
    response = signed_client.post(f"/webhooks/twenty2/{SECRET}", content=body, headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "BAD_SIGNATURE"
    assert queue_length(redis_url) == 0


def test_signature_of_another_body_is_401(signed_client: TestClient, redis_url: str) -> None:
    headers = sign(SIGNING, raw(), int(time.time()))
    tampered = raw().replace(b"call_9c4d7e12ab", b"call_0000000000")
    response = signed_client.post(f"/webhooks/twenty2/{SECRET}", content=tampered, headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "BAD_SIGNATURE"
    assert queue_length(redis_url) == 0


def test_stale_timestamp_is_401(signed_client: TestClient, redis_url: str) -> None:
    body = raw()
    headers = sign(SIGNING, body, int(time.time()) - 301)
    response = signed_client.post(f"/webhooks/twenty2/{SECRET}", content=body, headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "STALE_SIGNATURE"
    assert queue_length(redis_url) == 0


def test_future_timestamp_is_401(signed_client: TestClient, redis_url: str) -> None:
    body = raw()
    headers = sign(SIGNING, body, int(time.time()) + 310)  # clear of the 300 s window by more than the test can take
    response = signed_client.post(f"/webhooks/twenty2/{SECRET}", content=body, headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "STALE_SIGNATURE"
    assert queue_length(redis_url) == 0


def test_signature_with_rotated_old_secret_is_accepted(signed_client: TestClient, redis_url: str) -> None:
    body = raw()
    response = signed_client.post(
        f"/webhooks/twenty2/{SECRET}", content=body, headers=sign(OLD_SIGNING, body, int(time.time()))
    )
    assert response.status_code == 200
    assert queue_length(redis_url) == 1


def test_missing_signature_when_required_is_401(signed_client: TestClient, redis_url: str) -> None:
    response = signed_client.post(f"/webhooks/twenty2/{SECRET}", json=payload())
    assert response.status_code == 401 and response.json()["error"]["code"] == "MISSING_SIGNATURE"
    assert queue_length(redis_url) == 0


def test_malformed_signature_and_timestamp_are_401(signed_client: TestClient, redis_url: str) -> None:
    body = raw()
    for signature, timestamp in [
        ("sha256=zz", str(int(time.time()))),
        ("ab" * 32, "yesterday"),
        ("ab" * 32, "1" * 40),
    ]:
        headers = {"X-Twenty2-Signature": signature, "X-Twenty2-Timestamp": timestamp}
        response = signed_client.post(f"/webhooks/twenty2/{SECRET}", content=body, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "BAD_SIGNATURE"
    assert queue_length(redis_url) == 0


def test_valid_signature_without_shared_secret_is_401_by_default(signed_client: TestClient, redis_url: str) -> None:
    body = raw()
    response = signed_client.post(
        "/webhooks/twenty2/wrong-token", content=body, headers=sign(SIGNING, body, int(time.time()))
    )
    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"
    assert queue_length(redis_url) == 0


def test_signature_only_mode_accepts_a_signature_alone(redis_url: str) -> None:
    client = make_client(redis_url, crm_sync_intake_signing_secret=SIGNING, crm_sync_intake_signature_only=True)
    body = raw()
    assert (
        client.post("/webhooks/twenty2", content=body, headers=sign(SIGNING, body, int(time.time()))).status_code == 200
    )
    assert client.post("/webhooks/twenty2", json=payload()).json()["error"]["code"] == "MISSING_SIGNATURE"


def test_signature_only_without_signing_secret_still_needs_the_shared_secret(redis_url: str) -> None:
    client = make_client(redis_url, crm_sync_intake_signature_only=True)
    response = client.post("/webhooks/twenty2", json=payload())
    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"
    assert client.post(f"/webhooks/twenty2/{SECRET}", json=payload()).status_code == 200


# --- Hostile tokens and headers ---------------------------------------------------------------------------


@pytest.fixture
def client(redis_url: str) -> TestClient:
    return make_client(redis_url)


def test_path_token_of_10kb_is_401(client: TestClient, redis_url: str) -> None:
    response = client.post("/webhooks/twenty2/" + "A" * 10_240, json=payload())
    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"
    assert queue_length(redis_url) == 0


def test_non_ascii_path_token_is_401(client: TestClient, redis_url: str) -> None:
    response = client.post("/webhooks/twenty2/s\u00eb\u00e7ret-\u2603-\U0001f600", json=payload())
    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"
    assert queue_length(redis_url) == 0


def test_path_token_with_slashes_and_escapes_is_401(client: TestClient, redis_url: str) -> None:
    for token in ("a/b/c", "%2F..%2F", "%00", "%ED%A0%80", "%FF%FE"):
        response = client.post(f"/webhooks/twenty2/{token}", json=payload())
        assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED", token
    assert queue_length(redis_url) == 0


def test_non_ascii_configured_secret_matches_its_token(redis_url: str) -> None:
    client = make_client(redis_url, twenty2_webhook_secret="geheim-\u00e4\u00f6\u00fc-\u2603")
    assert client.post("/webhooks/twenty2/geheim-\u00e4\u00f6\u00fc-\u2603", json=payload()).status_code == 200


def test_binary_authorization_header_is_401(client: TestClient, redis_url: str) -> None:
    response = client.post("/webhooks/twenty2", json=payload(), headers={"Authorization": b"Bearer \xff\xfe\x80"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"
    assert queue_length(redis_url) == 0


def test_unknown_path_and_method_answer_json_errors(client: TestClient) -> None:
    assert client.get("/nowhere").json()["error"]["code"] == "NOT_FOUND"
    response = client.get(f"/webhooks/twenty2/{SECRET}")
    assert response.status_code == 405 and response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


# --- Hostile bodies ---------------------------------------------------------------------------------------

HOSTILE_CALL_IDS = {
    "double-quote": 'call_ab"cd',
    "single-quote": "call_ab'cd",
    "backslash": "call_ab\\cd",
    "percent": "call_ab%27cd",
    "sosl-reserved": "call_a?&|!{}[]()^~*:+",
    "sosl-wildcard": "call_*",
    "unicode-letter": "call_\u00e4\u00f6",
    "arabic-digits": "call_\u0661\u0662\u0663",
    "fullwidth-hex": "\uff16a100328ba090039ac8610a2",
    "trailing-newline": "call_9c4d7e12ab\n",
    "inner-newline": "call_9c4d\n7e12ab",
    "nul": "call_9c4d\u00007e12ab",
    "10kb": "call_" + "a" * 10_240,
    "empty": "",
}


@pytest.mark.parametrize("call_id", list(HOSTILE_CALL_IDS.values()), ids=list(HOSTILE_CALL_IDS))
def test_hostile_call_id_is_422(client: TestClient, redis_url: str, call_id: str) -> None:
    for body in ({"call_id": call_id}, {"event": "call.completed", "call": {"call_id": call_id}}):
        response = client.post(f"/webhooks/twenty2/{SECRET}", json=body)
        assert response.status_code == 422 and response.json()["error"]["code"] == "INVALID_PAYLOAD"
    assert queue_length(redis_url) == 0


def test_invalid_utf8_body_is_400(client: TestClient, redis_url: str) -> None:
    body = b'{"call_id": "call_9c4d7e12ab", "x": "\xff\xfe\xc3\x28"}'
    response = client.post(f"/webhooks/twenty2/{SECRET}", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "MALFORMED_JSON"
    assert queue_length(redis_url) == 0


NON_STANDARD_JSON = {
    "nan": b'{"call_id": "call_9c4d7e12ab", "x": NaN}',
    "infinity": b'{"call_id": "call_9c4d7e12ab", "x": -Infinity}',
    "overflowing-float": b'{"call_id": "call_9c4d7e12ab", "x": 1e999}',
    "huge-integer": b'{"call_id": "call_9c4d7e12ab", "x": ' + b"9" * 5000 + b"}",
    "duplicate-key": b'{"call_id": "call_9c4d7e12ab", "call_id": "call_0000000000"}',
    "deep-beyond-recursion-limit": b"[" * 100_000,
}


@pytest.mark.parametrize("body", list(NON_STANDARD_JSON.values()), ids=list(NON_STANDARD_JSON))
def test_non_standard_json_is_400(client: TestClient, redis_url: str, body: bytes) -> None:
    response = client.post(f"/webhooks/twenty2/{SECRET}", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] in {"MALFORMED_JSON", "TOO_DEEP"}
    assert queue_length(redis_url) == 0


def test_non_digit_content_length_is_not_a_500(redis_url: str) -> None:
    """A Content-Length of non-ASCII "digits" (only an in-process or broken client sends one)."""
    app = make_app(redis_url)
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/webhooks/twenty2/{SECRET}",
        "raw_path": b"",
        "query_string": b"",
        "headers": [
            (b"content-length", "\u00b2\u00b3".encode("latin-1")),
            (b"content-type", b"application/json"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "http_version": "1.1",
    }
    body = json.dumps(payload()).encode()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(app, scope, receive, send)
    assert sent[0]["status"] == 200


# --- Flood control, over real HTTPS from two peer addresses ---------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("intake-tls"))


def from_address(tls: TLSFiles, base_url: str, local_address: str) -> httpx.Client:
    """A client whose connections leave from ``local_address`` (any 127.x address is loopback on Linux)."""
    context = ssl.create_default_context(cafile=str(tls.ca_pem))
    transport = httpx.HTTPTransport(verify=context, local_address=local_address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=5)


@pytest.fixture
def flood_server(redis_url: str, tls: TLSFiles) -> Iterator[str]:
    with serve_in_thread(make_app(redis_url, crm_sync_intake_rate_limit_per_minute=3), tls) as base_url:
        yield base_url


def test_flood_from_one_source_is_429_while_another_source_gets_200(flood_server: str, tls: TLSFiles) -> None:
    with (
        from_address(tls, flood_server, "127.0.0.1") as flooder,
        from_address(tls, flood_server, "127.0.0.2") as other,
    ):
        statuses = [flooder.post(f"/webhooks/twenty2/{SECRET}", json=payload()).status_code for _ in range(3)]
        flooded = flooder.post(f"/webhooks/twenty2/{SECRET}", json=payload())
        calm = other.post(f"/webhooks/twenty2/{SECRET}", json=payload())
    assert statuses == [200, 200, 200]
    assert flooded.status_code == 429 and flooded.json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(flooded.headers["Retry-After"]) <= 60
    assert flooded.json()["error"]["retry_after"] == int(flooded.headers["Retry-After"])
    assert calm.status_code == 200


def test_brute_force_source_gets_429(flood_server: str, tls: TLSFiles, redis_url: str) -> None:
    with from_address(tls, flood_server, "127.0.0.3") as guesser:
        statuses = [guesser.post(f"/webhooks/twenty2/guess-{n}", json=payload()).status_code for n in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert queue_length(redis_url) == 0


def test_forwarded_for_is_ignored_from_an_untrusted_peer(flood_server: str, tls: TLSFiles) -> None:
    with from_address(tls, flood_server, "127.0.0.4") as spoofer:
        statuses = [
            spoofer.post(
                f"/webhooks/twenty2/{SECRET}", json=payload(), headers={"X-Forwarded-For": f"10.0.0.{n}"}
            ).status_code
            for n in range(4)
        ]
    assert statuses == [200, 200, 200, 429]


def test_forwarded_for_from_a_trusted_proxy_names_the_client(redis_url: str, tls: TLSFiles) -> None:
    app = make_app(
        redis_url, crm_sync_intake_rate_limit_per_minute=2, crm_sync_trusted_proxies="127.0.0.1, 10.9.0.0/16"
    )
    with serve_in_thread(app, tls) as base_url, from_address(tls, base_url, "127.0.0.1") as proxy:

        def post(forwarded_for: str) -> int:
            headers = {"X-Forwarded-For": forwarded_for}
            return proxy.post(f"/webhooks/twenty2/{SECRET}", json=payload(), headers=headers).status_code

        # The client chose "1.1.1.1"; our proxies 10.9.0.5 and the peer appended the real address 203.0.113.7.
        first = [post(f"1.1.1.{n}, 203.0.113.7, 10.9.0.5") for n in range(3)]
        second = post("203.0.113.8")
    assert first == [200, 200, 429]
    assert second == 200


def test_limiter_redis_down_is_never_a_500(redis_url: str) -> None:
    client = make_client(f"redis://127.0.0.1:{free_port()}/0", crm_sync_intake_rate_limit_per_minute=1)
    for _ in range(3):
        authenticated = client.post(f"/webhooks/twenty2/{SECRET}", json=payload())
        assert authenticated.status_code == 503 and authenticated.json()["error"]["code"] == "QUEUE_UNAVAILABLE"
        unauthenticated = client.post("/webhooks/twenty2/wrong", json=payload())
        assert unauthenticated.status_code == 401 and unauthenticated.json()["error"]["code"] == "UNAUTHORIZED"


def test_zero_rate_limit_disables_flood_control(redis_url: str) -> None:
    client = make_client(redis_url, crm_sync_intake_rate_limit_per_minute=0)
    statuses = {client.post(f"/webhooks/twenty2/{SECRET}", json=payload()).status_code for _ in range(20)}
    assert statuses == {200}
    assert not redis.Redis.from_url(redis_url).keys("crm-sync-intake*")


def test_ipv6_sources_are_counted_per_64(redis_url: str) -> None:
    app = make_app(redis_url, crm_sync_intake_rate_limit_per_minute=2)
    statuses = []
    for host in ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2::abcd", "2001:db8:1:3::1"):
        statuses.append(
            TestClient(app, client=(host, 40000)).post(f"/webhooks/twenty2/{SECRET}", json=payload()).status_code
        )
    assert statuses == [200, 200, 429, 200]
