"""Reconciliation and the three-way audit against both stand-ins over HTTPS and a real Redis.

One fixture per real-world case, one test per fixture: webhooks that never came (found, queued as
``reconcile``, synced once), a call still in progress (left, found once it ends), a dry run (nothing moves),
the per-call guard against a webhook that arrives first, Tasks a person deleted or a race doubled (found by
the audit, fixed by ``--fix``), and the CLI (masked numbers, JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from standins.stack.sandboxes import Sandboxes
from worker.cli import main
from worker.ledger import State
from worker.reconcile import status
from worker.reconcile.audit import Kind
from worker.reconcile.audit_run import fix, run_audit
from worker.reconcile.run import reconcile_pass
from worker.runtime import Runtime
from worker.sync.services import Services
from worker.sync.stream import sync_and_record
from worker.twenty2.client import Twenty2Client

FIELD = "Twenty2_Call_Id__c"


def runtime(boxes: Sandboxes, redis_url: str) -> Runtime:
    boxes.twenty2.configure(rate_limit_per_minute=None)
    settings = boxes.settings(redis_url=redis_url, twenty2_rate_limit_per_minute=0)
    services = Services.from_settings(settings, twenty2=Twenty2Client(settings))
    return Runtime(settings, _services=services)


def webhook(rt: Runtime, call_id: str) -> str:
    """What the intake and a worker do with a webhook that came."""
    assert rt.ledger.accept(call_id, source="webhook") is None
    return sync_and_record(rt, call_id)


def call_tasks(boxes: Sandboxes, call_id: str) -> list[dict[str, Any]]:
    return [t for t in boxes.salesforce.records("Task") if t.get(FIELD) == call_id]


def since_epoch() -> Any:
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class Missed:
    rt: Runtime
    heard: str
    missed: list[str]
    pending: str


@pytest.fixture
def missed_webhooks(boxes: Sandboxes, redis_url: str) -> Missed:
    rt = runtime(boxes, redis_url)
    t2 = boxes.twenty2
    heard = t2.add_call(callee_phone="9000000101", output_parameters={"interested": "yes"})
    missed = [t2.add_call(callee_phone=f"900000011{n}", output_parameters={"interested": "no"}) for n in range(3)]
    pending = t2.add_call(callee_phone="9000000120")
    t2.set_pending(pending)
    assert webhook(rt, heard) == "synced"
    return Missed(rt, heard, missed, pending)


def test_missed_webhooks_are_found_synced_once_and_pending_calls_wait(
    missed_webhooks: Missed, boxes: Sandboxes
) -> None:
    m = missed_webhooks
    first = reconcile_pass(m.rt, since=since_epoch(), batch=100)
    finished_unknown = set(boxes.twenty2.call_ids()) - {m.heard, m.pending}
    assert set(first.queued) == finished_unknown and set(m.missed) <= finished_unknown
    assert first.verdicts["in_progress"] == 1 and first.verdicts["known"] == 1
    for call_id in first.queued:
        record = m.rt.ledger.get(call_id)
        assert record is not None and record.source == "reconcile" and record.state is State.QUEUED
        assert sync_and_record(m.rt, call_id) in ("synced", "skipped")
    assert all(len(call_tasks(boxes, c)) == 1 for c in m.missed)

    again = reconcile_pass(m.rt, since=since_epoch(), batch=100)
    assert again.queued == [] and again.verdicts["sync"] == 0  # resolved calls are never synced again

    boxes.twenty2.finish(m.pending, output_parameters={"interested": "yes"})
    last = reconcile_pass(m.rt, since=since_epoch(), batch=100)
    assert last.queued == [m.pending]
    assert sync_and_record(m.rt, m.pending) == "synced" and len(call_tasks(boxes, m.pending)) == 1


@pytest.fixture
def batch_of_five(boxes: Sandboxes, redis_url: str) -> tuple[Runtime, list[str]]:
    """Five calls that ended now; the stand-in's two seed calls ended years ago (outside the 48 h window)."""
    rt = runtime(boxes, redis_url)
    return rt, [boxes.twenty2.add_call(callee_phone=f"900000020{n}") for n in range(5)]


