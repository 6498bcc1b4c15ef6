"""Twenty2Client against the sandbox over real HTTPS (CA verification on): parsing, error sorting, retries."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import SecretStr
from support.twenty2_server import T2Sandbox

from standins.stack.ports import free_port
from standins.twenty2 import SEED_CALL_ID, SEED_FAILED_CALL_ID
from worker import retry
from worker.errors import (
    CallNotFinal,
    CallNotFound,
    Stage,
    Twenty2BadRequest,
    Twenty2BadResponse,
    Twenty2Forbidden,
    Twenty2RateLimited,
    Twenty2Unauthorized,
    Twenty2Unavailable,
)
from worker.retry import TWENTY2, Backoff
from worker.twenty2.answers import parse_retry_after
from worker.twenty2.models import Link

DETAIL = "/api/call/detail"
ATTEMPTS = 4


def _future_link(t2: T2Sandbox, call_id: str, host: str = "127.0.0.1") -> Link:
    port = t2.root_url.rsplit(":", 1)[1]
    return Link(
        url=f"https://{host}:{port}/api/storage/transcripts/{call_id}.txt",
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )


# --- success ------------------------------------------------------------------------------------------------


def test_seed_call_parsed(t2: T2Sandbox) -> None:
    detail = t2.client().get_call_detail(SEED_CALL_ID)

    call = detail.call
    assert call.call_id == SEED_CALL_ID
    assert call.status == "completed" and call.is_final
    assert call.cost is not None
    assert call.cost.amount == Decimal("15.67") and call.cost.currency == "INR"
    assert (call.callee_phone, call.caller_phone) == ("9999999999", "9999999999")
    assert call.started_at == datetime(2024, 12, 25, 10, 0, 0, tzinfo=UTC)
    assert call.ended_at == datetime(2024, 12, 25, 10, 1, 34, tzinfo=UTC)
    assert call.ended_at.utcoffset() == timedelta(0)
    assert (call.duration_seconds, call.billed_duration_seconds) == (94, 94)
    assert detail.output_parameters == {
        "interested": "yes",
        "callback_requested": "yes",
        "callback_time": "Tomorrow 11am",
    }
    assert detail.transcript is not None
    assert detail.transcript.url == f"{t2.api_url}/storage/transcripts/{SEED_CALL_ID}.txt"
    assert t2.state.request_count(DETAIL) == 1


def test_failed_call_parsed(t2: T2Sandbox) -> None:
    detail = t2.client().get_call_detail(SEED_FAILED_CALL_ID)

    assert detail.call.status == "failed" and detail.call.is_final and not detail.call.connected
    assert detail.output_parameters == {}
    assert detail.recording is None and detail.transcript is None


def test_success_field_missing_but_call_present_accepted(t2: T2Sandbox) -> None:
    body = t2.state.render_detail(t2.state.get_call(SEED_CALL_ID), t2.api_url)
    del body["success"]
    t2.state.set_raw_detail(SEED_CALL_ID, body)

    assert t2.client().get_call_detail(SEED_CALL_ID).call.call_id == SEED_CALL_ID


# --- errors: not retried ------------------------------------------------------------------------------------


def test_400_shape_b_bad_request_not_retried(t2: T2Sandbox) -> None:
    t2.state.fail_next(1, 400, shape="B")

    with pytest.raises(Twenty2BadRequest) as caught:
        t2.client().get_call_detail(SEED_CALL_ID)

    err = caught.value
    assert (err.code, err.http_status, err.stage, err.retryable) == ("HTTP_400", 400, Stage.FETCH, False)
    assert "Bad Request" in err.message
    assert t2.state.request_count(DETAIL) == 1


def test_400_shape_a_code_read(t2: T2Sandbox) -> None:
    t2.state.fail_next(1, 400, shape="A", code="INVALID_NUMBER")

    with pytest.raises(Twenty2BadRequest) as caught:
        t2.client().get_call_detail(SEED_CALL_ID)

    assert (caught.value.code, caught.value.http_status) == ("INVALID_NUMBER", 400)
    assert t2.state.request_count(DETAIL) == 1


def test_401_wrong_secret_unauthorized(t2: T2Sandbox) -> None:
    settings = t2.settings_with(twenty2_api_secret=SecretStr("wrong-secret"))

    with pytest.raises(Twenty2Unauthorized) as caught:
        t2.client(settings=settings).get_call_detail(SEED_CALL_ID)

    err = caught.value
    assert (err.code, err.http_status, err.retryable) == ("UNAUTHORIZED", 401, False)
    assert t2.state.request_count(DETAIL) == 1


def test_401_error_carries_no_credentials(t2: T2Sandbox) -> None:
    settings = t2.settings_with(twenty2_api_key=SecretStr("leaky-key-123"))

    with pytest.raises(Twenty2Unauthorized) as caught:
        t2.client(settings=settings).get_call_detail(SEED_CALL_ID)

    shown = f"{caught.value} {caught.value!r} {caught.value.details} {caught.value.as_record()}"
    assert "leaky-key-123" not in shown
    assert t2.state.api_secret not in shown
    assert "Basic " not in shown


def test_403_wrong_workspace_forbidden(t2: T2Sandbox) -> None:
    settings = t2.settings_with(twenty2_workspace_id="000000000000000000000000")

    with pytest.raises(Twenty2Forbidden) as caught:
        t2.client(settings=settings).get_call_detail(SEED_CALL_ID)

    assert (caught.value.code, caught.value.http_status) == ("FORBIDDEN", 403)
    assert t2.state.request_count(DETAIL) == 1


def test_404_unknown_call_not_found(t2: T2Sandbox) -> None:
    with pytest.raises(CallNotFound) as caught:
        t2.client().get_call_detail("call_doesnotexist")

    assert (caught.value.code, caught.value.http_status, caught.value.retryable) == (
        "CALL_NOT_FOUND",
        404,
        False,
    )
    assert t2.state.request_count(DETAIL) == 1


def test_422_shape_b_validation_errors_kept(t2: T2Sandbox) -> None:
    t2.state.fail_next(1, 422)

    with pytest.raises(Twenty2BadRequest) as caught:
        t2.client().get_call_detail(SEED_CALL_ID)

    err = caught.value
    assert (err.code, err.http_status) == ("HTTP_422", 422)
    assert err.details["validationErrors"] == {"call_id": ["Invalid"]}
    assert t2.state.request_count(DETAIL) == 1


def test_invalid_call_id_refused_before_any_request(t2: T2Sandbox) -> None:
    with pytest.raises(Twenty2BadRequest) as caught:
        t2.client().get_call_detail("../../admin?x=1")

    assert caught.value.code == "INVALID_CALL_ID"
    assert t2.state.request_count() == 0


# --- errors: retried ----------------------------------------------------------------------------------------


def test_429_then_200_succeeds(t2: T2Sandbox) -> None:
    t2.state.fail_next(1, 429)

    detail = t2.client().get_call_detail(SEED_CALL_ID)

    assert detail.call.call_id == SEED_CALL_ID
    assert t2.state.request_count(DETAIL) == 2


def test_429_exhausted_raises_rate_limited(t2: T2Sandbox) -> None:
    t2.state.fail_next(ATTEMPTS, 429)

    with pytest.raises(Twenty2RateLimited) as caught:
        t2.client(retry=replace(TWENTY2, attempts=ATTEMPTS)).get_call_detail(SEED_CALL_ID)

    err = caught.value
    assert (err.code, err.http_status, err.retryable) == ("RATE_LIMIT_EXCEEDED", 429, True)
    assert err.retry_after == pytest.approx(1.0)  # no header: one slot of 60/min
    assert t2.state.request_count(DETAIL) == ATTEMPTS


def test_500_shape_a_retried_then_unavailable(t2: T2Sandbox) -> None:
    t2.state.fail_next(ATTEMPTS, 500)

    with pytest.raises(Twenty2Unavailable) as caught:
        t2.client(retry=replace(TWENTY2, attempts=ATTEMPTS)).get_call_detail(SEED_CALL_ID)

    assert (caught.value.code, caught.value.http_status) == ("INTERNAL_ERROR", 500)
    assert t2.state.request_count(DETAIL) == ATTEMPTS


def test_502_html_body_retried_then_unavailable(t2: T2Sandbox) -> None:
    t2.state.fail_next(ATTEMPTS, 502)

    with pytest.raises(Twenty2Unavailable) as caught:
        t2.client(retry=replace(TWENTY2, attempts=ATTEMPTS)).get_call_detail(SEED_CALL_ID)

    assert (caught.value.code, caught.value.http_status) == ("HTTP_502", 502)
    assert "Bad Gateway" in caught.value.message
    assert t2.state.request_count(DETAIL) == ATTEMPTS


def test_503_exhausts_attempts_then_unavailable(t2: T2Sandbox) -> None:
    t2.state.fail_next(10, 503)

    with pytest.raises(Twenty2Unavailable) as caught:
        t2.client(retry=replace(TWENTY2, attempts=ATTEMPTS)).get_call_detail(SEED_CALL_ID)

    assert (caught.value.code, caught.value.http_status, caught.value.retryable) == ("HTTP_503", 503, True)
    assert t2.state.request_count(DETAIL) == ATTEMPTS


def test_503_then_200_succeeds(t2: T2Sandbox) -> None:
    t2.state.fail_next(ATTEMPTS - 1, 503)

    assert t2.client(retry=replace(TWENTY2, attempts=ATTEMPTS)).get_call_detail(SEED_CALL_ID).call.is_final
    assert t2.state.request_count(DETAIL) == ATTEMPTS


def test_read_timeout_retried_then_unavailable(t2: T2Sandbox) -> None:
    t2.state.hang_next(2, seconds=3.0)
    settings = t2.settings_with(twenty2_read_timeout=0.3)

    started = time.monotonic()
    with pytest.raises(Twenty2Unavailable) as caught:
        t2.client(settings=settings, retry=replace(TWENTY2, attempts=2)).get_call_detail(SEED_CALL_ID)

    assert caught.value.code == "TIMEOUT" and caught.value.http_status is None
    assert t2.state.request_count(DETAIL) == 2
    assert time.monotonic() - started < 2.5  # gave up on the read timeout, not the hang


def test_connection_refused_retried_and_hook_called_per_attempt(t2: T2Sandbox) -> None:
    calls: list[float] = []
    settings = t2.settings_with(twenty2_base_url=f"https://127.0.0.1:{free_port()}/api")

    with pytest.raises(Twenty2Unavailable) as caught:
        t2.client(
            settings=settings, retry=replace(TWENTY2, attempts=3), before_request=lambda: calls.append(1)
        ).get_call_detail(SEED_CALL_ID)

    assert caught.value.code == "CONNECTION_ERROR"
    assert len(calls) == 3


def test_before_request_called_before_each_attempt(t2: T2Sandbox) -> None:
    seen: list[int] = []
    t2.state.fail_next(2, 503)

    t2.client(before_request=lambda: seen.append(t2.state.request_count(DETAIL))).get_call_detail(SEED_CALL_ID)

    assert seen == [0, 1, 2]  # each time before the request reached the server


def test_retry_after_seconds_honoured(t2: T2Sandbox) -> None:
    t2.state.fail_next(1, 429, retry_after="1")
    policy = Backoff(attempts=2, base=0, cap=5, jitter=0)

    started = time.monotonic()
    with retry.testing(wait=True):
        t2.client(retry=policy).get_call_detail(SEED_CALL_ID)

    assert 0.95 <= time.monotonic() - started < 3
    assert t2.state.request_count(DETAIL) == 2


def test_retry_after_capped_at_policy_max_wait(t2: T2Sandbox) -> None:
    t2.state.fail_next(1, 503, retry_after="120")
    policy = Backoff(attempts=2, base=0, cap=0.2, jitter=0)

    started = time.monotonic()
    with retry.testing(wait=True):
        t2.client(retry=policy).get_call_detail(SEED_CALL_ID)

    assert 0.15 <= time.monotonic() - started < 2


def test_retry_after_http_date_parsed() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("7", now=now) == 7
    assert parse_retry_after("soon", now=now) is None


def test_retry_policy_backoff_bounded() -> None:
    policy = Backoff(attempts=5, base=0.5, cap=3.0, jitter=0.0)

    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert policy.delay(1, retry_after=10) == 3.0
    with pytest.raises(ValueError):
        Backoff(attempts=0, base=0.5, cap=3.0)


# --- bad bodies and call state ------------------------------------------------------------------------------


def test_not_final_call_raises_call_not_final(t2: T2Sandbox) -> None:
    t2.state.set_pending(SEED_CALL_ID)

    with pytest.raises(CallNotFinal) as caught:
        t2.client().get_call_detail(SEED_CALL_ID)

    assert caught.value.retryable and caught.value.details == {"status": "in-progress"}
    assert t2.state.request_count(DETAIL) == 1  # not retried inside the client


def test_pending_call_final_on_later_fetch(t2: T2Sandbox) -> None:
    t2.state.set_pending(SEED_CALL_ID, fetches=1)
    client = t2.client()

    with pytest.raises(CallNotFinal):
        client.get_call_detail(SEED_CALL_ID)
    assert client.get_call_detail(SEED_CALL_ID).call.status == "completed"


def test_bad_body_raises_bad_response_without_payload(t2: T2Sandbox) -> None:
    t2.state.set_raw_detail(
        SEED_CALL_ID,
        {"success": True, "call": {"call_id": SEED_CALL_ID, "cost": "lots", "callee_phone": "9876543210"}},
    )

    with pytest.raises(Twenty2BadResponse) as caught:
        t2.client().get_call_detail(SEED_CALL_ID)

    err = caught.value
    assert (err.code, err.retryable) == ("BAD_SHAPE", False)
    assert "call.cost" in err.message
    assert "9876543210" not in err.message
    assert t2.state.request_count(DETAIL) == 1


def test_200_success_false_raises_bad_response(t2: T2Sandbox) -> None:
    t2.state.set_raw_detail(
        SEED_CALL_ID,
        {"success": False, "error": {"code": "INTERNAL_ERROR", "message": "oops", "status": 500}},
    )

    with pytest.raises(Twenty2BadResponse) as caught:
        t2.client().get_call_detail(SEED_CALL_ID)

    assert (caught.value.code, caught.value.http_status) == ("INTERNAL_ERROR", 200)
    assert t2.state.request_count(DETAIL) == 1


def test_200_not_json_that_persists_raises_unavailable_after_the_retries(t2: T2Sandbox) -> None:
    t2.state.set_raw_detail(SEED_CALL_ID, "<html>maintenance</html>")

    with pytest.raises(Twenty2Unavailable) as caught:
        t2.client().get_call_detail(SEED_CALL_ID)

    assert (caught.value.code, caught.value.http_status) == ("NOT_JSON", 200) and caught.value.retryable
    assert "an HTML page" in caught.value.message
    assert t2.state.request_count(DETAIL) == ATTEMPTS


def test_detail_of_other_call_raises_bad_response(t2: T2Sandbox) -> None:
    t2.state.set_raw_detail(SEED_CALL_ID, t2.state.render_detail(t2.state.get_call(SEED_FAILED_CALL_ID), t2.api_url))

    with pytest.raises(Twenty2BadResponse) as caught:
        t2.client().get_call_detail(SEED_CALL_ID)

    assert caught.value.code == "CALL_ID_MISMATCH"


# --- transcripts --------------------------------------------------------------------------------------------


def test_transcript_fetched_without_credentials_to_storage_host(t2: T2Sandbox) -> None:
    (call_id,) = t2.state.add_generated_calls(1, seed=3)
    t2.state.finish(call_id, status="completed", transcript="Agent: Namaste!\nUser: कल सुबह 10 बजे call karna.\n")
    hook: list[int] = []

    text = t2.client(before_request=lambda: hook.append(1)).fetch_transcript(_future_link(t2, call_id, "localhost"))

    assert text == "Agent: Namaste!\nUser: कल सुबह 10 बजे call karna.\n"
    stats = t2.state.stats()
    assert stats["by_path"] == {f"/api/storage/transcripts/{call_id}.txt": 1}
    assert stats["storage_requests_with_authorization"] == 0
    assert hook == []  # another host: not counted against the API rate limit


def test_transcript_from_detail_link_fetched(t2: T2Sandbox) -> None:
    (call_id,) = t2.state.add_generated_calls(1, seed=5)
    t2.state.finish(call_id, status="completed", transcript="Agent: Hello\nUser: Haan ji\n")
    client = t2.client()

    detail = client.get_call_detail(call_id)

    assert client.fetch_transcript(detail.transcript) == "Agent: Hello\nUser: Haan ji\n"


def test_transcript_expired_link_not_requested(t2: T2Sandbox) -> None:
    client = t2.client()
    detail = client.get_call_detail(SEED_CALL_ID)  # its links expired on 2025-01-25

    assert client.fetch_transcript(detail.transcript) is None
    assert t2.state.request_count() == 1  # only the detail


def test_transcript_missing_or_unavailable_is_none(t2: T2Sandbox) -> None:
    client = t2.client()

    assert client.fetch_transcript(None) is None
    assert client.fetch_transcript(Link(available=False)) is None
    assert t2.state.request_count() == 0


def test_transcript_storage_403_is_none(t2: T2Sandbox) -> None:
    # The detail said the link is valid, storage says expired (clocks differ): treated as gone.
    link = _future_link(t2, SEED_CALL_ID)

    assert t2.client().fetch_transcript(link) is None
    assert t2.state.stats()["by_status"] == {"403": 1}


def test_transcript_storage_404_is_none(t2: T2Sandbox) -> None:
    assert t2.client().fetch_transcript(_future_link(t2, "call_nosuchcall")) is None
    assert t2.state.stats()["by_status"] == {"404": 1}


def test_transcript_storage_5xx_retried_then_unavailable(t2: T2Sandbox) -> None:
    (call_id,) = t2.state.add_generated_calls(1, seed=7)
    t2.state.fail_next(ATTEMPTS, 503, scope="storage")

    with pytest.raises(Twenty2Unavailable):
        t2.client(retry=replace(TWENTY2, attempts=ATTEMPTS)).fetch_transcript(_future_link(t2, call_id))

    assert t2.state.request_count(f"/api/storage/transcripts/{call_id}.txt") == ATTEMPTS


def test_transcript_capped_at_one_megabyte(t2: T2Sandbox) -> None:
    (call_id,) = t2.state.add_generated_calls(1, seed=9)
    t2.state.finish(call_id, status="completed", transcript="a" * (2 * 1024 * 1024))

    text = t2.client().fetch_transcript(_future_link(t2, call_id))

    assert text is not None and len(text) == 1024 * 1024


# --- TLS ----------------------------------------------------------------------------------------------------


def test_tls_without_sandbox_ca_fails(t2: T2Sandbox) -> None:
    settings = t2.settings_with(crm_sync_ca_bundle="")  # system store: does not know the sandbox CA

    with pytest.raises(Twenty2Unavailable) as caught:
        t2.client(settings=settings, retry=replace(TWENTY2, attempts=1)).get_call_detail(SEED_CALL_ID)

    assert caught.value.code == "TLS_ERROR"
    assert t2.state.request_count() == 0
