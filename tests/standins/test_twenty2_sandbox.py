"""The Twenty2 sandbox's documented behaviours over real HTTPS: auth, errors, rate limit, webhook shape."""

from __future__ import annotations

import base64
import copy
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from support.twenty2_server import T2Sandbox

from standins.twenty2 import SEED_CALL_ID, SEED_FAILED_CALL_ID, Twenty2State, generate_calls
from worker.twenty2.models import CallDetail, WebhookEvent

# The docs' examples, verbatim (tests/fixtures/reference/twenty2-get-call-detail.txt and twenty2-api.md §5).
DOCUMENTED_DETAIL: dict[str, Any] = {
    "success": True,
    "call": {
        "call_id": "call_9c4d7e12ab",
        "agent_id": "69de483c68b23495c853b43a",
        "status": "completed",
        "direction": "outbound",
        "callee_phone": "9999999999",
        "caller_phone": "9999999999",
        "duration_seconds": 94,
        "billed_duration_seconds": 94,
        "cost": "15.67 INR",
        "started_at": "2024-12-25T10:00:00Z",
        "ended_at": "2024-12-25T10:01:34Z",
    },
    "input_parameters": {"agentName": "Rohit"},
    "output_parameters": {"interested": "yes", "callback_requested": "yes", "callback_time": "Tomorrow 11am"},
    "recording": {
        "url": "https://storage.twentytwo.in/recordings/call_9c4d7e12ab.mp3",
        "expires_at": "2025-01-25T10:01:34Z",
    },
    "transcript": {
        "url": "https://storage.twentytwo.in/transcripts/call_9c4d7e12ab.txt",
        "expires_at": "2025-01-25T10:01:34Z",
    },
}
DOCUMENTED_WEBHOOK: dict[str, Any] = {
    "event": "call.failed",
    "event_id": "evt_dd640228-c82f-494f-b0ff-4ef3db3aaf3b",
    "timestamp": "2026-05-22T07:18:39.684Z",
    "workspace_id": "69bcb7e7cf2a02ecc7a28e17",
    "assistant_id": "6a02dc5d92b9cbce7962a2b5",
    "assistant_name": "Varsha",
    "call": {
        "call_id": "6a100328ba090039ac8610a2",
        "direction": "outbound",
        "status": "failed",
        "from_number": "7971441943",
        "to_number": "9871532305",
        "started_at": "2026-05-22T07:18:30.092Z",
        "answered_at": None,
        "ended_at": "2026-05-22T07:18:39.684Z",
        "duration_seconds": 0,
        "billed_duration_seconds": 0,
        "call_cost_inr": 0,
        "disconnection_reason": "unanswered",
    },
    "campaign": {"campaign_id": "6a100328ba090039ac8610a0", "campaign_name": "web test"},
    "contact": {
        "phone_number": "9871532305",
        "input_variables": {"customerName": "Lakshay", "productInCart": "Shoes"},
    },
    "output_variables": {},
    "recording": {"available": False, "url": None},
    "transcript": {"available": False},
}
TRIGGER_BODY: dict[str, Any] = {
    "agent_id": "69de483c68b23495c853b43a",
    "callee_phone": "9876543210",
    "caller_phone": "9999999999",
    "input_parameters": {"agentName": "Rohit"},
}


def _detail(t2: T2Sandbox, call_id: str = SEED_CALL_ID, **headers: str) -> requests.Response:
    return t2.session().get(
        f"{t2.api_url}/call/detail", params={"call_id": call_id}, headers=t2.auth_headers(**headers)
    )


def _shape_a(response: requests.Response, status: int, code: str) -> None:
    body = response.json()
    assert response.status_code == status
    assert body["success"] is False
    assert (body["error"]["code"], body["error"]["status"]) == (code, status)
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


# --- documented data ----------------------------------------------------------------------------------------


def test_seed_detail_is_the_documented_example_with_local_links(t2: T2Sandbox) -> None:
    expected = copy.deepcopy(DOCUMENTED_DETAIL)
    expected["recording"]["url"] = f"{t2.api_url}/storage/recordings/call_9c4d7e12ab.mp3"
    expected["transcript"]["url"] = f"{t2.api_url}/storage/transcripts/call_9c4d7e12ab.txt"

    response = _detail(t2)

    assert response.status_code == 200
    assert response.json() == expected


