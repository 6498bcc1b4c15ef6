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
from support.redis_at_rest import scan_redis_dir, stand_in_numbers

from standins.stack.processes import Stack, start_local_service
from standins.stack.redis_server import RedisServer
from standins.stack.sandboxes import SEED_CALL, Sandboxes
from worker.ledger import Ledger, Record, State
from worker.runtime import Runtime

SECRET = "e2e-webhook-secret-123"


class Service:
    def __init__(self, intake: str, ledger: Ledger, runtime: Runtime, stack: Stack, redis: RedisServer) -> None:
        self.intake, self.ledger, self.runtime, self.stack, self.redis = intake, ledger, runtime, stack, redis

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
    yield Service(intake, Ledger(redis.Redis.from_url(redis_server.url)), runtime, stack, redis_server)
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


def test_redis_files_hold_no_secret_or_full_number(boxes: Sandboxes, service: Service) -> None:
    """Last in this module: after the calls above (and one found by its number, read ahead), the Redis
    the processes wrote to holds no configured secret and no full number, in its AOF (every write since
    Redis started, overwritten and deleted values included) nor in an RDB of what it holds now."""
    lead = boxes.salesforce.insert_raw("Lead", {"LastName": "Rao", "Company": "Rao Steel", "Phone": "+91 93456 12078"})
    call_id = boxes.twenty2.add_call(callee_phone="093456-12078", output_parameters={"interested": "yes"})
    assert service.post(boxes.twenty2.webhook_payload(call_id)).status_code == 200
    service.wait(call_id, {State.SYNCED})
    assert tasks(boxes, call_id)[0]["WhoId"] == lead
    time.sleep(1.2)  # appendfsync everysec: the last second reaches the file
    secrets = [SECRET, *(v for k, v in boxes.env.items() if k.endswith(("_KEY", "_SECRET")))]
    numbers = stand_in_numbers(boxes.twenty2, boxes.salesforce)
    scan = scan_redis_dir(
        service.redis.directory, secrets=secrets, numbers=numbers, expect=[call_id], url=service.redis.url
    )
    print(f"scanned {scan.files} and {scan.keys} keys for {len(secrets)} secrets and {len(numbers)} numbers")
    assert scan.missing == {"AOF": [], "RDB": []} and sum(scan.files.values()) > 5_000
    assert "9345612078" in numbers and scan.leaks == {}
