"""The Twenty2 stand-in's trigger-outbound-call as documented: the calling hours (a call triggered outside
09:00–21:00 IST waits for 09:00), at most 3 calls at once (a 4th: 429 RATE_LIMIT_EXCEEDED, format A), a call
that later completes or fails and posts its webhook to the configured URL; the clock moved by the tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from support.twenty2_server import T2Sandbox

from standins.stack.ports import free_port
from standins.twenty2.dialer import Outcome

BODY = {"agent_id": "69de483c68b23495c853b43a", "callee_phone": "9876543210", "caller_phone": "9999999999"}
NIGHT = datetime(2030, 1, 10, 16, 30, tzinfo=UTC)  # 22:00 IST
MORNING = datetime(2030, 1, 11, 3, 30, tzinfo=UTC)  # 09:00 IST next day


def trigger(t2: T2Sandbox, **changes: Any) -> requests.Response:
    return t2.session().post(
        f"{t2.api_url}/agent/trigger-outbound-call", json={**BODY, **changes}, headers=t2.auth_headers()
    )


def status_of(t2: T2Sandbox, call_id: str) -> str:
    logs = t2.session().get(f"{t2.api_url}/call/logs", headers=t2.auth_headers()).json()
    return next(c["status"] for c in logs["calls"] if c["call_id"] == call_id)


def test_trigger_needs_credentials(t2: T2Sandbox) -> None:
    response = t2.session().post(f"{t2.api_url}/agent/trigger-outbound-call", json=BODY)
    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"
    assert t2.state.dialer.placed == {}


def test_trigger_at_night_waits_for_nine_ist(t2: T2Sandbox) -> None:
    t2.state.dialer.clock.set(NIGHT)
    call_id = trigger(t2).json()["call_id"]
    assert status_of(t2, call_id) == "queued"
    t2.state.dialer.clock.set(MORNING)
    assert status_of(t2, call_id) == "in-progress"
    placed = t2.state.dialer.placed[call_id]
    assert placed.starts_at == MORNING and placed.triggered_at.replace(microsecond=0) == NIGHT
    t2.state.dialer.clock.advance(70)
    assert status_of(t2, call_id) == "completed"
    detail = t2.session().get(f"{t2.api_url}/call/detail", params={"call_id": call_id}, headers=t2.auth_headers())
    assert (
        detail.json()["call"]["started_at"] == "2030-01-11T03:30:00Z" and detail.json()["call"]["cost"] == "10.00 INR"
    )


def test_fourth_concurrent_call_refused_429(t2: T2Sandbox) -> None:
    t2.state.dialer.clock.set(MORNING)
    ids = [trigger(t2, callee_phone=f"987654321{i}").json()["call_id"] for i in range(3)]
    fourth = trigger(t2, callee_phone="9876543219")
    assert fourth.status_code == 429
    assert fourth.json()["success"] is False and fourth.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert len(t2.state.dialer.placed) == 3 and t2.state.dialer.refused_concurrency == 1
    t2.state.dialer.clock.advance(70)  # the three end
    assert all(status_of(t2, i) == "completed" for i in ids)
    assert trigger(t2, callee_phone="9876543219").status_code == 200


def test_queued_calls_do_not_count_as_in_progress(t2: T2Sandbox) -> None:
    t2.state.dialer.clock.set(NIGHT)
    assert [trigger(t2, callee_phone=f"98765432{i:02d}").status_code for i in range(5)] == [200] * 5


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/twenty2", got
    finally:
        server.shutdown()


def test_ended_calls_post_their_webhook(t2: T2Sandbox, receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, got = receiver
    t2.state.dialer.webhook_url = url
    t2.state.dialer.outcome_for = lambda phone, params: Outcome(
        status="failed" if phone.endswith("0") else "completed", duration=30, output_parameters={"interested": "yes"}
    )
    t2.state.dialer.clock.set(MORNING)
    failed = trigger(t2, callee_phone="9876543210", input_parameters={"salesforce_id": "00Q5g0000000148EAA"})
    done = trigger(t2, callee_phone="9876543211").json()["call_id"]
    t2.state.dialer.clock.advance(40)
    t2.state.dialer.tick()
    by_id = {event["call"]["call_id"]: event for event in got}
    assert set(by_id) == {failed.json()["call_id"], done}
    lost = by_id[failed.json()["call_id"]]
    assert lost["event"] == "call.failed" and lost["call"]["disconnection_reason"] == "unanswered"
    assert lost["contact"]["input_variables"] == {"salesforce_id": "00Q5g0000000148EAA"}
    assert by_id[done]["event"] == "call.completed" and by_id[done]["output_variables"] == {"interested": "yes"}


def test_lost_answer_still_places_the_call(t2: T2Sandbox) -> None:
    t2.state.dialer.clock.set(MORNING)
    t2.state.dialer.lose_next_answers(1)
    response = trigger(t2)
    with pytest.raises(ValueError):
        response.json()
    assert len(t2.state.dialer.placed) == 1