def test_dry_run_queues_nothing_and_a_pass_queues_at_most_its_batch(batch_of_five: tuple[Runtime, list[str]]) -> None:
    rt, recent = batch_of_five
    dry = reconcile_pass(rt, dry_run=True)
    assert dry.queued == [] and {d.call.call_id for d in dry.found} == set(recent)
    assert dry.verdicts["outside"] == 2
    assert status.read_watermark(rt.redis) is None and rt.ledger.counts()["queued"] == 0
    small = reconcile_pass(rt, batch=2)
    assert len(small.queued) == 2 and small.left == len(dry.found) - 2
    stored = status.last_run(rt.redis)
    assert stored is not None and stored["queued"] == 2 and stored["found"] == len(dry.found)


@pytest.fixture
def webhook_first(boxes: Sandboxes, redis_url: str) -> tuple[Runtime, str]:
    rt = runtime(boxes, redis_url)
    call_id = boxes.twenty2.add_call(callee_phone="9000000301")
    assert rt.ledger.accept(call_id, source="webhook") is None  # accepted, its task not run yet
    return rt, call_id


def test_a_call_whose_webhook_came_first_is_left_to_it(webhook_first: tuple[Runtime, str]) -> None:
    rt, call_id = webhook_first
    report = reconcile_pass(rt, since=since_epoch(), batch=100)
    assert call_id not in report.queued
    record = rt.ledger.get(call_id)
    assert record is not None and record.source == "webhook" and record.deliveries == 1


@dataclass
class Tampered:
    rt: Runtime
    deleted: str
    doubled: str
    unknown: str


@pytest.fixture
def tampered_salesforce(boxes: Sandboxes, redis_url: str) -> Tampered:
    """Three synced calls: a person deleted one's Task, a race doubled another's; one more call never came."""
    rt = runtime(boxes, redis_url)
    t2 = boxes.twenty2
    ids = [t2.add_call(callee_phone=f"900000040{n}", output_parameters={"interested": "no"}) for n in range(3)]
    for call_id in ids:
        assert webhook(rt, call_id) == "synced"
    for call_id in set(t2.call_ids()) - set(ids):
        rt.ledger.accept(call_id, source="webhook")
        sync_and_record(rt, call_id)
    unknown = t2.add_call(callee_phone="9000000409")
    (task,) = call_tasks(boxes, ids[0])
    rt.services.salesforce.delete("Task", task["Id"])
    (original,) = call_tasks(boxes, ids[1])
    boxes.salesforce.insert_raw("Task", {"Subject": original["Subject"], FIELD: ids[1], "WhoId": original.get("WhoId")})
    return Tampered(rt, deleted=ids[0], doubled=ids[1], unknown=unknown)


def test_audit_finds_deleted_doubled_and_unknown_calls_and_fix_clears_them(
    tampered_salesforce: Tampered, boxes: Sandboxes
) -> None:
    t = tampered_salesforce
    report, cost = run_audit(t.rt, since=since_epoch())
    found = {(f.kind, f.call_id): f.fix for f in report.findings}
    assert found == {
        (Kind.NOT_IN_LEDGER, t.unknown): f"crm-sync replay {t.unknown}",
        (Kind.TASK_MISSING, t.deleted): f"crm-sync replay {t.deleted}",
        (Kind.TASK_DUPLICATED, t.doubled): f"crm-sync replay --dedupe {t.doubled}",
    }
    assert report.missing_in_salesforce == 2 and cost.twenty2_requests == 1 and cost.salesforce_requests == 1

    done = fix(t.rt, report.findings)
    assert sorted(done.replayed) == sorted([t.unknown, t.deleted]) and len(done.deduped[t.doubled]) == 1
    after, _ = run_audit(t.rt, since=since_epoch())
    assert after.findings == ()
    assert all(len(call_tasks(boxes, c)) == 1 for c in (t.deleted, t.doubled, t.unknown))


