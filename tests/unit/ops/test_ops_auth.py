"""Console access rules without servers: tokens and labels, the signed session, rotation, the plain-HTTP
refusal at startup and per request."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from worker.intake.app import create_app
from worker.ops.auth import ConsoleExposed, SessionSigner, csrf_ok, refuse_plain_http, request_allowed
from worker.runtime import Runtime
from worker.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_tokens_with_and_without_labels() -> None:
    assert settings(crm_sync_ops_token="s3cret-token").ops_tokens == {"ops": "s3cret-token"}
    rotated = settings(crm_sync_ops_token="alice:tok-a-123, bob:tok-b:with-colon").ops_tokens
    assert rotated == {"alice": "tok-a-123", "bob": "tok-b:with-colon"}
    assert settings().ops_tokens == {}


def test_sign_in_gives_a_signed_session_naming_the_label() -> None:
    signer = SessionSigner(settings(crm_sync_ops_token="alice:tok-a-123,bob:tok-b-456"))
    assert signer.sign_in("nope") is None
    signed = signer.sign_in("tok-b-456")
    assert signed is not None
    session, cookie = signed
    assert session.who == "bob" and "tok-b-456" not in cookie
    assert signer.read(cookie) == session
    assert signer.read(cookie[:-2] + ("A" if cookie[-2] != "A" else "B") + cookie[-1]) is None  # tampered
    assert csrf_ok(session, session.csrf) and not csrf_ok(session, "") and not csrf_ok(session, "x" * 32)


def test_removing_a_token_ends_its_sessions() -> None:
    before = SessionSigner(settings(crm_sync_ops_token="alice:old-token-1,bob:tok-b-456"))
    signed = before.sign_in("old-token-1")
    assert signed is not None
    after = SessionSigner(settings(crm_sync_ops_token="alice:new-token-2,bob:tok-b-456"))
    assert after.read(signed[1]) is None


def test_refuses_to_start_on_a_public_address_over_plain_http() -> None:
    exposed = settings(crm_sync_ops_token="tok-123456", crm_sync_http_host="0.0.0.0")
    with pytest.raises(ConsoleExposed, match="CRM_SYNC_OPS_BEHIND_TLS"):
        refuse_plain_http(exposed)
    with pytest.raises(ConsoleExposed):
        create_app(Runtime(exposed))
    refuse_plain_http(
        settings(crm_sync_ops_token="tok-123456", crm_sync_http_host="0.0.0.0", crm_sync_ops_behind_tls=True)
    )
    refuse_plain_http(settings(crm_sync_ops_token="tok-123456", crm_sync_http_host="::1"))
    refuse_plain_http(settings(crm_sync_http_host="0.0.0.0"))


def test_per_request_refusal_and_console_off() -> None:
    assert request_allowed(settings(), "http", "127.0.0.1")
    assert not request_allowed(settings(), "http", "10.0.0.5")
    assert request_allowed(settings(), "https", "10.0.0.5")
    assert request_allowed(settings(crm_sync_ops_behind_tls=True), "http", "10.0.0.5")
    on = TestClient(create_app(Runtime(settings(crm_sync_ops_token="tok-123456"))))
    # TestClient's server address is "testserver": not loopback, plain HTTP.
    assert on.get("/ops/login").status_code == 403
    off = TestClient(create_app(Runtime(settings())))
    assert off.get("/ops/login").status_code == 404 and off.get("/ops").status_code == 404
