"""A call synced inline (fetch → plan → write → record) against both sandboxes and a real Redis.

One test per real-world case: how the Lead is found, what a failed call writes, what each kind of
failure leaves in the ledger.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from standins.salesforce import ValidationRule
from standins.stack.ports import free_port
from standins.stack.redis_server import RedisServer
from standins.stack.sandboxes import FAILED_CALL, SEED_CALL, Sandboxes
from worker.ledger import State
from worker.personal import PersonalData
from worker.phones import same_number
from worker.ratelimit import SharedRateLimit
from worker.runtime import Runtime
from worker.salesforce.lead_cache import LeadCache
from worker.sync.services import Services
from worker.sync.stream import sync_and_record, sync_one
from worker.twenty2.client import Twenty2Client

TEST_DATA = PersonalData((b"test-data-key-0123456789",))


def runtime(boxes: Sandboxes, redis_url: str, **overrides: Any) -> Runtime:
    settings = boxes.settings(redis_url=redis_url, twenty2_rate_limit_per_minute=0, **overrides)
    services = Services.from_settings(settings, twenty2=Twenty2Client(settings))
    return Runtime(settings, _services=services)


def lead(boxes: Sandboxes, name: str) -> dict[str, Any]:
    record = boxes.salesforce.get(boxes.salesforce.demo_ids[name])
    assert record is not None
    return record


def call_tasks(boxes: Sandboxes, call_id: str) -> list[dict[str, Any]]:
    return [t for t in boxes.salesforce.records("Task") if t.get("Twenty2_Call_Id__c") == call_id]


def add_call(boxes: Sandboxes, phone: str, **fields: Any) -> str:
    fields.setdefault("output_parameters", {"interested": "yes"})
    return boxes.twenty2.add_call(callee_phone=phone, **fields)


def test_seed_call_updates_lead_and_logs_call_and_callback(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    assert sync_and_record(rt, SEED_CALL) == "synced"
    [task] = call_tasks(boxes, SEED_CALL)
    assert task["TaskSubtype"] == "Call" and task["CallDurationInSeconds"] == 94 and task["CallType"] == "Outbound"
    assert task["CallObject"] == SEED_CALL and task["Status"] == "Completed"
    assert "/recordings/call_9c4d7e12ab.mp3" in task["Description"] and "expires" in task["Description"]
    who = boxes.salesforce.get(task["WhoId"])
    assert who is not None and (who["Status"], who["Rating"]) == ("Working - Contacted", "Hot")
    [followup] = call_tasks(boxes, SEED_CALL + "-callback")
    assert followup["IsReminderSet"] is True and followup["WhoId"] == task["WhoId"]
    assert followup["OwnerId"] == who["OwnerId"] and "Tomorrow 11am" in followup["Subject"]
    record = rt.ledger.get(SEED_CALL)
    assert (
        record is not None and record.state is State.SYNCED and set(record.salesforce_ids) >= {"callTask", "followUp"}
    )


def test_replayed_call_writes_no_second_task(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    first = sync_one(rt.services, SEED_CALL)
    before = {t["Id"]: t["LastModifiedDate"] for t in boxes.salesforce.records("Task")}
    again = sync_one(rt.services, SEED_CALL)
    assert len(call_tasks(boxes, SEED_CALL)) == 1 and len(call_tasks(boxes, SEED_CALL + "-callback")) == 1
    assert again.salesforce_ids["callTask"] == first.salesforce_ids["callTask"]
    assert set(before) == {t["Id"] for t in boxes.salesforce.records("Task")}


def test_failed_call_logs_attempt_and_leaves_lead_untouched(boxes: Sandboxes, redis_url: str) -> None:
    arjun = lead(boxes, "arjun")
    call_id = add_call(
        boxes,
        "9876543210",
        status="failed",
        duration_seconds=0,
        disconnection_reason="unanswered",
        output_parameters={"interested": "yes", "callback_requested": "yes", "callback_time": "kal 11 baje"},
    )
    outcome = sync_one(runtime(boxes, redis_url).services, call_id)
    [task] = call_tasks(boxes, call_id)
    assert task["WhoId"] == arjun["Id"] and task["CallDisposition"] == "failed" and "not connected" in task["Subject"]
    assert call_tasks(boxes, call_id + "-callback") == []
    assert lead(boxes, "arjun")["Status"] == arjun["Status"] and lead(boxes, "arjun")["Rating"] == arjun["Rating"]
    assert "lead" not in outcome.salesforce_ids


def test_lead_by_salesforce_id_in_input_parameters(boxes: Sandboxes, redis_url: str) -> None:
    karan = lead(boxes, "karan")
    call_id = add_call(boxes, "9000000001", input_parameters={"salesforce_id": karan["Id"]})
    outcome = sync_one(runtime(boxes, redis_url).services, call_id)
    assert outcome.plan.target is not None and outcome.plan.target.record_id == karan["Id"]
    assert outcome.plan.target.matched_by.startswith("salesforce_id")
    assert lead(boxes, "karan")["Status"] == "Working - Contacted"


@pytest.mark.parametrize(
    "stored",
    [
        "9812345678",
        "+919812345678",
        "+91 98123 45678",
        "098123-45678",
        "09812345678",
        "919812345678",
        "+91-98123-45678",
        "(+91) 98123-45678",
        "98123 45678",
        "+91 981 234 5678",
        "0091 98123 45678",
    ],
)
def test_lead_by_phone_in_each_stored_format(boxes: Sandboxes, redis_url: str, stored: str) -> None:
    lead_id = boxes.salesforce.insert_raw("Lead", {"LastName": "Rao", "Company": "Rao & Sons", "Phone": stored})
    boxes.salesforce.insert_raw("Lead", {"LastName": "Decoy", "Company": "Elsewhere", "Phone": "9812345679"})
    call_id = add_call(boxes, "9812345678")
    outcome = sync_one(runtime(boxes, redis_url).services, call_id)
    assert outcome.plan.target is not None and outcome.plan.target.record_id == lead_id
    [task] = call_tasks(boxes, call_id)
    assert task["WhoId"] == lead_id


def test_unknown_number_creates_a_lead(boxes: Sandboxes, redis_url: str) -> None:
    call_id = add_call(boxes, "9123400000", input_parameters={"customerName": "Lakshay Gupta"})
    outcome = sync_one(runtime(boxes, redis_url).services, call_id)
    created = boxes.salesforce.get(outcome.salesforce_ids["lead"])
    assert created is not None and (created["FirstName"], created["LastName"]) == ("Lakshay", "Gupta")
    assert created["Phone"] == "9123400000" and created["Status"] == "Working - Contacted"
    [task] = call_tasks(boxes, call_id)
    assert task["WhoId"] == created["Id"]


def test_unknown_number_skipped_by_policy(boxes: Sandboxes, redis_url: str) -> None:
    call_id = add_call(boxes, "9123400001")
    rt = runtime(boxes, redis_url, crm_sync_unknown_number="skip")
    assert sync_and_record(rt, call_id) == "skipped"
    record = rt.ledger.get(call_id)
    assert record is not None and record.last_error is not None and record.last_error["code"] == "UNKNOWN_NUMBER"
    assert "9123400001" not in record.summary  # the number is masked
    assert call_tasks(boxes, call_id) == []


def test_converted_lead_logs_on_its_contact(boxes: Sandboxes, redis_url: str) -> None:
    meera = lead(boxes, "meera")
    call_id = add_call(boxes, "9123456789", output_parameters={"interested": "no"})
    outcome = sync_one(runtime(boxes, redis_url).services, call_id)
    [task] = call_tasks(boxes, call_id)
    assert task["WhoId"] == boxes.salesforce.demo_ids["meera_contact"]
    assert "lead" not in outcome.salesforce_ids
    assert lead(boxes, "meera")["Rating"] == meera["Rating"]


def test_expired_salesforce_session_is_refreshed(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    sync_one(rt.services, FAILED_CALL)  # logs in
    boxes.salesforce.expire_sessions()
    assert sync_and_record(rt, SEED_CALL) == "synced"
    assert boxes.salesforce.stats()["oauth"]["client_credentials"] == 2


def test_call_not_final_is_retried_later(boxes: Sandboxes, redis_url: str) -> None:
    boxes.twenty2.set_pending(SEED_CALL)
    rt = runtime(boxes, redis_url)
    assert sync_and_record(rt, SEED_CALL) == "queued"
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.last_error is not None and record.last_error["class"] == "CallNotFinal"
    assert record.next_attempt_at is not None and record.next_attempt_at > time.time()
    assert call_tasks(boxes, SEED_CALL) == []


def test_unknown_call_id_fails_permanently(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    assert sync_and_record(rt, "call_doesnotexist") == "failed"
    record = rt.ledger.get("call_doesnotexist")
    assert record is not None and record.last_error is not None
    assert (record.last_error["code"], record.retryable) == ("CALL_NOT_FOUND", False)


def test_validation_rule_fails_permanently_and_writes_nothing(boxes: Sandboxes, redis_url: str) -> None:
    boxes.salesforce.set_faults(validation_rules=[ValidationRule("Task", "CallObject", SEED_CALL)])
    rt = runtime(boxes, redis_url)
    assert sync_and_record(rt, SEED_CALL) == "failed"
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.last_error is not None
    assert record.last_error["code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION" and record.retryable is False
    assert call_tasks(boxes, SEED_CALL) == [] and lead(boxes, "priya")["Status"] != "Working - Contacted"


def test_record_lock_is_retried_later(boxes: Sandboxes, redis_url: str) -> None:
    boxes.salesforce.set_faults(fail_next=1, fail_kind="lock", fail_scope=["composite"])
    rt = runtime(boxes, redis_url)
    assert sync_and_record(rt, SEED_CALL) == "queued"
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.last_error is not None and record.last_error["code"] == "UNABLE_TO_LOCK_ROW"
    assert record.failures == 1


def test_daily_limit_holds_without_counting_a_failure(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    boxes.salesforce.set_usage(used=100_000, maximum=100_000)
    assert sync_and_record(rt, SEED_CALL) == "queued"
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.last_error is not None
    assert record.last_error["code"] == "REQUEST_LIMIT_EXCEEDED" and record.failures == 0


def test_retryable_failures_are_bounded(boxes: Sandboxes, redis_url: str) -> None:
    boxes.twenty2.fail_randomly(1.0, 503)
    rt = runtime(boxes, redis_url, crm_sync_max_attempts=3)
    states = [sync_and_record(rt, SEED_CALL) for _ in range(3)]
    assert states == ["queued", "queued", "failed"]
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.retryable is True and record.state is State.FAILED


def seed_leads(boxes: Sandboxes, count: int) -> list[tuple[str, str]]:
    """``count`` Leads with their own numbers: [(lead id, 10-digit number)]."""
    leads = []
    for i in range(count):
        number = f"98700{i:05d}"
        lead_id = boxes.salesforce.insert_raw(
            "Lead", {"LastName": f"Lead{i}", "Company": "Acme", "Phone": f"+91 {number[:5]} {number[5:]}"}
        )
        leads.append((lead_id, number))
    return leads


def test_read_ahead_makes_a_backlog_cost_one_request_per_call(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    leads = seed_leads(boxes, 20)
    calls = [add_call(boxes, number) for _, number in leads]
    for call_id, (_, number) in zip(calls, leads, strict=True):
        rt.lead_cache.hint(call_id, phone=number, lead_id=None)  # as the intake does for each webhook
    rt.services.field_lengths()  # the one-off describe at start
    before = boxes.salesforce.stats()["api_usage"]["used"]
    for call_id in calls:
        assert sync_and_record(rt, call_id) == "synced"
    used = boxes.salesforce.stats()["api_usage"]["used"] - before
    assert used <= len(calls) + 2  # 20 composites + one read-ahead (SOSL) for all of them
    for (lead_id, _), call_id in zip(leads, calls, strict=True):
        assert call_tasks(boxes, call_id)[0]["WhoId"] == lead_id
        assert boxes.salesforce.get(lead_id)["Status"] == "Working - Contacted"  # type: ignore[index]


def test_backlog_next_batch_is_read_ahead_before_its_calls_need_it(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    rt.services.finder.read_ahead = 25  # batches of 25 calls, so 60 calls make three
    leads = seed_leads(boxes, 60)
    calls = [add_call(boxes, number) for _, number in leads]
    for call_id, (_, number) in zip(calls, leads, strict=True):
        rt.lead_cache.hint(call_id, phone=number, lead_id=None)
    rt.services.field_lengths()
    spent_per_call = []
    for call_id in calls:
        before = boxes.salesforce.stats()["api_requests"]
        assert sync_and_record(rt, call_id) == "synced"
        wait_for(lambda: not any(t.name == "lead-read-ahead" for t in threading.enumerate()))
        spent_per_call.append(sum(spent(boxes, before).values()))
    # Call 0 reads calls 0-24 ahead; call 13, in the middle, reads 25-48 in the background; call 37 reads
    # 49-59. Every other call, the first of each batch included, costs its one write.
    assert [i for i, n in enumerate(spent_per_call) if n != 1] == [0, 13, 37]
    assert sum(spent_per_call) == 60 + 3
    for (lead_id, _), call_id in zip(leads, calls, strict=True):
        assert call_tasks(boxes, call_id)[0]["WhoId"] == lead_id


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_syncs_hold_when_the_api_reserve_is_reached(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url, crm_sync_api_reserve=0.10)
    boxes.salesforce.set_usage(used=89_000, maximum=100_000)
    assert sync_and_record(rt, SEED_CALL) == "synced"  # 11% left: goes ahead, and sees the usage
    usage = rt.budget.last()
    assert usage is not None and usage.maximum == 100_000 and usage.used > 89_000
    boxes.salesforce.set_usage(used=91_000)
    assert sync_and_record(rt, FAILED_CALL) == "synced"  # the usage seen before was still above the reserve
    call_id = add_call(boxes, "9876543210")
    assert sync_and_record(rt, call_id) == "queued"  # 9% left: held, not failed
    record = rt.ledger.get(call_id)
    assert record is not None and record.last_error is not None
    assert record.last_error["code"] == "API_RESERVE_REACHED" and record.failures == 0
    assert call_tasks(boxes, call_id) == []


def test_lead_changed_after_read_ahead_is_read_again_not_overwritten(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    [(lead_id, number), (other_id, other_number)] = seed_leads(boxes, 2)
    first, second = add_call(boxes, number), add_call(boxes, other_number)
    rt.lead_cache.hint(second, phone=other_number, lead_id=None)
    assert sync_and_record(rt, first) == "synced"  # reads both Leads ahead
    assert rt.lead_cache.by_id(other_id) is not None
    time.sleep(1.1)  # LastModifiedDate has whole seconds
    rt.services.salesforce.update("Lead", other_id, {"Status": "Closed - Not Converted"})  # a rep closes it
    assert sync_and_record(rt, second) == "synced"
    lead = boxes.salesforce.get(other_id)
    assert lead is not None and lead["Status"] == "Closed - Not Converted"  # the stale plan would have reopened it
    assert lead["Rating"] == "Hot"
    assert boxes.salesforce.get(lead_id)["Status"] == "Working - Contacted"  # type: ignore[index]


def test_refused_salesforce_id_falls_back_to_the_phone(boxes: Sandboxes, redis_url: str) -> None:
    arjun = lead(boxes, "arjun")
    bad = arjun["Id"][:15] + "ZZZ"  # right shape, wrong checksum: Salesforce refuses the id
    call_id = add_call(boxes, "9876543210", input_parameters={"salesforce_id": bad})
    outcome = sync_one(runtime(boxes, redis_url).services, call_id)
    assert outcome.plan.target is not None and outcome.plan.target.record_id == arjun["Id"]
    assert outcome.plan.target.matched_by.startswith("phone")


def test_retryable_failures_are_replayed_automatically_with_a_cap(boxes: Sandboxes, redis_url: str) -> None:
    from worker.sync.sweep import replay_retryable

    rt = runtime(boxes, redis_url, crm_sync_max_attempts=1, crm_sync_auto_replay_max=2)
    assert sync_and_record(rt, "call_doesnotexist") == "failed"  # permanent: never replayed automatically
    boxes.twenty2.fail_randomly(1.0, 503)  # an outage outlasting the retries
    assert sync_and_record(rt, SEED_CALL) == "failed"
    assert replay_retryable(rt) == 1  # the outage lasts: queued again, fails again
    assert sync_and_record(rt, SEED_CALL) == "failed"
    assert replay_retryable(rt) == 1
    assert sync_and_record(rt, SEED_CALL) == "failed"
    assert replay_retryable(rt) == 0  # the cap is reached: ops decide
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.auto_replays == 2
    boxes.twenty2.clear_faults()
    rt2 = runtime(boxes, redis_url, crm_sync_auto_replay_max=3)
    assert replay_retryable(rt2) == 1 and sync_and_record(rt2, SEED_CALL) == "synced"


def spent(boxes: Sandboxes, before: dict[str, int]) -> dict[str, int]:
    after = boxes.salesforce.stats()["api_requests"]
    return {kind: n - before.get(kind, 0) for kind, n in after.items() if n - before.get(kind, 0)}


def leads_with_number(boxes: Sandboxes, number: str) -> list[dict[str, Any]]:
    return [r for r in boxes.salesforce.records("Lead") if same_number(r.get("Phone"), number)]


def test_unknown_number_read_ahead_costs_one_request(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    [(_, known)] = seed_leads(boxes, 1)
    first, unknown = add_call(boxes, known), add_call(boxes, "9123477777")
    rt.lead_cache.hint(unknown, phone="9123477777", lead_id=None)
    rt.services.field_lengths()
    assert sync_and_record(rt, first) == "synced"  # its read-ahead also read the unknown number
    before = boxes.salesforce.stats()["api_requests"]
    assert sync_and_record(rt, unknown) == "synced"
    assert spent(boxes, before) == {"composite": 1}  # the Lead is created in the write itself
    [created] = leads_with_number(boxes, "9123477777")
    assert call_tasks(boxes, unknown)[0]["WhoId"] == created["Id"]


def test_second_call_to_a_new_number_uses_the_lead_the_first_created(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    first, second = add_call(boxes, "9123466666"), add_call(boxes, "9123466666")
    rt.lead_cache.hint(second, phone="9123466666", lead_id=None)
    assert sync_and_record(rt, first) == "synced"  # read ahead: no Lead for the number; creates one
    assert sync_and_record(rt, second) == "synced"
    [created] = leads_with_number(boxes, "9123466666")
    assert {t["WhoId"] for c in (first, second) for t in call_tasks(boxes, c)} == {created["Id"]}


def test_concurrent_calls_to_one_new_number_create_one_lead(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    calls = [add_call(boxes, "9123455555") for _ in range(4)]
    for call_id in calls:
        rt.lead_cache.hint(call_id, phone="9123455555", lead_id=None)
    rt.services.field_lengths()
    boxes.salesforce.set_faults(latency_ms=150)  # each write takes long enough for the others to overlap it
    with ThreadPoolExecutor(max_workers=4) as pool:
        states = list(pool.map(lambda c: sync_and_record(rt, c), calls))
    assert states == ["synced"] * 4
    [created] = leads_with_number(boxes, "9123455555")
    assert {t["WhoId"] for c in calls for t in call_tasks(boxes, c)} == {created["Id"]}


def test_lead_created_in_salesforce_after_the_lookup_is_used_by_the_next_call(boxes: Sandboxes, redis_url: str) -> None:
    rt = runtime(boxes, redis_url)
    first, second = add_call(boxes, "9123444444"), add_call(boxes, "9123444444")
    rt.lead_cache.hint(second, phone="9123444444", lead_id=None)
    assert sync_and_record(rt, first) == "synced"  # creates a Lead; the number is now marked "look again"
    rep_lead = boxes.salesforce.insert_raw("Lead", {"LastName": "Rep", "Company": "Acme", "Phone": "09123444444"})
    assert sync_and_record(rt, second) == "synced"
    assert len(leads_with_number(boxes, "9123444444")) == 2  # the first call's and the rep's: no third
    [task] = call_tasks(boxes, second)
    assert task["WhoId"] in {r["Id"] for r in leads_with_number(boxes, "9123444444")}
    assert rep_lead in {r["Id"] for r in leads_with_number(boxes, "9123444444")}


def test_call_naming_a_lead_id_is_looked_up_by_it_even_when_its_number_has_no_lead(
    boxes: Sandboxes, redis_url: str
) -> None:
    rt = runtime(boxes, redis_url)
    [(lead_id, _)] = seed_leads(boxes, 1)
    rt.lead_cache.no_lead(["9123433333"])  # a reading just now found no Lead with the number
    call_id = add_call(boxes, "9123433333", input_parameters={"salesforce_id": lead_id})
    outcome = sync_one(rt.services, call_id)
    assert outcome.plan.target is not None and outcome.plan.target.record_id == lead_id
    assert leads_with_number(boxes, "9123433333") == []


def unreachable_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: as during a Redis restart


def test_redis_outage_during_the_lookup_is_retried_not_failed(boxes: Sandboxes, redis_url: str) -> None:
    settings = boxes.settings(redis_url=redis_url, twenty2_rate_limit_per_minute=0)
    away = LeadCache(redis.Redis.from_url(unreachable_redis_url(), socket_timeout=1), region="IN", data=TEST_DATA)
    services = Services.from_settings(settings, twenty2=Twenty2Client(settings), cache=away)
    rt = Runtime(settings, _services=services)
    assert sync_and_record(rt, SEED_CALL) == "queued"
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.last_error is not None
    assert (record.last_error["code"], record.last_error["stage"]) == ("REDIS_UNAVAILABLE", "lookup")
    assert call_tasks(boxes, SEED_CALL) == []


def test_redis_outage_in_the_twenty2_rate_limit_is_retried_not_failed(boxes: Sandboxes, redis_url: str) -> None:
    settings = boxes.settings(redis_url=redis_url, twenty2_rate_limit_per_minute=60)
    limit = SharedRateLimit(unreachable_redis_url(), key="twenty2:test", per_minute=60)
    twenty2 = Twenty2Client(settings, before_request=limit.acquire)
    rt = Runtime(settings, _services=Services.from_settings(settings, twenty2=twenty2))
    assert sync_and_record(rt, SEED_CALL) == "queued"
    record = rt.ledger.get(SEED_CALL)
    assert record is not None and record.last_error is not None
    assert (record.last_error["code"], record.last_error["stage"]) == ("REDIS_UNAVAILABLE", "fetch")


def test_redis_outage_right_after_the_write_still_records_synced(
    boxes: Sandboxes, redis_url: str, tmp_path: Path
) -> None:
    # The Lead cache on a Redis of its own, which dies while the composite is in flight: the write happened,
    # so the call is synced (its Lead's snapshot, left behind, is safe: the next update is conditional).
    [(lead_id, number)] = seed_leads(boxes, 1)
    call_id = add_call(boxes, number)
    cache_server = RedisServer(tmp_path / "cache-redis").start()
    try:
        settings = boxes.settings(redis_url=redis_url, twenty2_rate_limit_per_minute=0)
        cache = LeadCache(redis.Redis.from_url(cache_server.url, socket_timeout=1), region="IN", data=TEST_DATA)
        twenty2 = Twenty2Client(settings)
        rt = Runtime(settings, _services=Services.from_settings(settings, twenty2=twenty2, cache=cache))
        target = rt.services.finder.find(twenty2.get_call_detail(call_id))  # read ahead: the Lead's snapshot
        assert target is not None and target.record_id == lead_id
        boxes.salesforce.set_faults(latency_ms=1500)
        with ThreadPoolExecutor(1) as pool:
            outcome = pool.submit(sync_and_record, rt, call_id)
            deadline = time.monotonic() + 10
            while boxes.twenty2.stats()["by_path"].get("/api/call/detail", 0) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)  # the lookup is a cache hit: the composite is on its way, 1.5 s from an answer
            cache_server.stop(hard=True)
            assert outcome.result(timeout=30) == "synced"
    finally:
        cache_server.stop(hard=True)
    record = rt.ledger.get(call_id)
    assert record is not None and record.state is State.SYNCED
    [task] = call_tasks(boxes, call_id)
    assert task["WhoId"] == lead_id
    assert boxes.salesforce.stats()["api_requests"] == {"composite": 2, "describe": 1}  # read-ahead, write