def test_failed_seed_detail(t2: T2Sandbox) -> None:
    body = _detail(t2, SEED_FAILED_CALL_ID).json()

    assert body["call"]["status"] == "failed"
    assert body["call"]["started_at"] == "2026-05-22T07:18:30.092Z"
    assert body["output_parameters"] == {}
    assert body["recording"] is None and body["transcript"] is None


def test_call_logs_documented_shape(t2: T2Sandbox) -> None:
    response = t2.session().get(f"{t2.api_url}/call/logs", headers=t2.auth_headers())

    body = response.json()
    assert response.status_code == 200 and body["success"] is True
    seed = next(c for c in body["calls"] if c["call_id"] == SEED_CALL_ID)
    assert seed == {k: v for k, v in DOCUMENTED_DETAIL["call"].items() if k != "billed_duration_seconds"}
    assert {c["call_id"] for c in body["calls"]} == {SEED_CALL_ID, SEED_FAILED_CALL_ID}


# --- auth ---------------------------------------------------------------------------------------------------


def test_missing_authorization_401_shape_a(t2: T2Sandbox) -> None:
    response = t2.session().get(f"{t2.api_url}/call/detail", params={"call_id": SEED_CALL_ID})

    _shape_a(response, 401, "UNAUTHORIZED")


def test_wrong_secret_401_shape_a(t2: T2Sandbox) -> None:
    token = base64.b64encode(f"{t2.state.api_key}:nope".encode()).decode()

    _shape_a(_detail(t2, Authorization=f"Basic {token}"), 401, "UNAUTHORIZED")


def test_bearer_key_401_shape_a(t2: T2Sandbox) -> None:
    # The Getting Started page shows Bearer; the endpoint pages (followed here) require Basic key:secret.
    _shape_a(_detail(t2, Authorization=f"Bearer {t2.state.api_key}"), 401, "UNAUTHORIZED")


def test_wrong_workspace_403_shape_a(t2: T2Sandbox) -> None:
    _shape_a(_detail(t2, **{"x-workspace-id": "111111111111111111111111"}), 403, "FORBIDDEN")


def test_missing_workspace_header_422_shape_b(t2: T2Sandbox) -> None:
    headers = t2.auth_headers()
    del headers["x-workspace-id"]

    response = t2.session().get(f"{t2.api_url}/call/detail", params={"call_id": SEED_CALL_ID}, headers=headers)

    assert response.status_code == 422
    assert response.json() == {
        "success": False,
        "statusCode": 422,
        "message": "Validation errors",
        "validationErrors": {"x-workspace-id": ["Required"]},
    }


# --- detail errors ------------------------------------------------------------------------------------------


def test_missing_call_id_422_shape_b(t2: T2Sandbox) -> None:
    response = t2.session().get(f"{t2.api_url}/call/detail", headers=t2.auth_headers())

    assert response.status_code == 422
    assert response.json() == {
        "success": False,
        "statusCode": 422,
        "message": "Validation errors",
        "validationErrors": {"call_id": ["Required"]},
    }


def test_unknown_call_404_shape_a(t2: T2Sandbox) -> None:
    _shape_a(_detail(t2, "call_unknown"), 404, "CALL_NOT_FOUND")


def test_unknown_route_404_shape_a(t2: T2Sandbox) -> None:
    response = t2.session().get(f"{t2.api_url}/calls", headers=t2.auth_headers())

    _shape_a(response, 404, "NOT_FOUND")


# --- rate limit ---------------------------------------------------------------------------------------------


def test_rate_limit_60_per_minute_then_429_shape_a(t2: T2Sandbox) -> None:
    statuses = [_detail(t2).status_code for _ in range(60)]
    over = _detail(t2)

    assert statuses == [200] * 60
    _shape_a(over, 429, "RATE_LIMIT_EXCEEDED")
    assert "Retry-After" not in over.headers  # none documented


def test_rate_limit_retry_after_header_when_switched_on(t2: T2Sandbox) -> None:
    t2.state.configure(rate_limit_per_minute=2, rate_limit_retry_after=True)
    for _ in range(2):
        assert _detail(t2).status_code == 200

    over = _detail(t2)

    assert over.status_code == 429
    assert 1 <= int(over.headers["Retry-After"]) <= 60


