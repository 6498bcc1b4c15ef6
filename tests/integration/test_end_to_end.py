"""The real processes from the Procfile (web, worker, beat) against both sandboxes and a private Redis.

A webhook posted to the intake goes through Redis to a Celery worker, which fetches the call from the
Twenty2 sandbox and writes to the Salesforce sandbox, over HTTPS with the sandbox CA.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from standins.stack.processes import Stack, start_local_service
from standins.stack.redis_server import RedisServer
from standins.stack.sandboxes import SEED_CALL, Sandboxes
from worker.ledger import Ledger, Record, State
from worker.runtime import Runtime

SECRET = "e2e-webhook-secret-123"


class Service:
    def __init__(self, intake: str, ledger: Ledger, runtime: Runtime, stack: Stack) -> None:
        self.intake, self.ledger, self.runtime, self.stack = intake, ledger, runtime, stack

    def post(self, payload: dict[str, Any]) -> requests.Response:
        return requests.post(f"{self.intake}/webhooks/twenty2/{SECRET}", json=payload, timeout=5)

    def wait(self, call_id: str, states: set[State], timeout: float = 30) -> Record:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.ledger.get(call_id)
            if record is not None and record.state in states:
                return record
            time.sleep(0.1)
        logs = "\n".join(p.read_text()[-3000:] for p in self.stack.log_dir.glob("*.log"))
        raise AssertionError(f"{call_id} not in {states}: {self.ledger.get(call_id)}\n{logs}")


@pytest.fixture(scope="module")
def service(sandboxes: Sandboxes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    work: Path = tmp_path_factory.mktemp("e2e")
    redis_server = RedisServer(work / "redis").start()
    fast_retries = {"WORKER_CONCURRENCY": "4", "CRM_SYNC_RETRY_BASE_SECONDS": "0.5", "CRM_SYNC_RETRY_MAX_SECONDS": "2"}
    stack, intake = start_local_service(
        sandboxes.env, redis_url=redis_server.url, secret=SECRET, work=work, extra=fast_retries
    )
    runtime = Runtime(sandboxes.settings(redis_url=redis_server.url))
    yield Service(intake, Ledger(redis.Redis.from_url(redis_server.url)), runtime, stack)
    stack.stop()
    redis_server.stop()


def tasks(boxes: Sandboxes, external_id: str) -> list[dict[str, Any]]:
    return [t for t in boxes.salesforce.records("Task") if t.get("Twenty2_Call_Id__c") == external_id]


def snapshot(boxes: Sandboxes) -> list[tuple[str, str]]:
    return sorted(
        (r["Id"], r["LastModifiedDate"]) for o in ("Lead", "Task", "Contact") for r in boxes.salesforce.records(o)
    )


def test_seed_call_flows_from_webhook_to_salesforce_once(boxes: Sandboxes, service: Service) -> None:
    payload = boxes.twenty2.webhook_payload(SEED_CALL, event="call.completed")
    response = service.post(copy.deepcopy(payload))
    assert response.status_code == 200 and response.json()["status"] == "queued"
    record = service.wait(SEED_CALL, {State.SYNCED})

    [call_task] = tasks(boxes, SEED_CALL)
    assert call_task["CallDurationInSeconds"] == 94 and call_task["TaskSubtype"] == "Call"
    assert "recordings/call_9c4d7e12ab.mp3" in call_task["Description"]
    [callback] = tasks(boxes, SEED_CALL + "-callback")
    assert callback["IsReminderSet"] and "Tomorrow 11am" in callback["Subject"]
    lead = boxes.salesforce.get(call_task["WhoId"])
    assert lead is not None and (lead["Status"], lead["Rating"]) == ("Working - Contacted", "Hot")
    assert record.salesforce_ids["callTask"] == call_task["Id"]

    # The same call posted again (a new delivery id) changes nothing in Salesforce.
    before = snapshot(boxes)
    again = service.post({**copy.deepcopy(payload), "event_id": "evt_redelivered"})
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    time.sleep(1.0)
    assert snapshot(boxes) == before

    # An explicit replay re-syncs it: still one call Task and one callback Task.
    service.ledger.accept(SEED_CALL, source="replay", force=True)
    service.runtime.enqueue(SEED_CALL)
    service.wait(SEED_CALL, {State.SYNCED})
    assert len(tasks(boxes, SEED_CALL)) == 1 and len(tasks(boxes, SEED_CALL + "-callback")) == 1


def test_retryable_salesforce_error_is_retried_by_beat(boxes: Sandboxes, service: Service) -> None:
    boxes.salesforce.set_faults(fail_next=1, fail_kind="lock", fail_scope=["composite"])
    call_id = boxes.twenty2.add_call(callee_phone="9876543210", output_parameters={"interested": "no"})
    assert service.post(boxes.twenty2.webhook_payload(call_id)).status_code == 200
    record = service.wait(call_id, {State.SYNCED}, timeout=40)
    assert record.attempts == 2 and record.failures == 1
    history = [h.get("event") for h in service.ledger.history(call_id)]
    assert "retry_scheduled" in history
    assert len(tasks(boxes, call_id)) == 1
