"""Holding and retrying the way the services mean it, against both stand-ins and a real Redis:

- a ``200`` from Twenty2 whose body is garbled (a detail that is not JSON, a transcript that is a web page)
  is retried like a 5xx and fails, with the reason, only when it persists;
- Salesforce's ``REQUEST_LIMIT_EXCEEDED`` is sorted by the limit it names: the daily allowance
  (``TotalRequests``) holds, and a probe of ``GET /limits`` ends the hold as soon as the allowance is back;
  a concurrent-request limit is retried within seconds and holds nobody else;
- an operator's ``crm-sync replay`` is never held, and says plainly when Salesforce still refuses.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from standins.stack.sandboxes import SEED_CALL, Sandboxes
from worker.cli import main
from worker.runtime import Runtime
from worker.sync.services import Services
from worker.sync.stream import sync_and_record
from worker.twenty2.client import Twenty2Client

DETAIL = "/api/call/detail"
#: The Twenty2 client's attempts per sync (``worker.retry.TWENTY2``).
ATTEMPTS = 4


def runtime(boxes: Sandboxes, redis_url: str, **overrides: Any) -> Runtime:
    settings = boxes.settings(redis_url=redis_url, twenty2_rate_limit_per_minute=0, **overrides)
    return Runtime(settings, _services=Services.from_settings(settings, twenty2=Twenty2Client(settings)))


def add_call(boxes: Sandboxes, phone: str) -> str:
    return boxes.twenty2.add_call(callee_phone=phone, output_parameters={"interested": "yes"})


def call_with_transcript(boxes: Sandboxes) -> str:
    """A connected call whose transcript link is still valid (the docs' seed call's expired in 2025)."""
    return boxes.twenty2.add_call(
        callee_phone="9876543210",
        output_parameters={"interested": "yes"},
        transcript="Agent: Namaste, main aapki assistant bol rahi hoon.\nUser: Haan ji, boliye.\n",
        links_expire_at=datetime.now(UTC) + timedelta(days=1),
    )


def transcript_path(call_id: str) -> str:
    return f"/api/storage/transcripts/{call_id}.txt"


def call_tasks(boxes: Sandboxes, call_id: str) -> list[dict[str, Any]]:
    return [t for t in boxes.salesforce.records("Task") if t.get("Twenty2_Call_Id__c") == call_id]


def refusals(boxes: Sandboxes) -> int:
    """Requests the Salesforce stand-in refused with REQUEST_LIMIT_EXCEEDED so far."""
    return int(boxes.salesforce.stats()["errors"].get("REQUEST_LIMIT_EXCEEDED", 0))


# --- a garbled 200 from Twenty2 ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["truncated", "html"])
def test_detail_not_json_twice_then_good_is_synced(boxes: Sandboxes, redis_url: str, how: str) -> None:
    rt = runtime(boxes, redis_url)
    boxes.twenty2.garble_next(2, how)  # type: ignore[arg-type]
    assert sync_and_record(rt, SEED_CALL) == "synced"
    assert boxes.twenty2.request_count(DETAIL) == 3 and len(call_tasks(boxes, SEED_CALL)) == 1
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.failures == 0


def test_detail_not_json_that_persists_fails_with_the_reason(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url, crm_sync_max_attempts=2)
    boxes.twenty2.garble_next(100, "html")
    assert [sync_and_record(rt, SEED_CALL) for _ in range(2)] == ["queued", "failed"]
    assert boxes.twenty2.request_count(DETAIL) == 2 * ATTEMPTS  # bounded: attempts per sync × syncs
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.last_error is not None and record.failures == 2
    assert record.last_error["code"] == "NOT_JSON" and record.last_error["stage"] == "fetch"
    assert "not JSON (text/html" in record.last_error["message"] and "an HTML page" in record.last_error["message"]
    assert call_tasks(boxes, SEED_CALL) == []


def test_transcript_web_page_twice_then_text_is_synced(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    call_id = call_with_transcript(boxes)
    boxes.twenty2.garble_next(2, "html", scope="storage")
    assert sync_and_record(rt, call_id) == "synced"
    assert boxes.twenty2.request_count(transcript_path(call_id)) == 3
    [task] = call_tasks(boxes, call_id)
    assert "Haan ji, boliye." in task["Description"] and "back shortly" not in task["Description"]


def test_transcript_web_page_that_persists_fails_with_the_reason(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url, crm_sync_max_attempts=1)
    call_id = call_with_transcript(boxes)
    boxes.twenty2.garble_next(100, "html", scope="storage")
    assert sync_and_record(rt, call_id) == "failed"
    assert boxes.twenty2.request_count(transcript_path(call_id)) == ATTEMPTS
    record = rt.ledger.get(call_id)
    assert record is not None and record.last_error is not None and record.last_error["code"] == "NOT_TEXT"
    assert "web page instead of the transcript" in record.last_error["message"]
    assert call_tasks(boxes, call_id) == []


# --- the daily allowance: hold, probe, end the hold ---------------------------------------------------------


def test_daily_limit_restored_at_once_the_next_call_syncs_at_once(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url, crm_sync_limit_hold_seconds=600)
    boxes.salesforce.set_usage(used=10, maximum=10)
    assert sync_and_record(rt, SEED_CALL) == "queued"
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.last_error is not None and record.failures == 0
    assert record.last_error["code"] == "REQUEST_LIMIT_EXCEEDED" and "TotalRequests" in record.last_error["message"]
    boxes.salesforce.set_usage(used=0)  # the org's allowance is back right after the hit

    call_id = add_call(boxes, "9876543210")
    assert sync_and_record(rt, call_id) == "synced"  # the held sync's probe saw it: no wait
    usage = rt.budget.last()
    assert usage is not None and usage.source in ("limits", "header") and usage.remaining >= 5
    assert sync_and_record(rt, SEED_CALL) == "synced"  # the held call too, when it comes back


def test_while_the_allowance_stays_spent_one_probe_per_interval(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url, crm_sync_limit_hold_seconds=1.0)
    boxes.salesforce.set_usage(used=10, maximum=10)
    first, second, third, fourth = (add_call(boxes, f"98765432{i:02d}") for i in range(4))
    assert sync_and_record(rt, first) == "queued"  # Salesforce refused it: the reading says spent
    before = refusals(boxes)
    assert sync_and_record(rt, second) == "queued"  # held: this one probed (GET /limits, refused too)
    assert refusals(boxes) == before + 1
    assert sync_and_record(rt, third) == "queued"  # held on the shared reading: no probe of its own
    assert refusals(boxes) == before + 1
    boxes.salesforce.set_usage(used=0)
    time.sleep(1.1)  # one probe interval
    assert sync_and_record(rt, fourth) == "synced"
    usage = rt.budget.last()
    assert usage is not None and usage.remaining > 0


def cli(boxes: Sandboxes, redis_url: str, *args: str, **env: str) -> tuple[int, str]:
    environment = {**boxes.env, "REDIS_URL": redis_url, "TWENTY2_RATE_LIMIT_PER_MINUTE": "0", **env}
    result = CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)
    return result.exit_code, result.output


def test_operator_replay_syncs_at_once_while_the_workers_hold(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url, crm_sync_limit_hold_seconds=600)
    boxes.salesforce.set_usage(used=10, maximum=10)
    assert sync_and_record(rt, SEED_CALL) == "queued"
    other = add_call(boxes, "9876543210")
    assert sync_and_record(rt, other) == "queued"  # probed, refused: no worker probes for ten minutes
    boxes.salesforce.set_usage(used=0)

    code, output = cli(boxes, redis_url, "replay", SEED_CALL, CRM_SYNC_LIMIT_HOLD_SECONDS="600")
    assert code == 0, output
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.state.value == "synced" and len(call_tasks(boxes, SEED_CALL)) == 1


def test_operator_replay_says_plainly_when_salesforce_still_refuses(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    boxes.salesforce.set_usage(used=10, maximum=10)
    assert sync_and_record(rt, SEED_CALL) == "queued"
    code, output = cli(boxes, redis_url, "replay", SEED_CALL)
    assert code == 1
    assert "Salesforce still refuses: Salesforce REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded." in " ".join(
        output.split()
    )
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.state.value == "queued" and record.failures == 0

    code, output = cli(boxes, redis_url, "replay", "--queue", SEED_CALL)
    assert "Salesforce still refuses: 0 of 10 daily API requests left" in " ".join(output.split())


# --- a concurrent-request limit: retried in seconds, nobody else held --------------------------------------


def test_concurrent_limit_is_retried_in_seconds_and_holds_no_other_call(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    boxes.salesforce.set_faults(fail_next=1, fail_kind="concurrent", fail_scope=["write"])
    started = time.time()
    assert sync_and_record(rt, SEED_CALL) == "queued"
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.last_error is not None and record.next_attempt_at is not None
    assert (
        record.last_error["code"] == "REQUEST_LIMIT_EXCEEDED" and record.last_error["class"] == "SalesforceUnavailable"
    )
    assert "ConcurrentPerOrgLongTxn" in record.last_error["message"] and record.failures == 1
    assert record.next_attempt_at - started <= rt.settings.crm_sync_retry_base_seconds  # seconds, not a hold

    other = add_call(boxes, "9876543210")
    assert sync_and_record(rt, other) == "synced"  # not held
    usage = rt.budget.last()
    assert usage is not None and usage.remaining > 0
    assert sync_and_record(rt, SEED_CALL) == "synced"
