"""Bulk mode (replays and backfills) against both sandboxes over HTTPS and a real Redis.

One fixture per real-world case, one test per fixture: a mixed batch whose calls end differently without
affecting each other, a replay of calls already synced, a 300-call backfill's Salesforce bill, a call
another worker holds, a backfill run twice, a backfill creating a Lead the streaming path had read as
missing, and the ``crm-sync backfill`` command on a CSV file.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from standins.stack.sandboxes import SEED_CALL, Sandboxes
from worker.cli import main, read_call_ids
from worker.ledger import Record, State
from worker.phones import same_number
from worker.runtime import Runtime
from worker.sync.bulk import BulkReport, BulkSync
from worker.sync.services import Services
from worker.sync.stream import sync_and_record
from worker.twenty2.client import Twenty2Client

NEW_NUMBER = "9123400001"
INTERESTED = {"interested": "yes", "callback_requested": "yes", "callback_time": "kal subah 11 baje"}


def runtime(boxes: Sandboxes, redis_url: str) -> Runtime:
    boxes.twenty2.configure(rate_limit_per_minute=None)
    settings = boxes.settings(redis_url=redis_url, twenty2_rate_limit_per_minute=0)
    services = Services.from_settings(settings, twenty2=Twenty2Client(settings))
    return Runtime(settings, _services=services)


def tasks_of(boxes: Sandboxes, call_id: str) -> list[dict[str, Any]]:
    keys = {call_id, call_id + "-callback"}
    return [t for t in boxes.salesforce.records("Task") if t.get("Twenty2_Call_Id__c") in keys]


def record(rt: Runtime, call_id: str) -> Record:
    found = rt.ledger.get(call_id)
    assert found is not None
    return found


def api_requests(boxes: Sandboxes) -> int:
    return sum(boxes.salesforce.stats()["api_requests"].values())


# --- a mixed batch -----------------------------------------------------------------------------------------


@dataclass
class MixedBatch:
    rt: Runtime
    report: BulkReport
    ids: dict[str, str]


@pytest.fixture
def mixed_batch(boxes: Sandboxes, redis_url: str) -> MixedBatch:
    rt = runtime(boxes, redis_url)
    demo = boxes.salesforce.demo_ids
    t2 = boxes.twenty2
    ids = {
        "seed": SEED_CALL,
        "by_id": t2.add_call(
            callee_phone="9000000001",
            input_parameters={"salesforce_id": demo["arjun"]},
            # Text that looks like a composite reference must stay text (and not fail the whole request).
            output_parameters={**INTERESTED, "notes": "mail the quote to @{lead.id}"},
        ),
        "new_1": t2.add_call(callee_phone=NEW_NUMBER, output_parameters={"interested": "no"}),
        "new_2": t2.add_call(callee_phone="+91 91234 00001", output_parameters=copy.deepcopy(INTERESTED)),
        "converted": t2.add_call(callee_phone="9123456789", output_parameters={"interested": "yes"}),
        "refused": t2.add_call(callee_phone="099999-99999", output_parameters={"interested": "yes"}),
        "not_final": t2.add_call(callee_phone="9876543210", output_parameters={"interested": "yes"}),
    }
    boxes.salesforce.set_faults(
        validation_rules=[
            {
                "sobject": "Task",
                "field": "CallObject",
                "equals": ids["refused"],
                "message": "Calls to this number are frozen",
            }
        ]
    )
    t2.set_pending(ids["not_final"])
    report = BulkSync(rt).run(list(ids.values()), source="backfill", force=False)
    return MixedBatch(rt, report, ids)


def test_mixed_batch_records_each_call_on_its_own(boxes: Sandboxes, mixed_batch: MixedBatch) -> None:
    rt, ids, demo = mixed_batch.rt, mixed_batch.ids, boxes.salesforce.demo_ids
    assert dict(mixed_batch.report.outcomes) == {"synced": 5, "failed": 1, "queued": 1}

    # Found by id: the Lead named in input_parameters is updated and carries both Tasks.
    arjun = boxes.salesforce.get(demo["arjun"])
    assert arjun is not None and arjun["Rating"] == "Hot"
    assert {t["WhoId"] for t in tasks_of(boxes, ids["by_id"])} == {demo["arjun"]}
    assert any("@\u200b{lead.id}" in t["Description"] for t in tasks_of(boxes, ids["by_id"]))
    assert record(rt, ids["by_id"]).salesforce_ids["lead"] == demo["arjun"]

    # One unknown number, two spellings, two calls: ONE Lead, created by the earlier call, updated by the later.
    created = [lead for lead in boxes.salesforce.records("Lead") if lead["Phone"] == NEW_NUMBER]
    assert len(created) == 1 and created[0]["Rating"] == "Hot"
    assert {t["WhoId"] for c in ("new_1", "new_2") for t in tasks_of(boxes, ids[c])} == {created[0]["Id"]}

    # A converted Lead: the call is logged on its Contact and the Lead is not touched.
    [task] = tasks_of(boxes, ids["converted"])
    assert task["WhoId"] == demo["meera_contact"]
    meera = boxes.salesforce.get(demo["meera"])
    assert meera is not None and meera["Rating"] == "Hot" and meera["Status"] == "Closed - Converted"

    # The validation rule fails its own call, permanently, and no other.
    refused = record(rt, ids["refused"])
    assert refused.state is State.FAILED and refused.last_error is not None
    assert refused.last_error["code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION" and not refused.retryable
    assert not [t for t in tasks_of(boxes, ids["refused"]) if t["Twenty2_Call_Id__c"] == ids["refused"]]

    # The call that has not ended is due again later, counted as one failed attempt.
    pending = record(rt, ids["not_final"])
    assert pending.state is State.QUEUED and pending.next_attempt_at is not None and pending.failures == 1
    assert pending.last_error is not None and pending.last_error["code"] == "CALL_NOT_FINAL"
    assert not tasks_of(boxes, ids["not_final"])

    for name in ("seed", "by_id", "new_1", "new_2", "converted"):
        assert record(rt, ids[name]).state is State.SYNCED, name


# --- a replay of calls already synced -----------------------------------------------------------------------


@dataclass
class Replayed:
    first: BulkReport
    again: BulkReport
    call_ids: list[str]
    task_ids: set[str]


@pytest.fixture
def replayed(boxes: Sandboxes, redis_url: str) -> Replayed:
    rt = runtime(boxes, redis_url)
    call_ids = [SEED_CALL, *boxes.twenty2.add_generated_calls(6, seed=5, phones=["9876543210", "9999999999"])]
    first = BulkSync(rt).run(call_ids, source="backfill", force=False)
    task_ids = {t["Id"] for c in call_ids for t in tasks_of(boxes, c)}
    again = BulkSync(rt).run(call_ids, source="replay", force=True)
    return Replayed(first, again, call_ids, task_ids)


def test_replay_of_synced_calls_resends_tasks_without_task_subtype(boxes: Sandboxes, replayed: Replayed) -> None:
    assert replayed.first.outcomes["synced"] == replayed.again.outcomes["synced"] == len(replayed.call_ids)
    assert replayed.first.task_subtype_resends == 0
    # Every call Task existed: each was refused once for TaskSubtype and sent again without it (follow-up
    # Tasks carry no TaskSubtype and were updated at once).
    assert replayed.again.task_subtype_resends == len(replayed.call_ids) < len(replayed.task_ids)
    after = [t for c in replayed.call_ids for t in tasks_of(boxes, c)]
    assert {t["Id"] for t in after} == replayed.task_ids and len(after) == len(replayed.task_ids)
    assert {t["TaskSubtype"] for t in after if not t["Twenty2_Call_Id__c"].endswith("-callback")} == {"Call"}


# --- the Salesforce bill of 300 calls ----------------------------------------------------------------------


@dataclass
class Backfill300:
    report: BulkReport
    requests: int


@pytest.fixture
def backfill_300(boxes: Sandboxes, redis_url: str) -> Backfill300:
    rt = runtime(boxes, redis_url)
    demo = boxes.salesforce.demo_ids
    t2 = boxes.twenty2
    call_ids = [
        *t2.add_generated_calls(100, seed=1, lead_ids=[demo["arjun"], demo["karan"]]),
        *t2.add_generated_calls(100, seed=2, phones=["9999999999", "+91 98765 43210", "9123456789"]),
        *t2.add_generated_calls(100, seed=3),  # numbers no Lead has: Leads are created
    ]
    before = api_requests(boxes)
    report = BulkSync(rt).run(call_ids, source="backfill", force=False)
    return Backfill300(report, api_requests(boxes) - before)


def test_300_calls_cost_a_handful_of_salesforce_requests(backfill_300: Backfill300) -> None:
    report = backfill_300.report
    assert report.outcomes["synced"] == 300
    # describe; one composite of lookups (ids and numbers); one phone search for the numbers no spelling
    # matched; one composite of Lead creates; one of Lead updates and Tasks (~500 records in 4 collections).
    # One sync per call would cost ~300 composites plus the lookups.
    assert backfill_300.requests == report.salesforce_requests <= 5
    assert report.lookups_delegated == 0


# --- a call another worker holds ---------------------------------------------------------------------------


@dataclass
class Busy:
    rt: Runtime
    report: BulkReport
    held: str
    free: str


@pytest.fixture
def busy(boxes: Sandboxes, redis_url: str) -> Busy:
    rt = runtime(boxes, redis_url)
    held = boxes.twenty2.add_call(callee_phone="9876543210", output_parameters={"interested": "yes"})
    free = boxes.twenty2.add_call(callee_phone="9876543210", output_parameters={"interested": "no"})
    rt.ledger.accept(held, source="webhook")
    lock = rt.redis.lock(f"crm-sync:lock:{held}", timeout=60, blocking=False)
    assert lock.acquire()
    rt.ledger.start(held)  # a streaming worker is syncing it
    try:
        report = BulkSync(rt).run([held, free], source="replay", force=True)
    finally:
        lock.release()
    return Busy(rt, report, held, free)


def test_call_held_by_another_worker_is_left_to_it(boxes: Sandboxes, busy: Busy) -> None:
    assert dict(busy.report.outcomes) == {"busy": 1, "synced": 1}
    assert not tasks_of(boxes, busy.held)
    held = record(busy.rt, busy.held)
    assert held.attempts == 1 and held.last_error is None  # nothing recorded by the bulk run
    assert record(busy.rt, busy.free).state is State.SYNCED


# --- a backfill run twice ----------------------------------------------------------------------------------


@dataclass
class Twice:
    first: BulkReport
    second: BulkReport
    requests_second: int


@pytest.fixture
def backfilled_twice(boxes: Sandboxes, redis_url: str) -> Twice:
    rt = runtime(boxes, redis_url)
    call_ids = [SEED_CALL, *boxes.twenty2.add_generated_calls(5, seed=9)]
    first = BulkSync(rt).run(call_ids, source="backfill", force=False)
    before = api_requests(boxes)
    second = BulkSync(rt).run(call_ids, source="backfill", force=False)
    return Twice(first, second, api_requests(boxes) - before)


def test_backfill_run_twice_leaves_synced_calls_alone(backfilled_twice: Twice) -> None:
    assert backfilled_twice.first.outcomes["synced"] == 6
    assert dict(backfilled_twice.second.outcomes) == {"resolved": 6}
    assert backfilled_twice.requests_second == 0 == backfilled_twice.second.twenty2_fetches


# --- a backfill creating a Lead the streaming path had read as missing --------------------------------------


@dataclass
class CreatedMeanwhile:
    rt: Runtime
    backfilled: str
    streamed: str


@pytest.fixture
def created_meanwhile(boxes: Sandboxes, redis_url: str) -> CreatedMeanwhile:
    rt = runtime(boxes, redis_url)
    backfilled, streamed = boxes.twenty2.add_generated_calls(2, seed=31, phones=[NEW_NUMBER])
    rt.lead_cache.no_lead([NEW_NUMBER])  # a streaming read-ahead found no Lead for the number just now
    BulkSync(rt).run([backfilled], source="backfill", force=False)  # creates the Lead
    assert sync_and_record(rt, streamed) == "synced"
    return CreatedMeanwhile(rt, backfilled, streamed)


def test_backfill_created_lead_is_used_by_the_streaming_path(
    boxes: Sandboxes, created_meanwhile: CreatedMeanwhile
) -> None:
    leads = [r for r in boxes.salesforce.records("Lead") if same_number(r.get("Phone"), NEW_NUMBER)]
    assert len(leads) == 1
    who = {t["WhoId"] for c in (created_meanwhile.backfilled, created_meanwhile.streamed) for t in tasks_of(boxes, c)}
    assert who == {leads[0]["Id"]}


# --- the command -------------------------------------------------------------------------------------------


@dataclass
class Command:
    result: Result
    rt: Runtime
    call_ids: list[str]
    ids_file: Path


@pytest.fixture
def backfill_command(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> Command:
    rt = runtime(boxes, redis_url)
    call_ids = boxes.twenty2.add_generated_calls(4, seed=21, phones=["9876543210"])
    ids_file = tmp_path / "ids.csv"
    rows = ["campaign,call_id,agent", *(f"spring,{c},Rohit" for c in call_ids), "spring,not-a-call-id,Rohit", ""]
    ids_file.write_text("\n".join(rows))
    env = {k.upper(): str(v) for k, v in boxes.env.items()}
    env.update({"REDIS_URL": redis_url, "TWENTY2_RATE_LIMIT_PER_MINUTE": "0", "CRM_SYNC_LOG_FORMAT": "json"})
    result = CliRunner().invoke(main, ["backfill", "--from-file", str(ids_file), "--json"], env=env)
    return Command(result, rt, call_ids, ids_file)


def test_backfill_command_syncs_the_ids_of_a_csv(boxes: Sandboxes, backfill_command: Command) -> None:
    result = backfill_command.result
    assert result.exit_code == 0, result.output
    assert "ids.csv:6: 'not-a-call-id' is not a Twenty2 call id" in result.stderr
    assert json.loads(result.stdout)["outcomes"]["synced"] == len(backfill_command.call_ids)
    assert read_call_ids(backfill_command.ids_file) == (backfill_command.call_ids, [(6, "not-a-call-id")])
    for call_id in backfill_command.call_ids:
        synced = record(backfill_command.rt, call_id)
        assert synced.state is State.SYNCED and len(tasks_of(boxes, call_id)) >= 1
        assert backfill_command.rt.ledger.history(call_id)[0]["source"] == "backfill"