def test_rate_limit_window_slides() -> None:
    ticks = [1000.0]
    state = Twenty2State(rate_limit_per_minute=2, clock=lambda: ticks[0])
    assert state._admit("ws") is None and state._admit("ws") is None

    assert state._admit("ws") == pytest.approx(60.0)
    ticks[0] += 60.0
    assert state._admit("ws") is None
    assert state._admit("other-ws") is None  # per workspace


def test_rate_limit_lifted(t2: T2Sandbox) -> None:
    t2.state.configure(rate_limit_per_minute=None)

    assert {_detail(t2).status_code for _ in range(65)} == {200}


# --- trigger ------------------------------------------------------------------------------------------------


def test_trigger_queues_a_call_not_final_until_finished(t2: T2Sandbox) -> None:
    # 22:00 IST: outside the calling hours, so the call waits queued (the dialer's own tests cover the rest)
    t2.state.dialer.clock.set(datetime(2030, 1, 10, 16, 30, tzinfo=UTC))
    session = t2.session()
    response = session.post(f"{t2.api_url}/agent/trigger-outbound-call", json=TRIGGER_BODY, headers=t2.auth_headers())

    body = response.json()
    assert response.status_code == 200
    assert body == {
        "success": True,
        "call_id": body["call_id"],
        "status": "initiated",
        "message": "Call queued successfully.",
    }
    assert re.fullmatch(r"call_[0-9a-f]{10}", body["call_id"])
    queued = CallDetail.model_validate(_detail(t2, body["call_id"]).json())
    assert queued.call.status == "queued" and not queued.call.is_final
    t2.state.finish(body["call_id"], output_parameters={"interested": "yes"})
    done = CallDetail.model_validate(_detail(t2, body["call_id"]).json())
    assert done.call.is_final and done.output_parameters == {"interested": "yes"}
    assert done.input_parameters == {"agentName": "Rohit"}


def test_trigger_missing_field_422_shape_b(t2: T2Sandbox) -> None:
    body = {k: v for k, v in TRIGGER_BODY.items() if k != "caller_phone"}

    response = t2.session().post(f"{t2.api_url}/agent/trigger-outbound-call", json=body, headers=t2.auth_headers())

    assert response.status_code == 422
    assert response.json() == {
        "success": False,
        "statusCode": 422,
        "message": "Validation errors",
        "validationErrors": {"caller_phone": ["Required"]},
    }


def test_trigger_unpublished_agent_400_shape_a(t2: T2Sandbox) -> None:
    body = {**TRIGGER_BODY, "agent_id": "000000000000000000000000"}

    response = t2.session().post(f"{t2.api_url}/agent/trigger-outbound-call", json=body, headers=t2.auth_headers())

    _shape_a(response, 400, "INVALID_ASSISTANT")


def test_trigger_number_with_country_code_400_shape_a(t2: T2Sandbox) -> None:
    body = {**TRIGGER_BODY, "callee_phone": "+919876543210"}

    response = t2.session().post(f"{t2.api_url}/agent/trigger-outbound-call", json=body, headers=t2.auth_headers())

    _shape_a(response, 400, "INVALID_NUMBER")


# --- webhook payload ----------------------------------------------------------------------------------------


def test_webhook_payload_of_failed_seed_is_the_documented_example(t2: T2Sandbox) -> None:
    payload = t2.state.webhook_payload(SEED_FAILED_CALL_ID)

    assert re.fullmatch(r"evt_[0-9a-f-]{36}", payload["event_id"])
    assert {**payload, "event_id": DOCUMENTED_WEBHOOK["event_id"]} == DOCUMENTED_WEBHOOK


def test_webhook_payload_completed_call(t2: T2Sandbox) -> None:
    payload = t2.state.webhook_payload(SEED_CALL_ID)

    assert payload["event"] == "call.completed"
    assert payload["call"]["call_cost_inr"] == 15.67
    assert payload["call"]["answered_at"] == "2024-12-25T10:00:00.000Z"
    assert payload["output_variables"] == DOCUMENTED_DETAIL["output_parameters"]
    assert payload["recording"] == {
        "available": True,
        "url": f"{t2.api_url}/storage/recordings/{SEED_CALL_ID}.mp3",
    }
    assert payload["transcript"] == {"available": True}
    assert WebhookEvent.model_validate(payload).the_call_id == SEED_CALL_ID


