"""The three-way audit's comparison (``worker.reconcile.audit``): one test per kind of finding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.ledger import Record, State
from worker.reconcile.audit import Kind, compare, task_ids_wanted
from worker.twenty2.models import CallInfo

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=7)


def call(n: int, status: str = "completed", *, ago: timedelta = timedelta(hours=1)) -> CallInfo:
    ended = NOW - ago
    return CallInfo(call_id=f"call_{n:04d}", status=status, started_at=ended - timedelta(minutes=2), ended_at=ended)


def record(n: int, state: State = State.SYNCED, *, followup: bool = False) -> Record:
    ids = {"lead": "00Q000000000001AAA", "callTask": f"00T00000000{n:04d}AAA"}
    if followup:
        ids["followUp"] = f"00T00000001{n:04d}AAA"
    ts = (NOW - timedelta(hours=1)).timestamp()
    return Record(
        call_id=f"call_{n:04d}",
        state=state,
        attempts=1,
        failures=0,
        deliveries=1,
        first_seen=ts,
        updated_at=ts,
        next_attempt_at=None,
        salesforce_ids=ids if state is State.SYNCED else {},
        last_error=None,
        summary="",
    )


def run(calls: list[CallInfo], records: list[Record], tasks: dict[str, list[str]], **kw: object):  # type: ignore[no-untyped-def]
    return compare(
        calls,
        {r.call_id: r for r in records},
        tasks,
        since=SINCE,
        now=NOW,
        window_records=records,
        **kw,  # type: ignore[arg-type]
    )


def test_three_systems_agree_no_findings() -> None:
    report = run(
        [call(1), call(2)],
        [record(1), record(2, followup=True)],
        {"call_0001": ["00T1"], "call_0002": ["00T2"], "call_0002-callback": ["00T3"]},
    )
    assert report.findings == () and report.compared == 2 and report.missing_in_salesforce == 0


def test_not_in_ledger_finished_call_without_a_record() -> None:
    report = run([call(1, "failed")], [], {})
    (finding,) = report.findings
    assert finding.kind is Kind.NOT_IN_LEDGER and finding.fix == "crm-sync replay call_0001"
    assert report.missing_in_salesforce == 1


def test_task_missing_synced_call_whose_task_was_deleted() -> None:
    report = run([call(1)], [record(1)], {})
    assert [(f.kind, f.fix) for f in report.findings] == [(Kind.TASK_MISSING, "crm-sync replay call_0001")]


def test_task_duplicated_two_call_tasks_with_one_external_id() -> None:
    report = run([call(1)], [record(1)], {"call_0001": ["00T1", "00T2"]})
    (finding,) = report.findings
    assert finding.kind is Kind.TASK_DUPLICATED and finding.task_ids == ("00T1", "00T2")
    assert finding.fix == "crm-sync replay --dedupe call_0001" and report.missing_in_salesforce == 0


def test_followup_missing_recorded_follow_up_task_gone() -> None:
    report = run([call(1)], [record(1, followup=True)], {"call_0001": ["00T1"]})
    assert [f.kind for f in report.findings] == [Kind.FOLLOWUP_MISSING]


def test_followup_duplicated() -> None:
    report = run([call(1)], [record(1, followup=True)], {"call_0001": ["00T1"], "call_0001-callback": ["a", "b"]})
    assert [f.kind for f in report.findings] == [Kind.FOLLOWUP_DUPLICATED]


def test_ledger_only_record_twenty2_does_not_list_has_no_fix_command() -> None:
    report = run([], [record(1, State.FAILED)], {})
    (finding,) = report.findings
    assert finding.kind is Kind.LEDGER_ONLY and finding.fix is None and "failed" in finding.detail


def test_skipped_and_failed_calls_are_not_missing_tasks() -> None:
    report = run([call(1), call(2)], [record(1, State.SKIPPED), record(2, State.FAILED)], {})
    assert report.findings == () and report.compared == 2


def test_calls_in_progress_settling_or_before_the_window_are_not_judged() -> None:
    calls = [
        CallInfo(call_id="call_0001", status="in-progress", started_at=NOW - timedelta(minutes=1)),
        call(2, ago=timedelta(seconds=30)),
        call(3, ago=timedelta(days=8)),
    ]
    report = run(calls, [], {}, settle=timedelta(minutes=2))
    assert report.findings == () and (report.in_progress, report.settling, report.compared) == (1, 1, 0)


def test_summary_counts_every_kind() -> None:
    report = run([call(1), call(2)], [record(2)], {})
    summary = report.summary()
    assert summary["findings"] == 2 and summary["missing_in_salesforce"] == 2
    assert summary["by_kind"] == {
        "not_in_ledger": 1,
        "task_missing": 1,
        "task_duplicated": 0,
        "followup_missing": 0,
        "followup_duplicated": 0,
        "ledger_only": 0,
    }


def test_external_ids_wanted_are_the_call_task_and_the_follow_up() -> None:
    assert task_ids_wanted(["call_1"]) == ["call_1", "call_1-callback"]