def cli_env(boxes: Sandboxes, redis_url: str) -> dict[str, str]:
    env = {k.upper(): str(v) for k, v in boxes.env.items()}
    env.update({"REDIS_URL": redis_url, "TWENTY2_RATE_LIMIT_PER_MINUTE": "0", "CRM_SYNC_LOG_FORMAT": "json"})
    return env


@pytest.fixture
def one_missed_number(boxes: Sandboxes, redis_url: str) -> dict[str, str]:
    boxes.twenty2.configure(rate_limit_per_minute=None)
    boxes.twenty2.add_call(callee_phone="9876501234")
    return cli_env(boxes, redis_url)


def test_cli_reconcile_dry_run_shows_masked_numbers_and_audit_json(one_missed_number: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["reconcile", "--dry-run", "--since", "3650d"], env=one_missed_number)
    assert result.exit_code == 0, result.output
    assert "••••1234" in result.output and "9876501234" not in result.output and "dry run" in result.output
    audited = CliRunner().invoke(main, ["audit", "--since", "3650d", "--json"], env=one_missed_number)
    data = json.loads(audited.stdout)
    assert audited.exit_code == 1 and data["by_kind"]["not_in_ledger"] == data["findings"] >= 1
    assert all(item["fix"].startswith("crm-sync replay ") for item in data["items"])


@pytest.fixture
def first_install(boxes: Sandboxes, redis_url: str) -> tuple[dict[str, str], list[str], str]:
    """Calls from before the install (none in the ledger), one still in progress."""
    boxes.twenty2.configure(rate_limit_per_minute=None)
    done = [boxes.twenty2.add_call(callee_phone=f"900000060{n}") for n in range(3)]
    running = boxes.twenty2.add_call(callee_phone="9000000609")
    boxes.twenty2.set_pending(running)
    return cli_env(boxes, redis_url), done, running


def test_cli_backfill_since_syncs_the_finished_calls_twenty2_lists(
    first_install: tuple[dict[str, str], list[str], str], boxes: Sandboxes
) -> None:
    env, done, running = first_install
    result = CliRunner().invoke(main, ["backfill", "--since", "3650d", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    finished = len(boxes.twenty2.call_ids()) - 1  # every call but the one in progress (the seeds too)
    assert report["requested"] == finished and report["outcomes"]["synced"] == finished
    assert all(len(call_tasks(boxes, c)) == 1 for c in done) and call_tasks(boxes, running) == []
    again = CliRunner().invoke(main, ["backfill", "--since", "3650d", "--json"], env=env)
    assert json.loads(again.stdout)["outcomes"]["resolved"] == finished  # twice writes nothing twice


@pytest.fixture
def doubled_task(boxes: Sandboxes, redis_url: str) -> tuple[dict[str, str], str]:
    rt = runtime(boxes, redis_url)
    call_id = boxes.twenty2.add_call(callee_phone="9000000701")
    assert webhook(rt, call_id) == "synced"
    (original,) = call_tasks(boxes, call_id)
    boxes.salesforce.insert_raw("Task", {"Subject": original["Subject"], FIELD: call_id})
    return cli_env(boxes, redis_url), call_id


def test_cli_replay_dedupe_keeps_the_task_the_ledger_recorded(
    doubled_task: tuple[dict[str, str], str], boxes: Sandboxes
) -> None:
    env, call_id = doubled_task
    kept = next(t["Id"] for t in call_tasks(boxes, call_id) if t.get("TaskSubtype") == "Call")
    result = CliRunner().invoke(main, ["replay", "--dedupe", call_id, "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["deleted"][call_id]) == 1
    assert [t["Id"] for t in call_tasks(boxes, call_id)] == [kept]