def test_webhook_event_id_new_per_delivery(t2: T2Sandbox) -> None:
    first, second = (t2.state.webhook_payload(SEED_CALL_ID) for _ in range(2))

    assert first["event_id"] != second["event_id"]
    assert {**first, "event_id": ""} == {**second, "event_id": ""}


def test_webhook_payload_over_admin_endpoint(t2: T2Sandbox) -> None:
    response = t2.session().get(f"{t2.root_url}/_sandbox/calls/{SEED_FAILED_CALL_ID}/webhook")

    assert response.status_code == 200
    assert {**response.json(), "event_id": DOCUMENTED_WEBHOOK["event_id"]} == DOCUMENTED_WEBHOOK


# --- storage ------------------------------------------------------------------------------------------------


def test_transcript_served_until_expiry_then_403(t2: T2Sandbox) -> None:
    (call_id,) = t2.state.add_generated_calls(1, seed=1)
    t2.state.finish(call_id, status="completed", transcript="Agent: Namaste\nUser: Haan ji, kal 11 baje\n")
    url = f"{t2.api_url}/storage/transcripts/{call_id}.txt"
    session = t2.session()

    served = session.get(url)
    t2.state.now = lambda: datetime(2100, 1, 1, tzinfo=UTC)
    expired = session.get(url)

    assert served.status_code == 200 and served.text == "Agent: Namaste\nUser: Haan ji, kal 11 baje\n"
    assert served.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert expired.status_code == 403 and "expired" in expired.text


def test_storage_not_rate_limited_nor_authenticated(t2: T2Sandbox) -> None:
    t2.state.configure(rate_limit_per_minute=1)
    session = t2.session()

    statuses = {session.get(f"{t2.api_url}/storage/recordings/{SEED_CALL_ID}.mp3").status_code for _ in range(3)}

    assert statuses == {403}  # the seed's links expired in 2025; but never 401 or 429


# --- generated calls, pending, faults, admin ----------------------------------------------------------------


def test_generated_calls_varied_and_valid() -> None:
    calls = generate_calls(200, seed=42, now=datetime(2026, 6, 1, 12, 0, tzinfo=UTC))

    assert len({c.call_id for c in calls}) == 200
    assert {"completed", "failed"} <= {c.status for c in calls}
    assert any("baje" in str(c.output_parameters.get("callback_time", "")) for c in calls)
    assert any(re.search(r"[\u0900-\u097F]", str(c.output_parameters.get("callback_time", ""))) for c in calls)
    assert any(c.callee_phone.startswith("+91") for c in calls)
    state = Twenty2State()
    for call in calls:
        detail = CallDetail.model_validate(state.render_detail(call, "https://127.0.0.1/api"))
        assert detail.call.is_final
        assert (detail.transcript is not None) == (call.status == "completed")


def test_generated_calls_deterministic_with_lead_ids() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    first = generate_calls(5, seed=7, now=now, lead_ids=["00Q000000000001AAA"], phones=["9811111111"])
    second = generate_calls(5, seed=7, now=now, lead_ids=["00Q000000000001AAA"], phones=["9811111111"])

    assert [c.model_dump() for c in first] == [c.model_dump() for c in second]
    assert {c.input_parameters["salesforce_id"] for c in first} == {"00Q000000000001AAA"}
    assert {c.callee_phone for c in first} == {"9811111111"}


def test_pending_call_in_progress_then_final(t2: T2Sandbox) -> None:
    t2.state.set_pending(SEED_CALL_ID, fetches=1)

    pending = _detail(t2).json()
    final = _detail(t2).json()

    assert pending["call"]["status"] == "in-progress" and pending["call"]["ended_at"] is None
    assert pending["output_parameters"] == {} and pending["transcript"] is None
    assert final["call"]["status"] == "completed"


