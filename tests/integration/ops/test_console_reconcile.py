"""The overview's reconciliation and audit cards (real headless Chromium), the audit's metrics, and the
one rate-limited alert when an audit finds calls missing in Salesforce."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from support.ops_console import Console, Receiver, sign_in

from worker.ledger import Record, State
from worker.reconcile.audit import compare
from worker.reconcile.audit_run import AuditCost, publish, run_audit
from worker.reconcile.run import reconcile_pass
from worker.runtime import Runtime
from worker.settings import Settings
from worker.sync.stream import sync_and_record
from worker.twenty2.models import CallInfo

README_SHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return README_SHOTS if os.environ.get("CRM_SYNC_UPDATE_SCREENSHOTS") == "1" else tmp_path


@pytest.fixture
def reconciled_console(console: Console) -> Console:
    """Two webhooks that never came: reconciliation finds and syncs both; then a person deletes one's Task
    and the audit finds it missing (plus the console fixture's queued call Twenty2 does not have)."""
    rt, t2 = console.runtime, console.boxes.twenty2
    missed = [t2.add_call(callee_phone=f"90000005{n}1", output_parameters={"interested": "no"}) for n in range(2)]
    report = reconcile_pass(rt)
    assert sorted(report.queued) == sorted(missed)
    for call_id in missed:
        assert sync_and_record(rt, call_id) == "synced"
    task = next(t for t in console.boxes.salesforce.records("Task") if t.get("Twenty2_Call_Id__c") == missed[0])
    rt.services.salesforce.delete("Task", task["Id"])
    audit, cost = run_audit(rt, since=datetime.now(UTC) - timedelta(days=7))
    publish(rt, audit, cost)
    return console


def test_overview_shows_the_last_pass_and_the_last_audit(
    reconciled_console: Console, browser_context: Any, shots: Path
) -> None:
    page = browser_context.new_page()
    sign_in(page, reconciled_console)
    assert page.inner_text("[data-metric=reconcile-found]") == "2 found"
    assert page.inner_text("[data-metric=reconcile-queued]") == "2 sent to sync (source reconcile)"
    card = page.inner_text("[data-metric=reconcile]")
    assert "last pass" in card and "calls listed in 1 page" in card
    assert page.inner_text("[data-metric=audit-findings]") == "2 findings"
    audit = page.inner_text("[data-metric=audit]")
    assert "1 missing in Salesforce" in audit and "task_missing: 1" in audit and "ledger_only: 1" in audit
    page.screenshot(path=str(shots / "overview-audit.png"), full_page=True)


def test_metrics_carry_the_audit_summary(reconciled_console: Console) -> None:
    text = requests.get(f"{reconciled_console.url}/metrics", timeout=10).text
    assert "crm_sync_audit_calls_missing_in_salesforce 1.0" in text
    assert 'crm_sync_audit_findings{kind="task_missing"} 1.0' in text
    assert "crm_sync_reconcile_found 2.0" in text and "crm_sync_reconcile_queued 2.0" in text


def _missing_report(now: datetime) -> Any:
    call = CallInfo(call_id="call_auditalert01", status="completed", ended_at=now - timedelta(hours=1))
    record = Record(
        call_id="call_auditalert01",
        state=State.SYNCED,
        attempts=1,
        failures=0,
        deliveries=1,
        first_seen=now.timestamp() - 3600,
        updated_at=now.timestamp() - 3600,
        next_attempt_at=None,
        salesforce_ids={"callTask": "00T000000000001AAA"},
        last_error=None,
        summary="",
    )
    return compare([call], {record.call_id: record}, {}, since=now - timedelta(days=1), now=now)


def test_missing_calls_send_one_rate_limited_alert(redis_url: str, receiver: Receiver) -> None:
    rt = Runtime(Settings(_env_file=None, redis_url=redis_url, crm_sync_alert_webhook_url=receiver.url))
    report = _missing_report(datetime.now(UTC))
    assert report.missing_in_salesforce == 1
    publish(rt, report, AuditCost(1, 1))
    publish(rt, report, AuditCost(1, 1))  # the next audit within the window: no second message
    [text] = receiver.texts
    assert "audit: 1 finished calls missing in Salesforce" in text and "task_missing=1" in text