def test_fault_next_n_then_normal_with_stats(t2: T2Sandbox) -> None:
    t2.state.fail_next(2, 503)

    statuses = [_detail(t2).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    stats = t2.state.stats()
    assert stats["requests"] == 3 and stats["by_status"] == {"200": 1, "503": 2} and stats["faults_injected"] == 2


def test_fault_probability_seeded(t2: T2Sandbox) -> None:
    def run() -> list[int]:
        t2.state.reset()
        t2.state.fail_randomly(0.5, 500)
        return [_detail(t2).status_code for _ in range(20)]

    first, second = run(), run()

    assert first == second
    assert set(first) == {200, 500}


def test_fault_hang_answers_504_after_the_hang(t2: T2Sandbox) -> None:
    t2.state.hang_next(1, seconds=0.3)

    started = time.monotonic()
    response = _detail(t2)

    assert response.status_code == 504
    assert time.monotonic() - started >= 0.3


def test_fault_garble_truncated_cuts_the_200_in_half_then_normal(t2: T2Sandbox) -> None:
    whole = _detail(t2).content
    t2.state.garble_next(1, "truncated")

    cut, after = _detail(t2), _detail(t2)

    assert cut.status_code == 200 and cut.content == whole[: len(whole) // 2]
    assert int(cut.headers["Content-Length"]) == len(cut.content)  # a clean cut: only the syntax shows it
    with pytest.raises(ValueError):
        cut.json()
    assert after.content == whole


def test_fault_garble_html_answers_a_maintenance_page_with_200(t2: T2Sandbox) -> None:
    t2.state.garble_next(1, "html")

    page = _detail(t2)

    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.text.startswith("<!DOCTYPE html>") and _detail(t2).json()["success"] is True


def test_fault_garble_still_authenticates(t2: T2Sandbox) -> None:
    t2.state.garble_next(1, "html")
    response = t2.session().get(f"{t2.api_url}/call/detail", params={"call_id": SEED_CALL_ID})
    _shape_a(response, 401, "UNAUTHORIZED")  # the page replaces an answer, never the authentication


def test_latency_added(t2: T2Sandbox) -> None:
    t2.state.configure(latency_ms=150)

    started = time.monotonic()
    assert _detail(t2).status_code == 200
    assert time.monotonic() - started >= 0.15


def test_admin_endpoints_control_faults_calls_and_reset(t2: T2Sandbox) -> None:
    session = t2.session()
    admin = f"{t2.root_url}/_sandbox"

    added = session.post(f"{admin}/calls", json={"generate": 3, "seed": 1}).json()["call_ids"]
    session.post(f"{admin}/faults", json={"status": 429, "count": 1}).raise_for_status()
    session.post(f"{admin}/calls/{added[0]}/pending", params={"fetches": 1}).raise_for_status()
    limited = _detail(t2, added[0])
    pending = _detail(t2, added[0])
    stats = session.get(f"{admin}/stats").json()
    listed = session.get(f"{admin}/calls").json()["call_ids"]
    session.post(f"{admin}/reset").raise_for_status()

    assert len(added) == 3 and set(added) <= set(listed)
    _shape_a(limited, 429, "RATE_LIMIT_EXCEEDED")
    assert pending.json()["call"]["status"] == "in-progress"
    assert stats["by_status"] == {"200": 1, "429": 1}
    assert t2.state.call_ids() == [SEED_CALL_ID, SEED_FAILED_CALL_ID]
    assert t2.state.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [({"page": "0"}, "page"), ({"limit": "x"}, "limit"), ({"cursor": "!!!"}, "cursor")],
)
def test_call_logs_bad_page_query_422_shape_b(t2: T2Sandbox, params: dict[str, str], field: str) -> None:
    t2.state.configure(logs_pagination="cursor" if field == "cursor" else "page")

    response = t2.session().get(f"{t2.api_url}/call/logs", params=params, headers=t2.auth_headers())

    assert response.status_code == 422 and field in response.json()["validationErrors"]


def test_call_logs_page_mode_shape(t2: T2Sandbox) -> None:
    t2.state.add_generated_calls(5, seed=9)
    t2.state.configure(logs_pagination="page", logs_page_size=3)
    session = t2.session()

    first = session.get(f"{t2.api_url}/call/logs", headers=t2.auth_headers()).json()
    second = session.get(f"{t2.api_url}/call/logs", params={"page": "2"}, headers=t2.auth_headers()).json()

    assert len(first["calls"]) == 3 and first["pagination"] == {
        "page": 1,
        "limit": 3,
        "total": 7,
        "total_pages": 3,
        "has_more": True,
    }
    assert len(second["calls"]) == 3 and second["pagination"]["has_more"] is True
    assert not {c["call_id"] for c in first["calls"]} & {c["call_id"] for c in second["calls"]}
